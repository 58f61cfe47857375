"""T5X mT5 checkpoint import: checkpoints written here in T5X's layout (a msgpack `checkpoint`
file whose large leaves are tensorstore specs of zarr arrays in `target.*` directories), from
this file's own table of T5X names, are read back exactly; scanned stacks; the errors; the
kind; `clqa import t5x`; and parity with the Hugging Face importer on the same weights."""
import os

import jax
import ml_dtypes
import numpy as np
import pytest
import tensorstore as ts
from flax import serialization

from clqa_jax.checkpoints import CheckpointMappingError, exported, load_t5x_mt5
from clqa_jax.checkpoints import param_mapping as pm
from clqa_jax.checkpoints import t5x_reader
from clqa_jax.checkpoints.hf_mt5 import CheckpointFormatError
from clqa_jax.checkpoints.kinds import checkpoint_kind
from clqa_jax.cli import main as cli_main
from clqa_jax.models import MT5, MT5Config
from fixtures.data.tiny_vocab import VOCAB_SIZE, tiny_vocab_path
from models_testutil import random_params

CONFIG = MT5Config.preset("tiny", vocab_size=VOCAB_SIZE, d_model=32, d_kv=8, d_ff=48,
                          num_heads=4, num_encoder_layers=3, num_decoder_layers=2)

# Our parameter path -> (its T5X name under `target`, how T5X stores it). Written out here, not
# taken from the importer, so that a wrong mapping fails. "flat_in": [D, H, Dk] stored as
# [D, H*Dk]; "flat_out": [H, Dk, D] stored as [H*Dk, D]; "same": as ours.
T5X_NAMES = {
    "token_embedder/embedding": ("token_embedder/embedding", "same"),
    "encoder/relpos_bias/rel_embedding": ("encoder/relpos_bias/rel_embedding", "same"),
    "encoder/encoder_norm/scale": ("encoder/encoder_norm/scale", "same"),
    "encoder/layers_{i}/pre_attention_layer_norm/scale":
        ("encoder/layers_{i}/pre_attention_layer_norm/scale", "same"),
    "encoder/layers_{i}/attention/query": ("encoder/layers_{i}/attention/query/kernel", "flat_in"),
    "encoder/layers_{i}/attention/key": ("encoder/layers_{i}/attention/key/kernel", "flat_in"),
    "encoder/layers_{i}/attention/value": ("encoder/layers_{i}/attention/value/kernel", "flat_in"),
    "encoder/layers_{i}/attention/out": ("encoder/layers_{i}/attention/out/kernel", "flat_out"),
    "encoder/layers_{i}/pre_mlp_layer_norm/scale":
        ("encoder/layers_{i}/pre_mlp_layer_norm/scale", "same"),
    "encoder/layers_{i}/mlp/wi_0": ("encoder/layers_{i}/mlp/wi_0/kernel", "same"),
    "encoder/layers_{i}/mlp/wi_1": ("encoder/layers_{i}/mlp/wi_1/kernel", "same"),
    "encoder/layers_{i}/mlp/wo": ("encoder/layers_{i}/mlp/wo/kernel", "same"),
    "decoder/relpos_bias/rel_embedding": ("decoder/relpos_bias/rel_embedding", "same"),
    "decoder/decoder_norm/scale": ("decoder/decoder_norm/scale", "same"),
    "decoder/logits_dense": ("decoder/logits_dense/kernel", "same"),
    "decoder/layers_{i}/pre_self_attention_layer_norm/scale":
        ("decoder/layers_{i}/pre_self_attention_layer_norm/scale", "same"),
    "decoder/layers_{i}/self_attention/query":
        ("decoder/layers_{i}/self_attention/query/kernel", "flat_in"),
    "decoder/layers_{i}/self_attention/key":
        ("decoder/layers_{i}/self_attention/key/kernel", "flat_in"),
    "decoder/layers_{i}/self_attention/value":
        ("decoder/layers_{i}/self_attention/value/kernel", "flat_in"),
    "decoder/layers_{i}/self_attention/out":
        ("decoder/layers_{i}/self_attention/out/kernel", "flat_out"),
    "decoder/layers_{i}/pre_cross_attention_layer_norm/scale":
        ("decoder/layers_{i}/pre_cross_attention_layer_norm/scale", "same"),
    "decoder/layers_{i}/encoder_decoder_attention/query":
        ("decoder/layers_{i}/encoder_decoder_attention/query/kernel", "flat_in"),
    "decoder/layers_{i}/encoder_decoder_attention/key":
        ("decoder/layers_{i}/encoder_decoder_attention/key/kernel", "flat_in"),
    "decoder/layers_{i}/encoder_decoder_attention/value":
        ("decoder/layers_{i}/encoder_decoder_attention/value/kernel", "flat_in"),
    "decoder/layers_{i}/encoder_decoder_attention/out":
        ("decoder/layers_{i}/encoder_decoder_attention/out/kernel", "flat_out"),
    "decoder/layers_{i}/pre_mlp_layer_norm/scale":
        ("decoder/layers_{i}/pre_mlp_layer_norm/scale", "same"),
    "decoder/layers_{i}/mlp/wi_0": ("decoder/layers_{i}/mlp/wi_0/kernel", "same"),
    "decoder/layers_{i}/mlp/wi_1": ("decoder/layers_{i}/mlp/wi_1/kernel", "same"),
    "decoder/layers_{i}/mlp/wo": ("decoder/layers_{i}/mlp/wo/kernel", "same"),
}
STORED_AS_BFLOAT16 = "encoder/layers_1/mlp/wi_0/kernel"  # T5X may save parameters in bf16
INLINE = ("encoder/encoder_norm/scale", "decoder/layers_1/pre_mlp_layer_norm/scale")


