"""Exported checkpoints: run -> export -> load round trip, step choice, dtype, errors, CLI."""
import json
import os

import jax
import numpy as np
import pytest

from clqa_jax.checkpoints import export
from clqa_jax.checkpoints import exported
from clqa_jax.checkpoints import param_mapping as pm
from clqa_jax.cli import main as cli_main
from clqa_jax.models import UnifiedRetrieverReader
from fixtures.data.tiny_vocab import tiny_vocab_path
from fixtures.export import tiny_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  config = tiny_run.tiny_config()
  p1, p2 = tiny_run.tiny_params(config, seed=1), tiny_run.tiny_params(config, seed=2)
  run_dir = str(tmp_path_factory.mktemp("run"))
  # Step 10 is the best by eval/f1, step 20 the latest.
  tiny_run.write_run(run_dir, config, {10: (p1, 0.6), 20: (p2, 0.4)}, tiny_vocab_path())
  return run_dir, config, p1, p2


def _same_tree(a, b):
  fa, fb = pm.flatten(jax.tree.map(np.asarray, a)), pm.flatten(jax.tree.map(np.asarray, b))
  assert sorted(fa) == sorted(fb)
  for k in fa:
    np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)


_JITTED = {}


def _outputs(config, params):
  """Every output of the model on a fixed batch (one compilation per config)."""
  if config not in _JITTED:
    _JITTED[config] = jax.jit(UnifiedRetrieverReader(config).apply)
  rng = np.random.default_rng(0)
  q = np.concatenate([rng.integers(3, 800, (2, 5)), np.zeros((2, 2), int)], 1).astype(np.int32)
  p = rng.integers(3, 800, (2, 3, 9)).astype(np.int32)
  p[:, :, -1] = 1
  d = rng.integers(3, 800, (2, 4)).astype(np.int32)
  out = _JITTED[config]({"params": params}, q, p, d)
  return {k: np.asarray(v) for k, v in out.items()}


def test_round_trip_gives_identical_params_and_outputs(run, tmp_path):
  run_dir, config, _, p2 = run
  out = str(tmp_path / "export")
  manifest = export.export_checkpoint(run_dir, out)
  assert manifest["source"]["step"] == 20 and manifest["format_version"] == 1
  loaded_config, params, vocab, manifest2 = exported.load_exported(out)
  assert loaded_config == config        # from the run's model_config.json
  assert manifest2 == manifest
  _same_tree(params, p2)
  a, b = _outputs(config, p2), _outputs(loaded_config, params)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  with open(vocab, "rb") as f1, open(tiny_vocab_path(), "rb") as f2:
    assert f1.read() == f2.read()
  with open(os.path.join(out, "config.gin")) as f:
    assert "vocabulary_path.path" in f.read()
  # Written atomically: nothing but the export itself is left in the parent.
  assert sorted(os.listdir(tmp_path)) == ["export"]


def test_step_best_and_number(run, tmp_path):
  run_dir, _, p1, _ = run
  m = export.export_checkpoint(run_dir, str(tmp_path / "best"), step="best")
  assert m["source"]["step"] == 10 and m["source"]["selected_by"] == "eval/f1"
  _same_tree(exported.load_exported(str(tmp_path / "best"))[1], p1)
  m = export.export_checkpoint(os.path.join(run_dir, "checkpoints"), str(tmp_path / "n"),
                               step=10)
  assert m["source"]["step"] == 10
  with pytest.raises(FileNotFoundError, match="no step 15"):
    export.export_checkpoint(run_dir, str(tmp_path / "x"), step=15)


