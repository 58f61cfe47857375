"""Every gin file parses; each run file (clr_pt, mlqa_pt, finetune) trains one step of a tiny
unified model on synthetic batches; ``clqa train`` writes the operative config."""
import argparse
import glob
import io
import os

import gin
import jax
import pytest

from clqa_jax import gin_utils
from clqa_jax.cli import train_cmd
from clqa_jax.partitioning.mesh import MeshConfig
from clqa_jax.partitioning.partitioner import Partitioner, PartitioningConfig
from clqa_jax.checkpoints import training as checkpointing
from clqa_jax.trainer import loop
from clqa_jax.trainer import optimizer as opt_lib
from clqa_jax.trainer import register_configurables  # noqa: F401
from clqa_jax.trainer import state_init
from fixtures.trainer.compile_cache import compilation_cache  # noqa: F401
from fixtures.trainer.tiny import tiny_model

GIN_DIR = gin_utils.gin_config_dir()
ALL_GIN = sorted(glob.glob(os.path.join(GIN_DIR, "**", "*.gin"), recursive=True))
MODEL = tiny_model()


@pytest.fixture(autouse=True)
def clean_gin():
  gin.clear_config()
  yield
  gin.clear_config()


# Overlay files are only meaningful after the base file their header names.
OVERLAY_BASES = {"synth/http.gin": ["synth/mini.gin"]}


@pytest.mark.parametrize("path", ALL_GIN, ids=[os.path.relpath(p, GIN_DIR) for p in ALL_GIN])
def test_every_gin_file_parses(path):
  bases = OVERLAY_BASES.get(os.path.relpath(path, GIN_DIR), [])
  gin_utils.parse_gin(bases + [path], [], finalize=False)


@pytest.fixture(scope="module")
def teacher_checkpoint(tmp_path_factory):
  """A checkpoint of the tiny model (stands for a trained teacher / previous stage)."""
  directory = str(tmp_path_factory.mktemp("teacher") / "checkpoints")
  partitioner = Partitioner.from_config(PartitioningConfig(MeshConfig(1, 1)), jax.devices()[:1])
  tx = opt_lib.adamw_with_clipping(1e-3)
  state, _ = state_init.init_train_state(partitioner, MODEL, tx, seed=5)
  ckpt = checkpointing.Checkpointer(directory, checkpointing.CheckpointConfig(async_save=False))
  ckpt.save(state, {})
  ckpt.close()
  return directory


def _bind_tiny_run(run, model_dir, teacher_dir, batch_size):
  gin.bind_parameter("MODEL/macro.value", MODEL)   # the model gin files' role in real runs
  return [f"MODEL_DIR = '{model_dir}'",
          "TRAIN_BATCHES = @synthetic_data.synthetic_batches",
          f"SyntheticBatches.stage1 = {run == 'clr_pt'}",
          "SyntheticBatches.num_passages = 3", "SyntheticBatches.vocab_size = 128",
          "TRAIN_STEPS = 1", f"BATCH_SIZE = {batch_size}", "loop.train.log_every_steps = 1",
          f"TEACHER_CHECKPOINT = '{teacher_dir}'", f"INIT_CHECKPOINT = '{teacher_dir}'"]


@pytest.mark.parametrize("run", ["clr_pt", "finetune"])
def test_run_file_trains_one_step(run, tmp_path, teacher_checkpoint):
  bindings = _bind_tiny_run(run, tmp_path / "run", teacher_checkpoint, batch_size=2)
  gin_utils.parse_gin([f"runs/{run}.gin"], bindings)
  result = loop.train(partitioning=PartitioningConfig(MeshConfig(1, 1)),
                      devices=jax.devices()[:1], stream=io.StringIO())
  assert result.status == "completed" and result.step == 1
  expected = {"clr_pt": "loss/retrieval_kd_xx", "finetune": "loss/retriever_kl"}[run]
  assert expected in result.last_metrics
  assert all(map(lambda v: v == v, result.last_metrics.values()))  # no NaN
  assert os.path.exists(tmp_path / "run" / "config.gin")
  # The run records its model config so `clqa export` can rebuild the model without gin.
  from clqa_jax.checkpoints.exported import read_model_config
  assert read_model_config(str(tmp_path / "run")) == MODEL.config


def test_clqa_train_mlqa_pt_on_8_devices_writes_operative_config(tmp_path, teacher_checkpoint,
                                                                 capsys):
  bindings = _bind_tiny_run("mlqa_pt", tmp_path / "run", teacher_checkpoint, batch_size=8)
  args = argparse.Namespace(gin_file=["partitioning/dp.gin", "runs/mlqa_pt.gin"],
                            gin_bindings=bindings, log_level="WARNING", break_lock=False)
  assert train_cmd.run(args) == 0
  assert "completed at step 1" in capsys.readouterr().out
  config = open(tmp_path / "run" / "config.gin").read()
  # The operative config: what the run used, macros resolved at the top.
  for line in ("RETRIEVER_WEIGHT = 8.0", "LEARNING_RATE = 5e-05", "TRAIN_STEPS = 1",
               "MlqaObjective.retriever_weight = %RETRIEVER_WEIGHT",
               "adamw_with_clipping.weight_decay = 0.01"):
    assert line in config, line
  assert checkpointing.Checkpointer(str(tmp_path / "run" / "checkpoints")).all_steps() == [1]
