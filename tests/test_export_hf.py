"""Hugging Face export: transformers loads it and agrees with our model; the official CLASS
importer reads it back to the same retriever."""
import json
import os

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from clqa_jax.checkpoints import hf_export  # noqa: E402
from clqa_jax.checkpoints import load_class_checkpoint  # noqa: E402
from clqa_jax.checkpoints import param_mapping as pm  # noqa: E402
from clqa_jax.models import MT5, UnifiedRetrieverReader  # noqa: E402
from fixtures.export import tiny_run  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  config = tiny_run.tiny_config(num_encoder_layers=3)   # R = 1: not the middle by accident
  params = tiny_run.tiny_params(config, seed=3)
  out = hf_export.export_hf(config, params, str(tmp_path_factory.mktemp("hf") / "model"))
  return config, params, out


def _batch(seed):
  rng = np.random.default_rng(seed)
  enc = rng.integers(3, tiny_run.VOCAB_SIZE, (3, 11)).astype(np.int32)
  enc[0, 8:] = 0
  enc[1, 5:] = 0
  enc[np.arange(3), [7, 4, 10]] = 1
  dec = np.concatenate([np.zeros((3, 1), np.int32),
                        rng.integers(3, tiny_run.VOCAB_SIZE, (3, 6)).astype(np.int32)], 1)
  return enc, dec


def test_transformers_loads_it_and_logits_match(exported):
  config, params, out = exported
  with open(os.path.join(out, "config.json")) as f:
    cfg = json.load(f)
  assert cfg["tie_word_embeddings"] is False and cfg["retriever_layer"] == 1
  hf = transformers.MT5ForConditionalGeneration.from_pretrained(out).eval()
  enc, dec = _batch(0)
  with torch.no_grad():
    x = torch.tensor(enc).long()
    ref = hf(input_ids=x, attention_mask=(x != 0).long(),
             decoder_input_ids=torch.tensor(dec).long()).logits.numpy()
  backbone = {k: v for k, v in params.items() if k != "retriever"}
  with jax.default_matmul_precision("highest"):
    ours = jax.jit(MT5(config.mt5).apply)({"params": backbone}, enc, dec)
  assert ours.shape == ref.shape
  np.testing.assert_allclose(np.asarray(ours), ref, atol=1e-4, rtol=0)


def test_class_importer_reads_the_same_retriever(exported):
  config, params, out = exported
  tensors = hf_export.hf_tensors(config, params)
  for name in ("query_proj", "passage_proj", "layer_norm"):
    assert f"encoder.block.1.layer.0.SelfAttention.{name}.weight" in tensors
  imported_config, imported = load_class_checkpoint(out, retriever_layer=1)
  assert imported_config.resolved_retriever_layer == 1
  assert imported_config.mt5 == config.mt5
  flat, ref = pm.flatten(imported), pm.flatten(jax.tree.map(np.asarray, params))
  assert sorted(flat) == sorted(ref)
  for k in ref:
    np.testing.assert_array_equal(flat[k], ref[k], err_msg=k)
  model = UnifiedRetrieverReader(config)
  enc, _ = _batch(1)
  queries = np.where(enc == 1, 0, enc)   # queries carry no EOS
  for method, tokens in (("encode_queries", queries), ("encode_passages", enc)):
    fn = jax.jit(lambda p, t, m=method: model.apply({"params": p}, t, method=m))
    np.testing.assert_array_equal(np.asarray(fn(imported, tokens)), np.asarray(fn(params, tokens)))


def test_bfloat16_and_overwrite(exported, tmp_path):
  config, params, _ = exported
  out = hf_export.export_hf(config, params, str(tmp_path / "bf"), dtype="bfloat16",
                            include_retriever=False)
  from clqa_jax.checkpoints.hf_mt5 import read_safetensors
  tensors = read_safetensors(os.path.join(out, "model.safetensors"))
  assert all(t.dtype == jax.numpy.bfloat16 for t in tensors.values())
  assert not any("query_proj" in k for k in tensors)
  with pytest.raises(FileExistsError):
    hf_export.export_hf(config, params, out)
  hf_export.export_hf(config, params, out, overwrite=True)
  assert sorted(os.listdir(tmp_path)) == ["bf"]


def test_official_class_checkpoint_to_export_and_back(exported, tmp_path):
  """An official-layout CLASS directory -> `clqa import class` (an export) -> `clqa export`
  -> the same params; then `clqa export --format hf` of that export writes the same tensors."""
  from clqa_jax.checkpoints import exported as exported_lib
  from clqa_jax.checkpoints.hf_mt5 import read_safetensors
  from clqa_jax.checkpoints.kinds import checkpoint_kind
  from clqa_jax.cli import main as cli_main
  from fixtures.data.tiny_vocab import tiny_vocab_path

  config, params, hf_dir = exported
  assert checkpoint_kind(hf_dir) == "class"
  imported = str(tmp_path / "imported")
  assert cli_main.main(["import", "class", "--src", hf_dir, "--out", imported,
                        "--retriever_layer", "1", "--vocab", tiny_vocab_path()]) == 0
  assert checkpoint_kind(imported) == "exported"
  out = str(tmp_path / "export")
  assert cli_main.main(["export", "--checkpoint_dir", imported, "--out", out]) == 0
  got_config, got, _, manifest = exported_lib.load_exported(out)
  assert got_config.mt5 == config.mt5 and got_config.resolved_retriever_layer == 1
  assert manifest["source"]["kind"] == "export"
  assert exported_lib.read_manifest(imported)["source"]["kind"] == "class"
  flat, ref = pm.flatten(got), pm.flatten(jax.tree.map(np.asarray, params))
  for k in ref:
    np.testing.assert_array_equal(flat[k], ref[k], err_msg=k)
  again = str(tmp_path / "hf_again")
  assert cli_main.main(["export", "--checkpoint_dir", out, "--format", "hf", "--out",
                        again]) == 0
  a = read_safetensors(os.path.join(hf_dir, "model.safetensors"))
  b = read_safetensors(os.path.join(again, "model.safetensors"))
  assert sorted(a) == sorted(b)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  assert os.path.exists(os.path.join(again, "spiece.model"))
  # A Hugging Face directory is no export source: the error says to import it first.
  assert cli_main.main(["export", "--checkpoint_dir", hf_dir, "--out",
                        str(tmp_path / "x")]) == 2


def test_scanned_params_export_the_same_tensors(exported):
  config, params, _ = exported
  scan_config = type(config)(mt5=config.mt5.replace(scan_layers=True),
                             retriever_layer=config.retriever_layer)
  scanned = pm.scan_layers(params)
  assert "layers" in scanned["encoder"]
  a, b = hf_export.hf_tensors(config, params), hf_export.hf_tensors(scan_config, scanned)
  assert sorted(a) == sorted(b)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