def test_bfloat16_export_and_reexport(run, tmp_path):
  run_dir, config, _, p2 = run
  out = str(tmp_path / "bf16")
  export.export_checkpoint(run_dir, out, dtype="bfloat16")
  _, params, _, manifest = exported.load_exported(out)
  assert manifest["dtype"] == "bfloat16"
  leaves = jax.tree.leaves(params)
  assert all(x.dtype == jax.numpy.bfloat16 for x in leaves)
  a = _outputs(config, p2)["query_vectors"]
  b = _outputs(config, jax.tree.map(lambda x: x.astype(np.float32), params))["query_vectors"]
  np.testing.assert_allclose(a, b, atol=0.05)
  # An export is a valid source (here: back to float32 values of the bf16 params).
  export.export_checkpoint(out, str(tmp_path / "f32"), dtype="float32")
  _, again, _, m = exported.load_exported(str(tmp_path / "f32"))
  assert m["dtype"] == "float32" and m["source"]["kind"] == "export"
  _same_tree(again, jax.tree.map(lambda x: np.asarray(x, np.float32), params))


def test_refuses_to_overwrite(run, tmp_path):
  run_dir = run[0]
  out = str(tmp_path / "e")
  export.export_checkpoint(run_dir, out, step=10)
  with pytest.raises(FileExistsError, match="--overwrite"):
    export.export_checkpoint(run_dir, out)
  export.export_checkpoint(run_dir, out, overwrite=True)
  assert exported.read_manifest(out)["source"]["step"] == 20
  assert sorted(os.listdir(tmp_path)) == ["e"]


def test_newer_or_foreign_format_is_a_clear_error(run, tmp_path):
  out = str(tmp_path / "e")
  export.export_checkpoint(run[0], out)
  path = os.path.join(out, "manifest.json")
  with open(path) as f:
    manifest = json.load(f)
  manifest["format_version"] = exported.FORMAT_VERSION + 1
  with open(path, "w") as f:
    json.dump(manifest, f)
  with pytest.raises(exported.ExportFormatError, match="newer clqa-jax"):
    exported.load_exported(out)
  manifest["format_version"], manifest["format"] = 1, "something-else"
  with open(path, "w") as f:
    json.dump(manifest, f)
  with pytest.raises(exported.ExportFormatError, match="field 'format'"):
    exported.load_exported(out)
  with pytest.raises(exported.ExportFormatError, match="not an exported checkpoint"):
    exported.load_exported(str(tmp_path))


def test_a_moved_export_loads_the_same(run, tmp_path):
  import shutil

  original = str(tmp_path / "a" / "export")
  manifest = export.export_checkpoint(run[0], original)
  assert str(tmp_path) not in json.dumps({k: v for k, v in manifest.items()
                                          if k not in ("source", "vocab_source")})
  assert set(manifest["sha256"]) == {"model_config.json", "vocab/spm.model", "config.gin"}
  assert manifest["sha256"]["vocab/spm.model"] == manifest["vocab_sha256"]
  moved = str(tmp_path / "b" / "export")
  shutil.copytree(original, moved)
  shutil.rmtree(tmp_path / "a")
  config, params, vocab, manifest2 = exported.load_exported(moved)
  assert manifest2 == manifest and vocab == os.path.join(moved, "vocab", "spm.model")
  assert config == run[1]
  _same_tree(params, run[3])


def test_a_changed_file_is_refused_with_both_checksums(run, tmp_path):
  import hashlib

  out = str(tmp_path / "e")
  manifest = export.export_checkpoint(run[0], out)
  vocab = os.path.join(out, "vocab", "spm.model")
  with open(vocab, "rb") as f:
    original = f.read()
  with open(vocab, "wb") as f:
    f.write(original[:-1] + bytes([original[-1] ^ 1]))
  actual = hashlib.sha256(original[:-1] + bytes([original[-1] ^ 1])).hexdigest()
  with pytest.raises(exported.ExportFormatError) as e:
    exported.load_exported(out)
  assert str(e.value) == (
      f"{vocab}: sha256 is {actual}, but {os.path.join(out, 'manifest.json')} field "
      f"'vocab_sha256' records {manifest['vocab_sha256']}: the file was changed or replaced "
      "after the export was written; put the original back or export again")
  with open(vocab, "wb") as f:
    f.write(original)
  config_path = os.path.join(out, "model_config.json")
  with open(config_path) as f:
    record = json.load(f)
  record["config"]["mt5"]["dropout_rate"] = 0.5
  with open(config_path, "w") as f:
    json.dump(record, f)
  with pytest.raises(exported.ExportFormatError, match=r"model_config.json: sha256 is .* field "
                     r"'sha256.model_config.json' records"):
    exported.load_exported(out)
  os.remove(config_path)
  with pytest.raises(exported.ExportFormatError, match="model_config.json is missing"):
    exported.load_exported(out)