def _flat(tree):
  return pm.flatten(jax.tree.map(np.asarray, tree))


def source_params(config=CONFIG, seed=0):
  q = np.ones((1, 4), np.int32)
  return _flat(random_params(MT5(config), q, q, seed=seed))


def to_t5x(ours: dict[str, np.ndarray], config=CONFIG) -> dict[str, np.ndarray]:
  """Our flat params -> {T5X name: array as T5X stores it}, by ``T5X_NAMES`` only."""
  out, covered = {}, set()
  for our_template, (t5x_template, layout) in T5X_NAMES.items():
    layers = (config.num_encoder_layers if our_template.startswith("encoder")
              else config.num_decoder_layers)
    for i in range(layers) if "{i}" in our_template else [None]:
      path = our_template.format(i=i)
      array = ours[path]
      if layout == "flat_in":
        array = array.reshape(array.shape[0], -1)
      elif layout == "flat_out":
        array = array.reshape(-1, array.shape[-1])
      out[t5x_template.format(i=i)] = array
      covered.add(path)
  assert covered == set(ours), f"T5X_NAMES misses {sorted(set(ours) - covered)}"
  return out


def scan_t5x(flat: dict[str, np.ndarray], config=CONFIG, axis=1) -> dict[str, np.ndarray]:
  """T5X's scanned layout: ``{stack}/layers_N/x`` -> ``{stack}/layers/x`` stacked on ``axis``."""
  out, stacked = {}, {}
  for name, array in flat.items():
    parts = name.split("/")
    if parts[1].startswith("layers_"):
      stacked.setdefault(f"{parts[0]}/layers/" + "/".join(parts[2:]), {})[
          int(parts[1][len("layers_"):])] = array
    else:
      out[name] = array
  for name, layers in stacked.items():
    out[name] = np.stack([layers[i] for i in range(len(layers))], axis=axis)
  return out


