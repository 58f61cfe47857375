"""Teacher.checkpoint (and CheckpointConfig.init_checkpoint) may be a training run or an export
(an import is one); the loop loads its params into the teacher model's layout through
clqa_jax.checkpoints, and mismatches are typed errors."""
import os

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from clqa_jax.checkpoints import exported
from clqa_jax.checkpoints.kinds import CheckpointKindError, checkpoint_kind
from clqa_jax.checkpoints.unified_params import load_unified_params
from clqa_jax.models import UnifiedConfig
from fixtures.data.tiny_vocab import tiny_vocab_path
from fixtures.export.tiny_run import tiny_config, tiny_params, write_run

CONFIG = tiny_config()
ROLE = "Teacher.checkpoint"


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
  root = tmp_path_factory.mktemp("teacher_ckpt")
  params = tiny_params(CONFIG, seed=3)
  vocab = tiny_vocab_path()
  exported.write_exported(str(root / "exported"), CONFIG, params, vocab)
  write_run(str(root / "run"), CONFIG, {1: (params, 0.5)}, vocab)
  return dict(params=params, root=root, exported=str(root / "exported"),
              training_run=str(root / "run"),
              training_checkpoints=str(root / "run" / "checkpoints"),
              training_step=str(root / "run" / "checkpoints" / "1"), vocab=vocab)


def _abstract(config, sharded=False):
  abstract = exported.abstract_params(config)
  if not sharded:
    return abstract
  replicated = NamedSharding(jax.make_mesh((len(jax.devices()),), ("data",)), P())
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated),
                      abstract)


@pytest.mark.parametrize("kind", ["exported", "training_run", "training_checkpoints",
                                  "training_step"])
def test_each_kind_loads_the_same_params(dirs, kind):
  assert checkpoint_kind(dirs[kind]) == kind
  got = load_unified_params(dirs[kind], CONFIG, _abstract(CONFIG, sharded=True), ROLE)
  flat_got = jax.tree_util.tree_leaves_with_path(got)
  flat_want = dict(jax.tree_util.tree_leaves_with_path(dirs["params"]))
  assert len(flat_got) == len(flat_want)
  for path, leaf in flat_got:
    np.testing.assert_array_equal(np.asarray(leaf), np.asarray(flat_want[path]))
    assert leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) > 1


@pytest.mark.parametrize("kind", ["exported", "training_run"])
def test_config_mismatch_is_named(dirs, kind):
  other_layer = UnifiedConfig(mt5=CONFIG.mt5, retriever_layer=0)
  with pytest.raises(CheckpointKindError,
                     match="retriever_layer: checkpoint 1 != Teacher.checkpoint's model 0"):
    load_unified_params(dirs[kind], other_layer, _abstract(other_layer), ROLE)


def test_shape_mismatch_of_an_export_is_named(dirs):
  wider = tiny_config(d_ff=96)
  with pytest.raises(CheckpointKindError, match="wrong shape.*wi"):
    load_unified_params(dirs["exported"], wider, _abstract(wider), ROLE)


def test_plain_mt5_export_and_unknown_directories_are_rejected(dirs):
  plain = str(dirs["root"] / "plain")
  exported.write_exported(plain, CONFIG.mt5,
                          {k: v for k, v in dirs["params"].items() if k != "retriever"},
                          dirs["vocab"])
  with pytest.raises(CheckpointKindError, match="plain MT5Config"):
    load_unified_params(plain, CONFIG, _abstract(CONFIG), ROLE)
  odd = dirs["root"] / "odd"
  odd.mkdir()
  (odd / "pytorch_model.bin").write_bytes(b"")
  with pytest.raises(CheckpointKindError, match=r"is no checkpoint: found \[pytorch_model.bin\]"):
    checkpoint_kind(str(odd), ROLE)
  with pytest.raises(CheckpointKindError, match="does not exist"):
    load_unified_params(os.path.join(str(odd), "missing"), CONFIG, _abstract(CONFIG), ROLE)