def test_an_export_without_recorded_file_checksums_checks_its_vocabulary(run, tmp_path):
  """Exports written before the "sha256" field record the vocabulary's alone."""
  out = str(tmp_path / "e")
  export.export_checkpoint(run[0], out)
  path = os.path.join(out, "manifest.json")
  with open(path) as f:
    manifest = json.load(f)
  del manifest["sha256"]
  with open(path, "w") as f:
    json.dump(manifest, f)
  with open(os.path.join(out, "config.gin"), "a") as f:
    f.write("# edited\n")
  exported.load_exported(out)
  with open(os.path.join(out, "vocab", "spm.model"), "ab") as f:
    f.write(b"x")
  with pytest.raises(exported.ExportFormatError, match="'vocab_sha256' records"):
    exported.load_exported(out)
  manifest["sha256"] = ["vocab/spm.model"]
  with open(path, "w") as f:
    json.dump(manifest, f)
  with pytest.raises(exported.ExportFormatError, match="field 'sha256' must map file names"):
    exported.load_exported(out)


def test_wrong_model_config_is_rejected(run, tmp_path):
  run_dir, config, _, _ = run
  wrong = tmp_path / "wrong.json"
  wrong.write_text(json.dumps(tiny_run.tiny_config(d_ff=48).to_dict()))
  with pytest.raises(Exception, match="d_ff|shape|mismatch|wi_0"):
    export.export_checkpoint(run_dir, str(tmp_path / "e"), model_config=str(wrong))
  assert not (tmp_path / "e").exists()


def test_cli(run, tmp_path, capsys):
  out = str(tmp_path / "cli")
  assert cli_main.main(["export", "--checkpoint_dir", run[0], "--out", out, "--step", "best",
                        "--dtype", "bfloat16"]) == 0
  assert "step 10" in capsys.readouterr().out
  assert cli_main.main(["export", "--checkpoint_dir", run[0], "--out", out]) == 2
  assert "--overwrite" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    cli_main.main(["export", "--help"])
  assert "--format" in capsys.readouterr().out


def test_vocabulary_named_by_the_run_config(tmp_path):
  run_dir = tmp_path / "run"
  run_dir.mkdir()
  (run_dir / "config.gin").write_text("data_root.path = '/data/clqa'\n")
  assert export.vocabulary_from_gin(str(run_dir)) == "/data/clqa/vocab/spm.model"
  (run_dir / "config.gin").write_text("paths.vocabulary_path.path = '/v/spm.model'\n"
                                      "data_root.path = '/data/clqa'\n")
  assert export.vocabulary_from_gin(str(run_dir)) == "/v/spm.model"
  (run_dir / "config.gin").write_text("vocabulary_path.path = None\n")
  assert export.vocabulary_from_gin(str(run_dir)) is None


def _copy_run(run_dir: str, dst) -> str:
  import shutil

  shutil.copytree(run_dir, dst)
  return str(dst)


def test_model_config_comes_from_model_config_json_without_config_gin(run, tmp_path):
  run_dir, config, _, p2 = run
  bare = _copy_run(run_dir, tmp_path / "bare")
  os.remove(os.path.join(bare, "config.gin"))
  manifest = export.export_checkpoint(bare, str(tmp_path / "e"), vocab_path=tiny_vocab_path())
  assert "gin" not in manifest["files"]
  loaded_config, params, _, _ = exported.load_exported(str(tmp_path / "e"))
  assert loaded_config == config
  _same_tree(params, p2)


