"""The training loop: resume is bit-identical, SIGTERM saves and exits, non-finite loss stops
without saving, keep-N plus keep-best, init from a checkpoint, summaries and progress line."""
import io
import os
import signal

import jax
import numpy as np
import pytest

from clqa_jax.losses import objectives
from clqa_jax.models.model_api import UnifiedModel
from clqa_jax.partitioning.mesh import MeshConfig
from clqa_jax.partitioning.partitioner import PartitioningConfig
from clqa_jax.checkpoints import training as checkpointing
from clqa_jax.trainer import loop
from clqa_jax.trainer import optimizer as opt_lib
from clqa_jax.trainer.synthetic_data import SyntheticBatches
from fixtures.trainer.compile_cache import compilation_cache  # noqa: F401
from fixtures.trainer.standin_model import StandinUnified

# The loop is what is tested here: a contract-compatible stand-in keeps compilation short.
MODEL = UnifiedModel(StandinUnified())


class SignalAfter(SyntheticBatches):
  """Synthetic batches that send this process SIGTERM after ``after`` batches (a preemption)."""

  def __init__(self, after=None, nan_at=None, **kw):
    super().__init__(**kw)
    self.after, self.nan_at = after, nan_at

  def __next__(self):
    pos = self.position
    batch = super().__next__()
    if self.nan_at is not None and pos == self.nan_at:
      batch["decoder_loss_weights"] = batch["decoder_loss_weights"] * np.nan
    if self.after is not None and pos + 1 == self.after:
      os.kill(os.getpid(), signal.SIGTERM)
    return batch


def _train(model_dir, total_steps=4, source_kw=None, checkpoint=None, lr=1e-2, **kw):
  source_kw = source_kw or {}
  return loop.train(
      model_dir=str(model_dir), model=MODEL, objective=objectives.MlqaObjective(),
      batches=lambda layout: SignalAfter(batch_size=layout.per_process_batch_size,
                                         **source_kw),
      batch_size=4, total_steps=total_steps,
      learning_rate=opt_lib.linear_warmup_decay(lr, total_steps),
      partitioning=PartitioningConfig(MeshConfig(data=1, model=1)), devices=jax.devices()[:1],
      checkpoint=checkpoint or checkpointing.CheckpointConfig(save_every_steps=0, keep=2),
      log_every_steps=1, stream=io.StringIO(), **kw)


def test_interrupted_and_resumed_run_is_bit_identical(tmp_path):
  full = _train(tmp_path / "full")
  assert full.status == "completed" and full.step == 4
  first = _train(tmp_path / "split", source_kw={"after": 2})
  assert first.status == "preempted" and first.step == 2
  assert checkpointing.Checkpointer(str(tmp_path / "split" / "checkpoints")).all_steps() == [2]
  assert not os.path.exists(tmp_path / "split" / "run.lock")  # released: the rerun may start
  second = _train(tmp_path / "split")
  assert second.status == "completed" and second.step == 4
  for a, b in zip(jax.tree.leaves(jax.device_get(full.state)),
                  jax.tree.leaves(jax.device_get(second.state))):
    np.testing.assert_array_equal(a, b)
  # The progress line, TensorBoard events and model-info were written.
  assert os.path.exists(tmp_path / "full" / "model-info.txt")
  scalars = _summary_scalars(tmp_path / "full" / "summaries")
  assert [step for step, _ in scalars["loss"]] == [1, 2, 3, 4]
  # The rate leaves out step 1 (compilation): from step 2 on, under T5X's names.
  rates = dict(scalars["timing/steps_per_second"])
  assert sorted(rates) == [2, 3, 4] and all(r > 0 for r in rates.values())
  for step, examples in scalars["timing/examples_per_second"]:
    assert examples == pytest.approx(4 * rates[step], rel=1e-5)       # batch_size 4


def _summary_scalars(logdir) -> dict[str, list[tuple[int, float]]]:
  """{tag: [(step, value), ...]} of the TensorBoard event files in ``logdir``."""
  tf = pytest.importorskip("tensorflow")
  out = {}
  for name in sorted(os.listdir(logdir)):
    for event in tf.compat.v1.train.summary_iterator(os.path.join(logdir, name)):
      for value in event.summary.value:
        number = (float(tf.make_ndarray(value.tensor)) if value.HasField("tensor")
                  else value.simple_value)
        out.setdefault(value.tag, []).append((event.step, number))
  return out


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  cfg = checkpointing.CheckpointConfig(save_every_steps=1, keep=5, async_save=False)
  with pytest.raises(loop.NonFiniteLossError, match="step 3.*last good checkpoint is step 2"):
    _train(tmp_path / "nan", source_kw={"nan_at": 2}, checkpoint=cfg)
  ckpt = checkpointing.Checkpointer(str(tmp_path / "nan" / "checkpoints"))
  assert ckpt.all_steps() == [1, 2]
  assert not os.path.exists(tmp_path / "nan" / "run.lock")


def test_keep_latest_n_plus_best_and_init_from_checkpoint(tmp_path):
  scores = {1: 0.0, 2: 5.0, 3: 1.0, 4: 2.0}
  cfg = checkpointing.CheckpointConfig(save_every_steps=1, keep=1, best_metric="eval/score",
                                       async_save=False)
  run = _train(tmp_path / "best", checkpoint=cfg,
               eval_hook=lambda step, params: {"score": scores[step]}, eval_every_steps=1)
  ckpt = checkpointing.Checkpointer(str(tmp_path / "best" / "checkpoints"), cfg)
  assert ckpt.all_steps() == [2, 4]
  assert ckpt.best_step() == 2
  # A new run initialised from that run (params only) starts at step 0; its first update has
  # learning rate 0 (warm-up), so after one step it still holds exactly those params.
  cfg2 = checkpointing.CheckpointConfig(save_every_steps=0,
                                        init_checkpoint=str(tmp_path / "best" / "checkpoints"))
  fresh = _train(tmp_path / "init", checkpoint=cfg2, source_kw={"after": 1})
  assert fresh.status == "preempted" and fresh.step == 1
  for a, b in zip(jax.tree.leaves(jax.device_get(run.state.params)),
                  jax.tree.leaves(jax.device_get(fresh.state.params))):
    np.testing.assert_array_equal(a, b)


def test_keep_best_needs_an_eval_hook_reporting_its_metric(tmp_path):
  cfg = checkpointing.CheckpointConfig(save_every_steps=0, best_metric="eval/score",
                                       async_save=False)
  with pytest.raises(ValueError, match="evaluates nothing"):
    _train(tmp_path / "none", total_steps=1, checkpoint=cfg)
  with pytest.raises(ValueError, match=r"'eval/score' is not among .* \['eval/other'\]"):
    _train(tmp_path / "other", total_steps=1, checkpoint=cfg,
           eval_hook=lambda step, params: {"other": 1.0}, eval_every_steps=1)
