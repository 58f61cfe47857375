"""The training loop (T5X's ``train``): restore or init, step, log, eval, refresh, save.

Every process runs the same loop on its own rows of the global batch. The step itself is pure
and partitioned once (``train_step`` + ``state_init``); everything stateful lives here:

- resume from the run's latest checkpoint, else ``CheckpointConfig.init_checkpoint`` (params
  only), else a fresh init; the batch source's position and the retrieval-store version come
  back from the checkpoint metadata;
- per-term metrics to TensorBoard (host 0) and a console progress line with rate and ETA;
- eval hook every ``eval_every_steps`` (its metrics can select the kept-best checkpoint);
- refresh hook at step 0 and every ``refresh_every_steps``;
- SIGTERM: save at the next step boundary and return ``"preempted"``;
- a non-finite loss raises ``NonFiniteLossError`` before anything is saved, so the last good
  checkpoint stays the latest one.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
from typing import Any, Callable

import gin
import jax
import numpy as np

from clqa_jax import fileio
from clqa_jax.checkpoints import unified_params
from clqa_jax.cli import gin_flags
from clqa_jax.losses.teacher import Teacher
from clqa_jax.partitioning import distributed
from clqa_jax.partitioning import partitioner as partitioner_lib
from clqa_jax.partitioning.partitioner import Partitioner, PartitioningConfig
from clqa_jax.trainer import checkpointing
from clqa_jax.trainer import hooks as hooks_lib
from clqa_jax.trainer import microbatch
from clqa_jax.trainer import optimizer as optimizer_lib
from clqa_jax.trainer import state_init
from clqa_jax.trainer import summaries
from clqa_jax.trainer import train_step as train_step_lib

logger = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN/inf; training stopped without saving the bad state."""


@dataclasses.dataclass
class TrainResult:
  """How ``train`` ended: ``status`` is 'completed' or 'preempted'."""
  status: str
  step: int
  last_metrics: dict[str, float]
  checkpoint_dir: str
  state: Any = None


def _write_model_config(model_dir: str, model: Any) -> None:
  """``model_config.json``, so ``clqa export`` needs neither gin nor flags to rebuild the model."""
  config = getattr(model, "config", None)
  if config is None or not hasattr(config, "to_dict"):
    return
  fileio.atomic_write(fileio.join(model_dir, "model_config.json"),
                      json.dumps({"kind": "unified", "config": config.to_dict()}, indent=2,
                                 sort_keys=True))


def _host_metrics(metrics: Any) -> dict[str, float]:
  return {k: float(np.asarray(v)) for k, v in jax.device_get(metrics).items()}


