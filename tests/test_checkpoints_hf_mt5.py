"""Hugging Face / official CLASS checkpoint import: file formats, errors, layouts, CLI."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from clqa_jax.checkpoints import (CheckpointMappingError, load_class_checkpoint,  # noqa: E402
                                  load_hf_mt5)
from clqa_jax.checkpoints import exported, hf_mt5, param_mapping  # noqa: E402
from clqa_jax.checkpoints.kinds import checkpoint_kind  # noqa: E402
from clqa_jax.cli import main as cli_main  # noqa: E402
from clqa_jax.models import MT5, UnifiedRetrieverReader  # noqa: E402
from models_testutil import build_hf_mt5, padded_batch, save_hf  # noqa: E402


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
  model = build_hf_mt5("a")
  root = tmp_path_factory.mktemp("hf")
  st = save_hf(model, str(root / "st"), True)
  _small_vocab(os.path.join(st, "spiece.model"))   # a HF directory ships its tokenizer
  return model, st, save_hf(model, str(root / "bin"), False)


def _small_vocab(path: str) -> str:
  """A SentencePiece model with fewer pieces than the fixture model's 300 ids."""
  import sentencepiece as spm

  text = os.path.join(os.path.dirname(path), "spm_text.txt")
  with open(text, "w", encoding="utf-8") as f:
    f.write("\n".join(f"question {i} answer passage title {i * 7}" for i in range(200)))
  spm.SentencePieceTrainer.train(input=text, model_prefix=path[:-len(".model")],
                                 vocab_size=60, hard_vocab_limit=False, pad_id=0, eos_id=1,
                                 unk_id=2, bos_id=-1)
  os.remove(text)
  os.remove(path[:-len(".model")] + ".vocab")
  return path


def _flat(tree):
  return param_mapping.flatten(jax.tree.map(np.asarray, tree))


def test_bin_and_safetensors_give_the_same_params(hf_dirs):
  _, st, binary = hf_dirs
  assert os.path.exists(os.path.join(st, "model.safetensors"))
  assert os.path.exists(os.path.join(binary, "pytorch_model.bin"))
  c1, p1 = load_hf_mt5(st)
  c2, p2 = load_hf_mt5(binary)
  assert c1 == c2
  f1, f2 = _flat(p1), _flat(p2)
  assert sorted(f1) == sorted(f2)
  for k in f1:
    np.testing.assert_array_equal(f1[k], f2[k])


def test_missing_and_unexpected_tensors_are_listed(hf_dirs, tmp_path):
  from safetensors.numpy import save_file

  _, st, _ = hf_dirs
  tensors = hf_mt5.read_hf_tensors(st)
  del tensors["encoder.block.1.layer.1.DenseReluDense.wo.weight"]
  tensors["encoder.block.9.layer.0.SelfAttention.q.weight"] = np.zeros((2, 2), np.float32)
  save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()},
            str(tmp_path / "model.safetensors"))
  with open(os.path.join(st, "config.json")) as f:
    (tmp_path / "config.json").write_text(f.read())
  with pytest.raises(CheckpointMappingError) as err:
    load_hf_mt5(str(tmp_path))
  message = str(err.value)
  assert "missing (1): encoder.block.1.layer.1.DenseReluDense.wo.weight" in message
  assert "unexpected (1): encoder.block.9.layer.0.SelfAttention.q.weight" in message


def test_bad_config_is_a_typed_error(tmp_path):
  (tmp_path / "config.json").write_text(json.dumps({"feed_forward_proj": "relu"}))
  with pytest.raises(hf_mt5.CheckpointFormatError, match="feed_forward_proj"):
    hf_mt5.config_from_hf(str(tmp_path))


