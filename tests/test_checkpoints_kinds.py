"""checkpoint_kind tells every checkpoint directory apart; clqa import writes exactly the
format clqa export writes."""
import dataclasses
import json
import os

import jax
import numpy as np
import pytest

from clqa_jax.checkpoints import export, exported, hf_export, import_hf
from clqa_jax.checkpoints import param_mapping as pm
from clqa_jax.checkpoints.kinds import CheckpointKindError, checkpoint_kind, locate_training
from fixtures.data.tiny_vocab import tiny_vocab_path
from fixtures.export import tiny_run

CONFIG = tiny_run.tiny_config()


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
  root = tmp_path_factory.mktemp("kinds")
  params = tiny_run.tiny_params(CONFIG, seed=4)
  run_dir = tiny_run.write_run(str(root / "run"), CONFIG, {5: (params, 0.1)}, tiny_vocab_path())
  export.export_checkpoint(run_dir, str(root / "exported"))
  hf_export.export_hf(CONFIG, params, str(root / "class"))
  hf_export.export_hf(CONFIG, params, str(root / "hf_mt5"), include_retriever=False)
  return dict(root=root, params=params, exported=str(root / "exported"), training_run=run_dir,
              training_checkpoints=os.path.join(run_dir, "checkpoints"),
              training_step=os.path.join(run_dir, "checkpoints", "5"),
              hf_mt5=str(root / "hf_mt5"), **{"class": str(root / "class")})


@pytest.mark.parametrize("kind", ["exported", "training_run", "training_checkpoints",
                                  "training_step", "hf_mt5", "class"])
def test_each_kind_is_detected(dirs, kind):
  assert checkpoint_kind(dirs[kind]) == kind
  assert checkpoint_kind(dirs[kind] + "/") == kind


def test_training_locations(dirs):
  run_dir = os.path.abspath(dirs["training_run"])
  checkpoints = os.path.join(run_dir, "checkpoints")
  for kind, step in (("training_run", None), ("training_checkpoints", None),
                     ("training_step", 5)):
    where = locate_training(dirs[kind], kind)
    assert (where.checkpoints_dir, where.step, where.run_dir) == (checkpoints, step, run_dir)


def test_unknown_and_legacy_directories_are_errors(dirs):
  root = dirs["root"]
  with pytest.raises(CheckpointKindError, match="does not exist"):
    checkpoint_kind(str(root / "missing"), "--checkpoint_dir")
  empty = root / "empty"
  empty.mkdir()
  with pytest.raises(CheckpointKindError, match=r"found \[nothing\].*exported: .*manifest.json"):
    checkpoint_kind(str(empty))
  legacy = root / "legacy"
  (legacy / "0" / "params").mkdir(parents=True)
  (legacy / "config.json").write_text(json.dumps({"kind": "unified"}))
  with pytest.raises(CheckpointKindError, match="older versions of `clqa import`"):
    checkpoint_kind(str(legacy))
  foreign = root / "foreign"
  foreign.mkdir()
  (foreign / "manifest.json").write_text(json.dumps({"format": "other"}))
  with pytest.raises(exported.ExportFormatError, match="field 'format'"):
    checkpoint_kind(str(foreign))


def test_import_writes_the_export_format(dirs, tmp_path):
  """An imported CLASS directory has the files, manifest fields and params of an export of the
  same params."""
  imported = str(tmp_path / "imported")
  manifest, initialised = import_hf.import_checkpoint("class", dirs["class"], imported,
                                                      vocab_path=tiny_vocab_path())
  assert initialised == []
  assert checkpoint_kind(imported) == "exported"
  assert sorted(os.listdir(imported)) == sorted(
      n for n in os.listdir(dirs["exported"]) if n != "config.gin")
  want = exported.read_manifest(dirs["exported"])
  assert sorted(manifest) == sorted(want)
  assert manifest["source"] == {"kind": "class", "path": os.path.abspath(dirs["class"]),
                                "step": None, "initialised": [], "retriever_head": None}
  config, params, _, loaded = exported.load_exported(imported)
  # export_hf writes R into config.json as retriever_layer; the import reads it back.
  assert config == dataclasses.replace(CONFIG, retriever_layer=CONFIG.resolved_retriever_layer)
  assert loaded == manifest
  flat, ref = pm.flatten(params), pm.flatten(jax.tree.map(np.asarray, dirs["params"]))
  assert sorted(flat) == sorted(ref)
  for k in ref:
    np.testing.assert_array_equal(flat[k], ref[k], err_msg=k)
  with pytest.raises(FileExistsError, match="--overwrite"):
    import_hf.import_checkpoint("class", dirs["class"], imported, vocab_path=tiny_vocab_path())
  assert sorted(os.listdir(tmp_path)) == ["imported"]
