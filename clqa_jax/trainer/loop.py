"""The training loop (T5X's ``train``): restore or init, step, log, eval, refresh, save.

Every process runs the same loop on its own rows of the global batch. The step itself is pure
and partitioned once (``train_step`` + ``state_init``); everything stateful lives here:

- resume from the run's latest checkpoint, else ``CheckpointConfig.init_checkpoint`` (params
  only), else a fresh init; the batch source's position and the retrieval-store version come
  back from the checkpoint metadata;
- per-term metrics and timing/{steps,examples}_per_second to TensorBoard (host 0) and a console
  progress line with rate and ETA, both measured after the first step (compilation);
- eval hook every ``eval_every_steps`` and at the last step (its metrics, ``eval/<name>``, go
  to TensorBoard and select the kept-best checkpoint by ``CheckpointConfig.best_metric``);
- refresh hook at step 0 and every ``refresh_every_steps``;
- one writer per run directory (``run_lock``: a second run there stops at once);
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
from clqa_jax import gin_utils
from clqa_jax.checkpoints import training as checkpointing
from clqa_jax.checkpoints import unified_params
from clqa_jax.losses.objective import Objective
from clqa_jax.losses.teacher import Teacher
from clqa_jax.models.model_api import UnifiedModel, check_model
from clqa_jax.partitioning import distributed
from clqa_jax.partitioning import partitioner as partitioner_lib
from clqa_jax.partitioning.partitioner import Partitioner, PartitioningConfig
from clqa_jax.trainer import hooks as hooks_lib
from clqa_jax.trainer import microbatch
from clqa_jax.trainer import optimizer as optimizer_lib
from clqa_jax.trainer import run_lock
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


def _make_partitioner(partitioning: PartitioningConfig | None, devices) -> Partitioner:
  if partitioning is None:
    return partitioner_lib.make_partitioner(devices=devices)   # gin/partitioning/*.gin
  return Partitioner.from_config(partitioning, devices)


def _compile_only(topology: str, *, model, objective, batches, batch_size, learning_rate,
                  optimizer, partitioning, teacher, num_microbatches, enable_dropout, seed,
                  init_shapes):
  """``train``'s step built as for training, compiled for ``topology`` (see ``aot``)."""
  from clqa_jax.losses import objectives as objectives_lib  # pylint: disable=g-import-not-at-top
  from clqa_jax.trainer import aot  # pylint: disable=g-import-not-at-top

  devices = aot.topology_devices(topology)
  partitioner = _make_partitioner(partitioning, devices)
  tx = optimizer(learning_rate)
  microbatch.check_divisible(batch_size, num_microbatches, partitioner.data_parallel_size)
  abstract_params, param_shardings = state_init.abstract_params_and_shardings(
      partitioner, model, init_shapes)
  shardings = state_init.state_shardings(partitioner, tx, abstract_params, param_shardings)
  abstract_state = state_init.abstract_state(tx, abstract_params, shardings, seed)
  uses_teacher = teacher is not None and getattr(objective, "needs_teacher", False)
  teacher_abstract = teacher_shardings = None
  if uses_teacher:
    t_abstract, teacher_shardings = state_init.abstract_params_and_shardings(
        partitioner, teacher.model, init_shapes)
    teacher_abstract = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), t_abstract,
        teacher_shardings)
  step_fn = train_step_lib.make_train_step(
      model=model, objective=objective, optimizer=tx, learning_rate_fn=learning_rate,
      num_microbatches=num_microbatches, teacher=teacher if uses_teacher else None,
      enable_dropout=enable_dropout)
  stage1 = isinstance(objective, objectives_lib.ClrPtObjective)
  batch_shapes = aot.batch_feature_shapes(batches, batch_size, stage1, model.config.mt5.vocab_size)
  dims = {k: v.shape for k, v in batch_shapes.items()}
  model_flops = aot.model_flops_per_step(
      model.config, batch_size, dims["passage_tokens"][1], dims["query_tokens"][1],
      dims["passage_tokens"][2], dims["decoder_target_tokens"][1],
      query_copies=2 if stage1 else 1)
  return aot.compile_step_for_topology(
      topology=topology, devices=devices, partitioner=partitioner, step_fn=step_fn,
      shardings=shardings, abstract_state=abstract_state, teacher_abstract=teacher_abstract,
      teacher_shardings=teacher_shardings, batch_shapes=batch_shapes, model_flops=model_flops,
      batch_size=batch_size, num_microbatches=num_microbatches)