def test_missing_model_config_json_is_a_clear_error(run, tmp_path):
  run_dir = run[0]
  bare = _copy_run(run_dir, tmp_path / "bare")
  os.remove(os.path.join(bare, "model_config.json"))
  with pytest.raises(ValueError, match=r"bare/model_config.json is missing.*--model_config"):
    export.export_checkpoint(bare, str(tmp_path / "e"))
  # A checkpoints directory outside a run directory has no model_config.json either.
  loose = _copy_run(os.path.join(run_dir, "checkpoints"), tmp_path / "loose")
  with pytest.raises(ValueError, match="run directory above .*loose.*--model_config"):
    export.export_checkpoint(loose, str(tmp_path / "e"))
  config_json = tmp_path / "config.json"
  config_json.write_text(json.dumps(run[1].to_dict()))
  m = export.export_checkpoint(loose, str(tmp_path / "e"), model_config=str(config_json),
                               vocab_path=tiny_vocab_path(), step=10)
  assert m["source"]["step"] == 10 and m["source"]["run_dir"] is None


def test_step_best_needs_a_recorded_or_given_metric(run, tmp_path):
  import jax.numpy as jnp
  import optax

  from clqa_jax.checkpoints import training
  from clqa_jax.trainer.train_state import TrainState

  _, config, p1, _ = run
  directory = str(tmp_path / "run" / "checkpoints")
  ckpt = training.Checkpointer(directory, training.CheckpointConfig(async_save=False))
  state = TrainState(step=jnp.asarray(3, jnp.int32), params=p1,
                     opt_state=optax.sgd(0.1).init(p1), rng=jnp.zeros((2,), jnp.uint32))
  ckpt.save(state, {}, metrics={"eval/f1": 0.5})
  ckpt.close()
  assert training.read_meta(directory, 3)["best_metric"] is None
  with pytest.raises(ValueError, match="--best_metric NAME"):
    export.select_step(directory, "best")
  assert export.select_step(directory, "latest") == (3, None)


def test_step_best_among_the_steps_that_recorded_the_metric(run, tmp_path):
  import jax.numpy as jnp
  import optax

  from clqa_jax.checkpoints import training
  from clqa_jax.trainer.train_state import TrainState

  _, _, p1, _ = run
  directory = str(tmp_path / "run" / "checkpoints")
  ckpt = training.Checkpointer(directory, training.CheckpointConfig(
      keep=5, best_metric="eval/f1", async_save=False))
  recorded = {1: {"eval/f1": 0.5, "eval/r@2kt": 10.0}, 2: {"eval/f1": 0.7},
              3: {"eval/f1": 0.7, "eval/r@2kt": 5.0}, 4: None}
  for step, metrics in recorded.items():
    state = TrainState(step=jnp.asarray(step, jnp.int32), params=p1,
                       opt_state=optax.sgd(0.1).init(p1), rng=jnp.zeros((2,), jnp.uint32))
    ckpt.save(state, {}, metrics=metrics)
  assert ckpt.best_step() == 3            # keep-best's choice: ties go to the later step
  ckpt.close()
  assert training.read_metrics(directory)[2] == {"eval/f1": 0.7}
  assert export.select_step(directory, "best") == (3, "eval/f1")
  # Another metric: only the steps that recorded it count (step 2 did not).
  assert export.select_step(directory, "best", best_metric="eval/r@2kt") == (1, "eval/r@2kt")
  assert export.select_step(directory, "best", best_metric="eval/r@2kt",
                            best_mode="min") == (3, "eval/r@2kt")
  with pytest.raises(ValueError, match="no checkpoint recorded metric 'eval/em'"):
    export.select_step(directory, "best", best_metric="eval/em")