def test_scan_and_remat_variants_agree(hf_dirs):
  _, st, _ = hf_dirs
  config, params = load_hf_mt5(st)
  scan_config, scan_params = load_hf_mt5(st, scan_layers=True, remat_policy="full")
  assert "layers" in scan_params["encoder"] and "layers_0" not in scan_params["encoder"]
  enc = padded_batch(config.vocab_size, [9, 5], seed=3)
  dec = np.array([[0, 5, 6, 7], [0, 8, 9, 1]], np.int32)

  def loss(model, params):
    return jnp.mean(jax.nn.log_softmax(model.apply({"params": params}, enc, dec))[..., 3])

  @jax.jit
  def both(params, scan_params):
    a = jax.value_and_grad(lambda p: loss(MT5(config), p))(params)
    b = jax.value_and_grad(lambda p: loss(MT5(scan_config), p))(scan_params)
    return a, b

  with jax.default_matmul_precision("highest"):
    (la, ga), (lb, gb) = both(params, scan_params)
  np.testing.assert_allclose(float(la), float(lb), rtol=1e-6)
  ga = param_mapping.scan_layers(jax.tree.map(np.asarray, ga))
  for k, v in _flat(ga).items():
    np.testing.assert_allclose(v, _flat(gb)[k], rtol=1e-4, atol=1e-5, err_msg=k)
  back = param_mapping.unscan_layers(jax.tree.map(np.asarray, scan_params))
  assert sorted(_flat(back)) == sorted(_flat(params))


def _write_class_checkpoint(hf_model, directory, retriever_layer, seed=0):
  """The official CLASS layout: mT5 tensors + the retriever head in encoder block R."""
  from safetensors.numpy import save_file

  rng = np.random.default_rng(seed)
  d = hf_model.config.d_model
  tensors = {k: v.detach().numpy().copy() for k, v in hf_model.state_dict().items()
             if k not in param_mapping.HF_EMBEDDING_ALIASES}
  prefix = f"encoder.block.{retriever_layer}.layer.0.SelfAttention."
  tensors[prefix + "query_proj.weight"] = rng.uniform(-0.2, 0.2, (d, d)).astype(np.float32)
  tensors[prefix + "passage_proj.weight"] = rng.uniform(-0.2, 0.2, (d, d)).astype(np.float32)
  tensors[prefix + "layer_norm.weight"] = (1 + 0.1 * rng.standard_normal(d)).astype(np.float32)
  os.makedirs(directory, exist_ok=True)
  save_file(tensors, os.path.join(directory, "model.safetensors"))
  hf_model.config.to_json_file(os.path.join(directory, "config.json"))
  return tensors