@gin.configurable(denylist=["stream", "devices", "compile_only_on", "break_lock"])
def train(*,
          model_dir: str = gin.REQUIRED,
          model: UnifiedModel = gin.REQUIRED,
          objective: Objective = gin.REQUIRED,
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
          devices=None,
          compile_only_on: str | None = None,
          break_lock: bool = False) -> TrainResult:
  """Trains ``model`` with ``objective`` for ``total_steps`` steps of ``batch_size`` questions.

  Args:
    model_dir: run directory: checkpoints/, summaries (TensorBoard), config.gin, model-info.txt.
    model: the ``UnifiedModel`` being trained (gin: ``@refresh.unified_model()``).
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
    compile_only_on: a TPU topology name (e.g. 'v4-32'): build this run's step exactly as
      for training, compile it ahead of time for that topology's devices from abstract shapes
      (no data, no weights, nothing written) and return an ``aot.FitReport`` instead.
    break_lock: first remove the run lock (``run_lock``) of a run that no longer runs.
  """
  check_model(model, "train.model")
  if compile_only_on is not None:
    return _compile_only(compile_only_on, model=model, objective=objective, batches=batches,
                         batch_size=batch_size, learning_rate=learning_rate, optimizer=optimizer,
                         partitioning=partitioning, teacher=teacher,
                         num_microbatches=num_microbatches, enable_dropout=enable_dropout,
                         seed=seed, init_shapes=init_shapes)
  distributed.maybe_initialize_distributed()
  with run_lock.held_by_this_job(model_dir, break_lock=break_lock):
    return _train(
        model_dir=model_dir, model=model, objective=objective, batches=batches,
        batch_size=batch_size, total_steps=total_steps, learning_rate=learning_rate,
        optimizer=optimizer, partitioning=partitioning, checkpoint=checkpoint, teacher=teacher,
        num_microbatches=num_microbatches, enable_dropout=enable_dropout, seed=seed,
        log_every_steps=log_every_steps, eval_every_steps=eval_every_steps,
        refresh_every_steps=refresh_every_steps, init_shapes=init_shapes, eval_hook=eval_hook,
        refresh_hook=refresh_hook, stream=stream, devices=devices)


def _train(*, model_dir, model, objective, batches, batch_size, total_steps, learning_rate,
           optimizer, partitioning, checkpoint, teacher, num_microbatches, enable_dropout, seed,
           log_every_steps, eval_every_steps, refresh_every_steps, init_shapes, eval_hook,
           refresh_hook, stream, devices) -> TrainResult:
  """``train`` in a run directory this job holds the lock of."""
  partitioner = _make_partitioner(partitioning, devices)
  tx = optimizer(learning_rate)
  if total_steps <= 0:
    raise ValueError(f"train.total_steps must be positive, got {total_steps}")
  layout = partitioner.data_layout(batch_size)
  microbatch.check_divisible(batch_size, num_microbatches, partitioner.data_parallel_size)
  if getattr(objective, "needs_teacher", False) and teacher is None:
    raise ValueError(f"objective {objective.name!r} needs a teacher: bind train.teacher "
                     "(and Teacher.checkpoint) in gin")

  evaluating = eval_hook is not None and eval_every_steps > 0
  if checkpoint.best_metric and not evaluating:
    raise ValueError(f"CheckpointConfig.best_metric={checkpoint.best_metric!r} keeps the best "
                     "checkpoint by an eval metric, but the run evaluates nothing: bind "
                     "loop.train.eval_hook and a positive loop.train.eval_every_steps "
                     "(EVAL_EVERY), or set CheckpointConfig.best_metric = None")

  ckpt = checkpointing.Checkpointer(checkpointing.run_checkpoints_dir(model_dir), checkpoint)
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
      params = unified_params.load_unified_params(
          checkpoint.init_checkpoint, getattr(model, "config", None), abstract,
          "CheckpointConfig.init_checkpoint")
      if checkpoint.init_query_proj_from_passage_proj:
        params = unified_params.query_proj_from_passage_proj(params)
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
    teacher_params = unified_params.load_unified_params(
        teacher.checkpoint, getattr(teacher.model, "config", None), t_abstract,
        "Teacher.checkpoint")
    if teacher.scorer == "maxsim":
      unified_params.check_maxsim_head(teacher.checkpoint, teacher.maxsim_head,
                                       "Teacher.checkpoint")

  source = batches(layout)
  if evaluating and hasattr(eval_hook, "setup"):
    eval_hook.setup(partitioner)
  if "data_position" in meta:
    source.set_state(meta["data_position"])
  store_version = meta.get("retrieval_store_version")
  if store_version is not None and refresh_hook is not None and hasattr(refresh_hook, "restore"):
    refresh_hook.restore(store_version)

  if jax.process_index() == 0:
    # Every configurable the run uses has been called by now.
    gin_utils.write_operative_config(model_dir)
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
            refresh_metrics = getattr(refresh_hook, "last_metrics", None)
            if refresh_metrics:
              writer.write_scalars(step, dict(refresh_metrics))
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
        progress.step_done(step)
        if step % log_every_steps == 0 or step == total_steps:
          averaged = averager.result_and_reset()
          progress.update(step, averaged)
          writer.write_scalars(step, {**averaged, **progress.timing_scalars()})
        eval_metrics = None
        if evaluating and (step % eval_every_steps == 0 or step == total_steps):
          eval_metrics = {f"eval/{k}": float(v) for k, v in eval_hook(step, state.params).items()}
          if checkpoint.best_metric and checkpoint.best_metric not in eval_metrics:
            raise ValueError(
                f"CheckpointConfig.best_metric={checkpoint.best_metric!r} is not among the "
                f"metrics of the eval hook at step {step}: {sorted(eval_metrics)}")
          writer.write_scalars(step, eval_metrics)
          if jax.process_index() == 0:
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
