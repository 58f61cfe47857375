"""Teacher.checkpoint may be a training run, an export or an import (detected from the
directory); its params load into the teacher model's layout, and mismatches are typed errors."""
import os

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from clqa_jax.checkpoints import exported
from clqa_jax.checkpoints.export import export_checkpoint
from clqa_jax.checkpoints.hf_mt5 import write_imported_checkpoint
from clqa_jax.losses.teacher import Teacher, TeacherCheckpointError, checkpoint_kind
from clqa_jax.models import UnifiedConfig, UnifiedModel
from fixtures.data.tiny_vocab import tiny_vocab_path
from fixtures.export.tiny_run import tiny_config, tiny_params, write_run

CONFIG = tiny_config()


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
  root = tmp_path_factory.mktemp("teacher_ckpt")
  params = tiny_params(CONFIG, seed=3)
  vocab = tiny_vocab_path()
  imported = write_imported_checkpoint(str(root / "imported"), CONFIG, params)
  export_checkpoint(imported, str(root / "exported"), vocab_path=vocab)
  write_run(str(root / "run"), CONFIG, {1: (params, 0.5)}, vocab)
  return dict(params=params, root=root, imported=imported, exported=str(root / "exported"),
              training=str(root / "run" / "checkpoints"), vocab=vocab)


def _abstract(config, sharded=False):
  abstract = exported.abstract_params(config)
  if not sharded:
    return abstract
  replicated = NamedSharding(jax.make_mesh((len(jax.devices()),), ("data",)), P())
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated),
                      abstract)


@pytest.mark.parametrize("kind", ["imported", "exported", "training"])
def test_each_kind_loads_the_same_params(dirs, kind):
  assert checkpoint_kind(dirs[kind]) == kind
  teacher = Teacher(model=UnifiedModel.from_config(CONFIG), checkpoint=dirs[kind])
  sharded = kind != "imported"
  got = teacher.load_params(_abstract(CONFIG, sharded))
  flat_got = jax.tree_util.tree_leaves_with_path(got)
  flat_want = dict(jax.tree_util.tree_leaves_with_path(dirs["params"]))
  assert len(flat_got) == len(flat_want)
  for path, leaf in flat_got:
    np.testing.assert_array_equal(np.asarray(leaf), np.asarray(flat_want[path]))
    if sharded:
      assert leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) > 1


@pytest.mark.parametrize("kind", ["imported", "exported"])
def test_config_mismatch_is_named(dirs, kind):
  wider = tiny_config(d_ff=96)
  teacher = Teacher(model=UnifiedModel.from_config(wider), checkpoint=dirs[kind])
  with pytest.raises(TeacherCheckpointError, match="wrong shape.*wi"):
    teacher.load_params(_abstract(wider))
  other_layer = UnifiedConfig(mt5=CONFIG.mt5, retriever_layer=0)
  teacher = Teacher(model=UnifiedModel.from_config(other_layer), checkpoint=dirs[kind])
  with pytest.raises(TeacherCheckpointError, match="retriever_layer: checkpoint 1 != Teacher"):
    teacher.load_params(_abstract(other_layer))


def test_plain_mt5_import_and_unknown_directories_are_rejected(dirs):
  plain = write_imported_checkpoint(str(dirs["root"] / "plain"), CONFIG.mt5,
                                    {k: v for k, v in dirs["params"].items() if k != "retriever"})
  teacher = Teacher(model=UnifiedModel.from_config(CONFIG), checkpoint=plain)
  with pytest.raises(TeacherCheckpointError, match="plain MT5Config"):
    teacher.load_params(_abstract(CONFIG))
  odd = dirs["root"] / "odd"
  odd.mkdir()
  (odd / "pytorch_model.bin").write_bytes(b"")
  with pytest.raises(TeacherCheckpointError, match=r"none of .*found \[pytorch_model.bin\]"):
    checkpoint_kind(str(odd))
  with pytest.raises(TeacherCheckpointError, match="does not exist"):
    checkpoint_kind(os.path.join(str(odd), "missing"))