def test_class_checkpoint_import_and_retrieval_vectors(hf_dirs, tmp_path):
  hf, _, _ = hf_dirs
  r = 1
  tensors = _write_class_checkpoint(hf, str(tmp_path), r)
  config, params = load_class_checkpoint(str(tmp_path))
  assert config.resolved_retriever_layer == r        # 3 encoder layers // 2
  np.testing.assert_array_equal(
      params["retriever"]["query_proj"],
      tensors[f"encoder.block.{r}.layer.0.SelfAttention.query_proj.weight"].T)
  # Reference retrieval vectors with the torch model: the normalized input of block R's
  # self-attention, masked mean, projection, shared T5 RMSNorm.
  query = padded_batch(config.mt5.vocab_size, [7, 4], seed=5)
  query[query == 1] = 0                               # queries carry no EOS
  prefix = f"encoder.block.{r}.layer.0.SelfAttention."
  with torch.no_grad():
    x = torch.tensor(query).long()
    mask = (x != 0).float()
    hidden = hf.encoder(input_ids=x, attention_mask=mask.long(),
                        output_hidden_states=True).hidden_states[r]
    u = hf.encoder.block[r].layer[0].layer_norm(hidden)
    pooled = (u * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    proj = pooled @ torch.tensor(tensors[prefix + "query_proj.weight"]).T
    var = proj.pow(2).mean(-1, keepdim=True)
    ref = proj * torch.rsqrt(var + 1e-6) * torch.tensor(tensors[prefix + "layer_norm.weight"])
  model = UnifiedRetrieverReader(config)
  with jax.default_matmul_precision("highest"):
    ours = jax.jit(lambda p, q: model.apply({"params": p}, q, method="encode_queries"))(
        params, query)
  np.testing.assert_allclose(np.asarray(ours), ref.numpy(), atol=1e-5)
  # The CLASS tensors need the retriever rules: a plain mT5 import lists them as unexpected.
  with pytest.raises(CheckpointMappingError, match="query_proj"):
    load_hf_mt5(str(tmp_path))


def test_import_cli_writes_an_export(hf_dirs, tmp_path, capsys):
  """`clqa import` writes the format `clqa export` writes: load_exported reads it back."""
  _, st, _ = hf_dirs
  out = tmp_path / "ckpt"
  assert cli_main.main(["import", "hf_mt5", "--src", st, "--out", str(out)]) == 0
  assert "imported" in capsys.readouterr().out
  assert checkpoint_kind(str(out)) == "exported"
  assert sorted(os.listdir(out)) == ["manifest.json", "model_config.json", "params", "vocab"]
  config, params, vocab, manifest = exported.load_exported(str(out), require_unified=False)
  ref_config, ref_params = load_hf_mt5(st)
  assert config == ref_config
  for k, v in _flat(ref_params).items():
    np.testing.assert_array_equal(_flat(params)[k], v)
  assert json.loads((out / "model_config.json").read_text())["kind"] == "mt5"
  assert manifest["source"]["kind"] == "hf_mt5" and manifest["format"] == exported.FORMAT
  with open(vocab, "rb") as f1, open(os.path.join(st, "spiece.model"), "rb") as f2:
    assert f1.read() == f2.read()
  # A plain mT5 export is no retriever-reader: eval/index/infer refuse it by default.
  with pytest.raises(exported.ExportFormatError, match="kind' is 'mt5'"):
    exported.load_exported(str(out))
  # An existing output is never overwritten silently.
  assert cli_main.main(["import", "hf_mt5", "--src", st, "--out", str(out)]) == 2
  assert "--overwrite" in capsys.readouterr().err


def test_import_without_a_vocabulary_is_a_clear_error(hf_dirs, tmp_path, monkeypatch, capsys):
  _, _, binary = hf_dirs
  monkeypatch.setenv("CLQA_VOCAB", str(tmp_path / "absent.model"))
  monkeypatch.delenv("CLQA_DATA_DIR", raising=False)
  assert cli_main.main(["import", "hf_mt5", "--src", binary, "--out",
                                           str(tmp_path / "o")]) == 2
  assert "--vocab" in capsys.readouterr().err
  assert not (tmp_path / "o").exists()


def test_hf_mt5_as_unified_fills_the_retriever_head(hf_dirs, tmp_path, capsys):
  from clqa_jax.models.param_summary import abstract_params, describe_params

  _, st, _ = hf_dirs
  out = tmp_path / "unified"
  assert cli_main.main(["import", "hf_mt5", "--src", st, "--out", str(out), "--unified",
                        "--retriever_layer", "2"]) == 0
  printed = capsys.readouterr().out
  assert "initialised (not in the source): retriever/query_proj" in printed
  config, params, _, manifest = exported.load_exported(str(out))
  assert config.resolved_retriever_layer == 2
  assert "retriever/query_proj" in manifest["source"]["initialised"]
  want = describe_params(abstract_params(UnifiedRetrieverReader(config)))
  got = _flat(params)
  assert sorted(got) == sorted(want)
  for k, entry in want.items():
    assert list(got[k].shape) == entry["shape"], k


def _set_config_fields(directory, **fields):
  """Adds fields to a Hugging Face directory's config.json, as the official CLASS code saves them."""
  path = os.path.join(directory, "config.json")
  with open(path) as f:
    config = json.load(f)
  config.update(fields)
  with open(path, "w") as f:
    json.dump(config, f)


def _import(args, capsys):
  rc = cli_main.main(["import", *args])
  return rc, capsys.readouterr()


def test_class_import_reads_the_retriever_layer_from_config_json(hf_dirs, tmp_path, capsys):
  hf, st, _ = hf_dirs
  src = str(tmp_path / "class")
  tensors = _write_class_checkpoint(hf, src, retriever_layer=2)  # not 3 encoder layers // 2
  _set_config_fields(src, retriever_layer=2)
  out = tmp_path / "out"
  rc, _ = _import(["class", "--src", src, "--out", str(out), "--vocab",
                   os.path.join(st, "spiece.model")], capsys)
  assert rc == 0
  config, params, _, manifest = exported.load_exported(str(out))
  assert config.retriever_layer == 2
  np.testing.assert_array_equal(
      params["retriever"]["query_proj"],
      tensors["encoder.block.2.layer.0.SelfAttention.query_proj.weight"].T)
  assert manifest["source"]["retriever_head"] is None  # the projection head, no MaxSim head
  # A --retriever_layer that contradicts config.json is an error naming the file and field.
  rc, printed = _import(["class", "--src", src, "--out", str(tmp_path / "o2"), "--vocab",
                         os.path.join(st, "spiece.model"), "--retriever_layer", "1"], capsys)
  assert rc == 2 and "config.json: field retriever_layer is 2" in printed.err
  _set_config_fields(src, retriever_layer=3)  # outside the 3 encoder layers
  with pytest.raises(hf_mt5.CheckpointFormatError, match="field retriever_layer is 3"):
    load_class_checkpoint(src)


def test_teacher_import_reads_layer_and_maxsim_head_from_config_json(hf_dirs, tmp_path, capsys):
  import shutil

  from clqa_jax.checkpoints import unified_params
  from clqa_jax.checkpoints.kinds import CheckpointKindError

  _, st, _ = hf_dirs
  src = str(tmp_path / "teacher")
  shutil.copytree(st, src)
  _set_config_fields(src, retriever_layer=0, retriever_head=2)
  out = tmp_path / "out"
  rc, _ = _import(["hf_mt5", "--src", src, "--out", str(out), "--unified"], capsys)
  assert rc == 0
  config, _, _, manifest = exported.load_exported(str(out))
  assert config.retriever_layer == 0 and config.resolved_retriever_layer == 0
  assert manifest["source"]["retriever_head"] == 2
  unified_params.check_maxsim_head(str(out), 2, "Teacher.checkpoint")
  with pytest.raises(CheckpointKindError, match="source.retriever_head is 2"):
    unified_params.check_maxsim_head(str(out), 6, "Teacher.checkpoint")
  # Without the fields: layers // 2 and the official teacher default head 6.
  plain = tmp_path / "plain"
  rc, _ = _import(["hf_mt5", "--src", st, "--out", str(plain), "--unified"], capsys)
  assert rc == 0
  config, _, _, manifest = exported.load_exported(str(plain))
  assert config.retriever_layer is None and config.resolved_retriever_layer == 1
  assert manifest["source"]["retriever_head"] == hf_mt5.DEFAULT_TEACHER_RETRIEVER_HEAD == 6
  _set_config_fields(src, retriever_head=99)
  rc, printed = _import(["hf_mt5", "--src", src, "--out", str(tmp_path / "o3"), "--unified"],
                        capsys)
  assert rc == 2 and "field retriever_head is 99" in printed.err


def test_tied_embeddings_match_hf(tmp_path):
  """tie_word_embeddings=True: no lm_head, logits = embedding . (h * d^-0.5), as HF."""
  import transformers

  cfg = transformers.MT5Config(vocab_size=120, d_model=32, d_kv=8, d_ff=48, num_heads=4,
                               num_layers=1, num_decoder_layers=1, dropout_rate=0.0,
                               feed_forward_proj="gated-gelu", tie_word_embeddings=True,
                               decoder_start_token_id=0)
  torch.manual_seed(1)
  hf = transformers.MT5ForConditionalGeneration(cfg).eval()
  save_hf(hf, str(tmp_path), False)     # the .bin keeps lm_head.weight (tied storage)
  config, params = load_hf_mt5(str(tmp_path))
  assert config.tie_word_embeddings and "logits_dense" not in params["decoder"]
  enc = padded_batch(120, [6, 3], seed=2)
  dec = np.array([[0, 4, 5], [0, 6, 7]], np.int32)
  with torch.no_grad():
    x = torch.tensor(enc).long()
    ref = hf(input_ids=x, attention_mask=(x != 0).long(),
             decoder_input_ids=torch.tensor(dec).long()).logits.numpy()
  with jax.default_matmul_precision("highest"):
    ours = jax.jit(MT5(config).apply)({"params": params}, enc, dec)
  np.testing.assert_allclose(np.asarray(ours), ref, atol=1e-4)