@gin.configurable(denylist=["stream", "devices"])
def train(*,
          model_dir: str = gin.REQUIRED,
          model: Any = gin.REQUIRED,
          objective: Any = gin.REQUIRED,
          batches: Callable[..., hooks_lib.BatchSource] = gin.REQUIRED,
          batch_size: int = gin.REQUIRED,
          total_steps: int = gin.REQUIRED,
          learning_rate: Callable = gin.REQUIRED,
          optimizer: Callable = optimizer_lib.adamw_with_clipping,
          partitioning: PartitioningConfig | None = None,
          checkpoint: checkpointing.CheckpointConfig = checkpointing.CheckpointConfig(),
          teacher: Teacher | None = None,
          num_microbatches: int = 1,
          enable_dropout: bool = True,
          seed: int = 42,
          log_every_steps: int = 10,
          eval_every_steps: int = 0,
          refresh_every_steps: int = 0,
          init_shapes: state_init.InitShapes = state_init.InitShapes(),
          eval_hook: hooks_lib.EvalHook | None = None,
          refresh_hook: hooks_lib.RefreshHook | None = None,
          stream=None,
          devices=None) -> TrainResult:
  """Trains ``model`` with ``objective`` for ``total_steps`` steps of ``batch_size`` questions.

  Args:
    model_dir: run directory: checkpoints/, summaries (TensorBoard), config.gin, model-info.txt.
    model: the UnifiedRetrieverReader (flax module) being trained.
    objective: ``ClrPtObjective`` or ``MlqaObjective`` (``objective_by_name``).
    batches: ``factory(DataLayout) -> BatchSource`` yielding this process's rows.
    batch_size: global questions per step (stage 1: parallel pairs).
    learning_rate: schedule ``count -> lr`` (``linear_warmup_decay``).
    optimizer: ``optimizer(learning_rate) -> optax.GradientTransformation``.
    teacher: the frozen teacher (clr_pt); its params come from ``teacher.checkpoint``.
    num_microbatches: gradient accumulation (GradCache for clr_pt).
    partitioning: the mesh and rules; None takes ``make_partitioner()`` (gin/partitioning/).
    eval_hook, refresh_hook: see ``hooks`` (gin-bindable factories' results, or callables).
    devices: the devices of the mesh (default: all); for tests and single-host debugging.
  """
  distributed.maybe_initialize_distributed()
  if partitioning is None:
    partitioner = partitioner_lib.make_partitioner()   # gin/partitioning/*.gin
  else:
    partitioner = Partitioner.from_config(partitioning, devices)
  tx = optimizer(learning_rate)
  if total_steps <= 0:
    raise ValueError(f"train.total_steps must be positive, got {total_steps}")
  layout = partitioner.data_layout(batch_size)
  microbatch.check_divisible(batch_size, num_microbatches, partitioner.data_parallel_size)
  if getattr(objective, "needs_teacher", False) and teacher is None:
    raise ValueError(f"objective {objective.name!r} needs a teacher: bind train.teacher "
                     "(and Teacher.checkpoint) in gin")

  ckpt = checkpointing.Checkpointer(fileio.join(model_dir, "checkpoints"), checkpoint)
  abstract_params, param_shardings = state_init.abstract_params_and_shardings(
      partitioner, model, init_shapes)
  shardings = state_init.state_shardings(partitioner, tx, abstract_params, param_shardings)
  meta: dict[str, Any] = {}
  if ckpt.latest_step() is not None:
    state, meta = ckpt.restore(state_init.abstract_state(tx, abstract_params, shardings, seed))
    logger.info("resumed from %s step %d", ckpt.directory, int(state.step))
  else:
    params = None
    if checkpoint.init_checkpoint:
      abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                              abstract_params, param_shardings)
      params = unified_params.load_unified_params(checkpoint.init_checkpoint, model, abstract,
                                                  "CheckpointConfig.init_checkpoint")
      logger.info("initialised params from %s", checkpoint.init_checkpoint)
    state, _ = state_init.init_train_state(partitioner, model, tx, seed=seed,
                                           shapes=init_shapes, params=params)
  if jax.process_index() == 0:
    from clqa_jax.partitioning import model_info  # pylint: disable=g-import-not-at-top
    abstract, logical = partitioner.abstract_init(state_init.model_init_fn(model, init_shapes),
                                                  jax.random.PRNGKey(0))
    model_info.write_model_info(fileio.join(model_dir, "model-info.txt"),
                                partitioner.layouts_for(abstract, logical), partitioner.mesh,
                                partitioner.rule_set, partitioner.rules)

  teacher_params, teacher_shardings = None, None
  if teacher is not None and getattr(objective, "needs_teacher", False):
    if not teacher.checkpoint:
      raise ValueError("Teacher.checkpoint is not set: the clr_pt teacher needs trained params")
    t_abstract, teacher_shardings = state_init.abstract_params_and_shardings(
        partitioner, teacher.model, init_shapes)
    t_abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                              t_abstract, teacher_shardings)
    teacher_params = teacher.load_params(t_abstract)

  source = batches(layout)
  if "data_position" in meta:
    source.set_state(meta["data_position"])
  store_version = meta.get("retrieval_store_version")
  if store_version is not None and refresh_hook is not None and hasattr(refresh_hook, "restore"):
    refresh_hook.restore(store_version)

  if jax.process_index() == 0:
    # Every configurable the run uses has been called by now.
    gin_flags.write_operative_config(model_dir)
    _write_model_config(model_dir, model)

  step_fn = train_step_lib.make_train_step(
      model=model, objective=objective, optimizer=tx, learning_rate_fn=learning_rate,
      num_microbatches=num_microbatches, teacher=teacher if teacher_params is not None else None,
      enable_dropout=enable_dropout)
  compiled = state_init.compile_train_step(partitioner, step_fn, shardings, teacher_shardings)

  writer = summaries.create_writer(fileio.join(model_dir, "summaries"))
  progress = summaries.ProgressLine(total_steps, batch_size, stream)
  averager = summaries.MetricAverager()
  step = int(jax.device_get(state.step))
  progress.start(step)
  last: dict[str, float] = {}

  def current_meta() -> dict[str, Any]:
    return {"data_position": source.get_state(), "retrieval_store_version": store_version,
            "objective": getattr(objective, "name", type(objective).__name__)}

  status = "completed"
  try:
    with hooks_lib.PreemptionWatcher() as watcher:
      while step < total_steps:
        if refresh_hook is not None and hooks_lib.should_refresh(step, refresh_every_steps,
                                                                 total_steps):
          if not (step == 0 and store_version is not None):
            store_version = int(refresh_hook(step, state.params))
        batch = partitioner.host_local_batch_to_global(next(source))
        state, metrics = compiled(state, batch, teacher_params)
        step += 1
        last = _host_metrics(metrics)
        if not all(math.isfinite(last.get(k, 0.0)) for k in ("loss", "update_norm")):
          bad = {k: v for k, v in last.items() if not math.isfinite(v)}
          raise NonFiniteLossError(
              f"non-finite loss at step {step} (non-finite metrics: {bad}); the state of this "
              f"step was not saved; the last good checkpoint is step {ckpt.latest_step()} in "
              f"{ckpt.directory}. Lower the learning rate or check the batch that came from "
              f"data position {source.get_state()}.")
        averager.add(last)
        if step % log_every_steps == 0 or step == total_steps:
          averaged = averager.result_and_reset()
          writer.write_scalars(step, averaged)
          progress.update(step, averaged)
        eval_metrics = None
        if eval_hook is not None and eval_every_steps > 0 and (
            step % eval_every_steps == 0 or step == total_steps):
          eval_metrics = {f"eval/{k}": float(v) for k, v in eval_hook(step, state.params).items()}
          writer.write_scalars(step, eval_metrics)
          logger.info("eval at step %d: %s", step, eval_metrics)
        periodic = checkpoint.save_every_steps > 0 and step % checkpoint.save_every_steps == 0
        if periodic or eval_metrics is not None or step == total_steps:
          ckpt.save(state, current_meta(), metrics=eval_metrics)
        if watcher.should_stop():
          ckpt.save(state, current_meta())
          status = "preempted"
          logger.warning("preempted: saved step %d to %s", step, ckpt.directory)
          break
  finally:
    ckpt.close()
    writer.flush()
    writer.close()
  return TrainResult(status, step, last, ckpt.directory, state)