def _zarr_leaf(ckpt_dir: str, name: str, array: np.ndarray) -> dict:
  """Writes ``array`` as T5X does (a zarr array in ``target.a.b``) and returns the spec the
  msgpack holds in its place (a path relative to the checkpoint directory)."""
  relative = name.replace("/", ".")
  dtype = "bfloat16" if array.dtype == ml_dtypes.bfloat16 else array.dtype.name
  metadata = {"compressor": {"id": "gzip"}, "shape": list(array.shape),
              "chunks": np.array([max(1, d // 2) for d in array.shape])}
  store = ts.open({"driver": "zarr", "dtype": dtype,
                   "kvstore": {"driver": "file", "path": os.path.join(ckpt_dir, relative)},
                   "metadata": {**metadata, "chunks": [int(c) for c in metadata["chunks"]]}},
                  create=True).result()
  store.write(array).result()
  return {"driver": "zarr", "dtype": dtype, "kvstore": {"driver": "file", "path": relative},
          "metadata": metadata}


def write_t5x_checkpoint(ckpt_dir: str, target: dict[str, np.ndarray], inline=INLINE) -> str:
  """A T5X checkpoint directory: `checkpoint` (msgpack: version 3, optimizer target + state)
  and a zarr array per leaf except ``inline`` ones (kept in the msgpack)."""
  os.makedirs(ckpt_dir)
  leaves = {name: array if name in inline else _zarr_leaf(ckpt_dir, "target/" + name, array)
            for name, array in target.items()}
  first = sorted(target)[0]
  state = {"step": np.int32(1000),  # optimizer slots are written too, and not imported
           "param_states": pm.unflatten({first + "/v": _zarr_leaf(
               ckpt_dir, f"state/param_states/{first}/v", np.ones_like(target[first]))})}
  contents = {"version": 3, "optimizer": {"target": pm.unflatten(leaves), "state": state}}
  with open(os.path.join(ckpt_dir, t5x_reader.CHECKPOINT_FILE), "wb") as f:
    f.write(serialization.msgpack_serialize(contents))
  return ckpt_dir


@pytest.fixture(scope="module")
def source():
  params = source_params()
  target = to_t5x(params)
  target[STORED_AS_BFLOAT16] = target[STORED_AS_BFLOAT16].astype(ml_dtypes.bfloat16)
  # What the import must give: the source, with the bf16-stored array rounded as stored.
  expected = dict(params)
  expected["encoder/layers_1/mlp/wi_0"] = target[STORED_AS_BFLOAT16].astype(np.float32)
  return params, target, expected


@pytest.fixture(scope="module")
def t5x_dir(source, tmp_path_factory):
  _, target, _ = source
  return write_t5x_checkpoint(str(tmp_path_factory.mktemp("t5x") / "checkpoint_1000"), target)


def _assert_params_equal(got: dict, want: dict):
  assert sorted(got) == sorted(want)
  for k, v in want.items():
    assert got[k].dtype == np.float32, k
    np.testing.assert_array_equal(got[k], v, err_msg=k)


def test_layout_on_disk_is_t5x(t5x_dir):
  names = os.listdir(t5x_dir)
  assert "target.encoder.layers_0.attention.query.kernel" in names
  assert os.path.exists(os.path.join(t5x_dir, "target.token_embedder.embedding", ".zarray"))
  assert "state.param_states.decoder.decoder_norm.scale.v" in names
  assert "target.encoder.encoder_norm.scale" not in names  # kept inline in the msgpack
  assert checkpoint_kind(t5x_dir) == "t5x"


def test_unscanned_import_equals_the_source(source, t5x_dir):
  _, _, expected = source
  config, params = load_t5x_mt5(t5x_dir)
  assert config == CONFIG.replace(dropout_rate=config.dropout_rate)
  _assert_params_equal(_flat(params), expected)


def test_scanned_checkpoint_imports_the_same(source, tmp_path):
  _, target, expected = source
  ckpt = write_t5x_checkpoint(str(tmp_path / "scanned"), scan_t5x(target), inline=())
  assert "target.encoder.layers.attention.query.kernel" in os.listdir(ckpt)
  config, params = load_t5x_mt5(ckpt)
  assert (config.num_encoder_layers, config.num_decoder_layers) == (3, 2)
  _assert_params_equal(_flat(params), expected)
  # And into a scan-over-layers model: our stacked layout.
  scan_config, scan_params = load_t5x_mt5(ckpt, scan_layers=True)
  assert scan_config.scan_layers
  _assert_params_equal(_flat(scan_params), _flat(pm.scan_layers(pm.unflatten(expected))))


def test_missing_unexpected_and_misshapen_parameters_are_listed(source, tmp_path):
  _, target, _ = source
  broken = dict(target)
  del broken["encoder/layers_1/mlp/wo/kernel"]
  broken["encoder/layers_1/attention/extra/kernel"] = np.zeros((2, 2), np.float32)
  broken["decoder/layers_0/mlp/wi_1/kernel"] = np.zeros((32, 7), np.float32)
  ckpt = write_t5x_checkpoint(str(tmp_path / "broken"), broken)
  with pytest.raises(CheckpointMappingError) as err:
    load_t5x_mt5(ckpt)
  message = str(err.value)
  assert "missing (1): encoder/layers_1/mlp/wo/kernel" in message
  assert "unexpected (1): encoder/layers_1/attention/extra/kernel" in message
  assert "decoder/layers_0/mlp/wi_1/kernel: stored (32, 7), this config needs (32, 48)" in message


def test_unreadable_sources_are_typed_errors(source, tmp_path):
  _, target, _ = source
  not_t5x = tmp_path / "not_t5x"
  not_t5x.mkdir()
  (not_t5x / "checkpoint").write_bytes(serialization.msgpack_serialize({"version": 3,
                                                                        "optimizer": {}}))
  with pytest.raises(CheckpointFormatError, match="no 'target' parameter tree"):
    load_t5x_mt5(str(not_t5x))
  # A T5 1.0 (ReLU, single `wi`) checkpoint is refused by name.
  relu = {n.replace("wi_0", "wi"): a for n, a in target.items() if "wi_1" not in n}
  with pytest.raises(CheckpointFormatError, match="single 'wi'"):
    load_t5x_mt5(write_t5x_checkpoint(str(tmp_path / "relu"), relu, inline=()))
  # An array directory that is gone: the error names the parameter.
  ckpt = write_t5x_checkpoint(str(tmp_path / "gone"), target)
  import shutil
  shutil.rmtree(os.path.join(ckpt, "target.decoder.decoder_norm.scale"))
  with pytest.raises(CheckpointFormatError, match="target/decoder/decoder_norm/scale"):
    load_t5x_mt5(ckpt)
  # An orbax directory that happens to hold a `checkpoint` file is not T5X.
  orbax_like = tmp_path / "orbax_like"
  orbax_like.mkdir()
  (orbax_like / "checkpoint").write_bytes(b"")
  (orbax_like / "_METADATA").write_text("{}")
  assert not t5x_reader.is_t5x_checkpoint(sorted(os.listdir(orbax_like)))


def test_gcs_arrays_are_read_through_the_gcs_kvstore():
  spec = t5x_reader._array_kvstore("gs://t5-data/pretrained_models/t5x/mt5_large/"
                                   "checkpoint_1000000", "target.token_embedder.embedding")
  assert spec == {"driver": "gcs", "bucket": "t5-data",
                  "path": "pretrained_models/t5x/mt5_large/checkpoint_1000000/"
                          "target.token_embedder.embedding/"}


def _import(args: list[str]) -> int:
  return cli_main.main(["import", *args])


def test_cli_import_writes_an_export(source, t5x_dir, tmp_path, capsys):
  _, _, expected = source
  out = tmp_path / "export"
  assert _import(["t5x", "--src", t5x_dir, "--out", str(out), "--vocab",
                  tiny_vocab_path()]) == 0
  assert "imported" in capsys.readouterr().out
  assert checkpoint_kind(str(out)) == "exported"
  config, params, _, manifest = exported.load_exported(str(out), require_unified=False)
  assert config == CONFIG.replace(dropout_rate=config.dropout_rate)
  assert manifest["source"]["kind"] == "t5x" and manifest["source"]["step"] == 1000
  _assert_params_equal(_flat(params), expected)
  # --unified: the same mT5 params plus a new, listed retriever head.
  out = tmp_path / "unified"
  assert _import(["t5x", "--src", t5x_dir, "--out", str(out), "--vocab", tiny_vocab_path(),
                  "--unified", "--retriever_layer", "1"]) == 0
  assert "initialised (not in the source): retriever/query_proj" in capsys.readouterr().out
  config, params, _, _ = exported.load_exported(str(out))
  assert config.resolved_retriever_layer == 1
  flat = _flat(params)
  assert {k for k in flat if k.startswith("retriever/")} == {
      "retriever/query_proj", "retriever/passage_proj", "retriever/layer_norm/scale"}
  _assert_params_equal({k: v for k, v in flat.items() if not k.startswith("retriever/")},
                       expected)
  # --retriever_layer means nothing for a plain mT5 import.
  assert _import(["t5x", "--src", t5x_dir, "--out", str(tmp_path / "x"), "--vocab",
                  tiny_vocab_path(), "--retriever_layer", "1"]) == 2


def test_parity_with_the_hugging_face_importer(tmp_path):
  """One torch mT5, written as a Hugging Face directory and, by this test's own HF -> T5X
  table (a T5X kernel is the transposed torch weight), as a T5X checkpoint: both importers
  give identical params."""
  pytest.importorskip("torch")
  pytest.importorskip("transformers")
  from clqa_jax.checkpoints import load_hf_mt5
  from models_testutil import build_hf_mt5, save_hf

  hf = build_hf_mt5("a")
  state = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
  attention = {"q": "query", "k": "key", "v": "value", "o": "out"}
  mlp = ("wi_0", "wi_1", "wo")
  target = {
      "token_embedder/embedding": state["shared.weight"],
      "decoder/logits_dense/kernel": state["lm_head.weight"].T,
      "encoder/encoder_norm/scale": state["encoder.final_layer_norm.weight"],
      "decoder/decoder_norm/scale": state["decoder.final_layer_norm.weight"],
  }
  for stack in ("encoder", "decoder"):
    target[f"{stack}/relpos_bias/rel_embedding"] = state[
        f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"].T
  for i in range(hf.config.num_layers):
    hf_block, t5x = f"encoder.block.{i}.layer", f"encoder/layers_{i}"
    target[f"{t5x}/pre_attention_layer_norm/scale"] = state[f"{hf_block}.0.layer_norm.weight"]
    target[f"{t5x}/pre_mlp_layer_norm/scale"] = state[f"{hf_block}.1.layer_norm.weight"]
    for p, q in attention.items():
      target[f"{t5x}/attention/{q}/kernel"] = state[f"{hf_block}.0.SelfAttention.{p}.weight"].T
    for n in mlp:
      target[f"{t5x}/mlp/{n}/kernel"] = state[f"{hf_block}.1.DenseReluDense.{n}.weight"].T
  for i in range(hf.config.num_decoder_layers):
    hf_block, t5x = f"decoder.block.{i}.layer", f"decoder/layers_{i}"
    for j, norm in enumerate(("pre_self_attention", "pre_cross_attention", "pre_mlp")):
      target[f"{t5x}/{norm}_layer_norm/scale"] = state[f"{hf_block}.{j}.layer_norm.weight"]
    for p, q in attention.items():
      target[f"{t5x}/self_attention/{q}/kernel"] = state[
          f"{hf_block}.0.SelfAttention.{p}.weight"].T
      target[f"{t5x}/encoder_decoder_attention/{q}/kernel"] = state[
          f"{hf_block}.1.EncDecAttention.{p}.weight"].T
    for n in mlp:
      target[f"{t5x}/mlp/{n}/kernel"] = state[f"{hf_block}.2.DenseReluDense.{n}.weight"].T
  t5x_config, t5x_params = load_t5x_mt5(write_t5x_checkpoint(
      str(tmp_path / "t5x"), {k: np.ascontiguousarray(v) for k, v in target.items()}))
  hf_config, hf_params = load_hf_mt5(save_hf(hf, str(tmp_path / "hf")))
  assert t5x_config == hf_config.replace(dropout_rate=t5x_config.dropout_rate)
  _assert_params_equal(_flat(t5x_params), _flat(hf_params))
