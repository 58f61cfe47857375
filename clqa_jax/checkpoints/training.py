"""Training checkpoints: an orbax ``CheckpointManager`` with keep-N plus keep-best.

A checkpoint step directory holds three items, so that params can be read alone (teacher,
init-from):
  params/     the model parameters (orbax StandardSave, sharded arrays)
  train/      step, optimizer state, rng
  meta/       JSON: data position, retrieval-store version, anything the loop records
Saves are asynchronous and atomic (orbax writes to a temporary directory and renames it).
Restore precedence (``trainer.loop``): the run's own latest step, else an explicit init
checkpoint (params only), else a fresh init. Every step's ``meta`` also records the run's
``best_metric``/``best_mode``, so ``clqa export --step best`` needs nothing but the checkpoints.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable

import gin
import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as ocm

from clqa_jax import fileio

logger = logging.getLogger(__name__)

PARAMS, TRAIN, META = "params", "train", "meta"
CHECKPOINTS_SUBDIR = "checkpoints"  # MODEL_DIR/checkpoints holds a run's steps


def run_checkpoints_dir(model_dir: str) -> str:
  """The training-checkpoint directory of a run directory."""
  return fileio.join(model_dir, CHECKPOINTS_SUBDIR)


class CheckpointShapeError(ValueError):
  """A checkpoint whose arrays have other shapes than the model restoring it (a changed model
  dimension on resume)."""


class CheckpointNotFoundError(FileNotFoundError):
  """A checkpoint path given in the config holds no readable checkpoint."""


@gin.configurable
@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
  """When and what to keep.

  Attributes:
    save_every_steps: periodic save interval (0: only at the end, on SIGTERM, at evals).
    keep: the number of most recent checkpoints kept.
    best_metric: eval metric name to keep the best checkpoint by (e.g. 'eval/r@2kt'); None
      keeps no extra best checkpoint.
    best_mode: 'max' or 'min'.
    keep_best: how many best checkpoints to keep (besides the latest ``keep``).
    async_save: write in the background while training continues.
    init_checkpoint: params to start from when the run has no checkpoint of its own: a
      training run's checkpoints (its latest step) or one step directory, an exported
      checkpoint (``clqa export``), or a ``clqa import class`` / ``hf_mt5 --unified`` output.
    init_query_proj_from_passage_proj: start ``retriever/query_proj`` from the init
      checkpoint's ``passage_proj`` (after LEXA pre-training, which trains only the passage
      side).
  """
  save_every_steps: int = 1000
  keep: int = 3
  best_metric: str | None = None
  best_mode: str = "max"
  keep_best: int = 1
  async_save: bool = True
  init_checkpoint: str | None = None
  init_query_proj_from_passage_proj: bool = False

  def __post_init__(self):
    if self.init_query_proj_from_passage_proj and not self.init_checkpoint:
      raise ValueError("CheckpointConfig.init_query_proj_from_passage_proj needs "
                       "CheckpointConfig.init_checkpoint (the pre-trained params)")
    if self.best_mode not in ("max", "min"):
      raise ValueError(f"CheckpointConfig.best_mode must be 'max' or 'min', got "
                       f"{self.best_mode!r}")
    if self.keep < 1:
      raise ValueError(f"CheckpointConfig.keep must be >= 1, got {self.keep}")


def list_steps(checkpoints_dir: str) -> list[int]:
  """The saved steps of a training-checkpoint directory: its numbered subdirectories holding a
  ``params`` item, ascending (orbax's temporary directories are not numbers)."""
  return sorted(int(name) for name in fileio.listdir(checkpoints_dir)
                if name.isdigit() and fileio.isdir(fileio.join(checkpoints_dir, name, PARAMS)))


def is_step_dir(path: str) -> bool:
  """Whether ``path`` is one step directory of a training-checkpoint directory."""
  return fileio.basename(path).isdigit() and fileio.isdir(fileio.join(path, PARAMS))


def _metric_fn(name: str) -> Callable[[dict], float]:
  def get(metrics: dict) -> float:
    return float(metrics[name])
  return get


class Checkpointer:
  """Thin wrapper around ``ocp.CheckpointManager`` for the train state and its metadata."""

  def __init__(self, directory: str, config: CheckpointConfig = CheckpointConfig()):
    self.directory = fileio.abspath(directory)
    self.config = config
    policies: list[Any] = [ocm.LatestN(n=config.keep)]
    best_fn = None
    if config.best_metric:
      best_fn = _metric_fn(config.best_metric)
      policies.append(ocm.BestN(get_metric_fn=best_fn, reverse=config.best_mode == "min",
                                n=config.keep_best, keep_checkpoints_without_metrics=False))
    options = ocp.CheckpointManagerOptions(
        create=True, enable_async_checkpointing=config.async_save,
        preservation_policy=ocm.AnyPreservationPolicy(policies), best_fn=best_fn,
        best_mode=config.best_mode)
    self.manager = ocp.CheckpointManager(self.directory, options=options,
                                         item_names=(PARAMS, TRAIN, META))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def best_step(self) -> int | None:
    return self.manager.best_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def save(self, state: Any, meta: dict[str, Any], *,
           metrics: dict[str, float] | None = None) -> bool:
    """Saves a ``TrainState`` (step, params, opt_state, rng) at ``state.step`` (asynchronously
    if configured). Returns whether it saved."""
    step = int(jax.device_get(state.step))
    if step in self.manager.all_steps():
      return False  # already saved (e.g. periodic save then SIGTERM at the same step)
    if metrics is not None and self.config.best_metric:
      metrics = {k: float(v) for k, v in metrics.items()}
    else:
      metrics = None
    train = {"step": state.step, "opt_state": state.opt_state, "rng": state.rng}
    return self.manager.save(
        step, metrics=metrics, force=True,
        args=ocp.args.Composite(**{PARAMS: ocp.args.StandardSave(state.params),
                                   TRAIN: ocp.args.StandardSave(train),
                                   META: ocp.args.JsonSave(dict(
                                       meta, step=step, best_metric=self.config.best_metric,
                                       best_mode=self.config.best_mode))}))

  def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
    """The state at ``step`` (default latest) laid out as ``abstract_state``'s shardings
    (a ``TrainState`` of abstract arrays; the result has its type)."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointNotFoundError(f"no checkpoint in {self.directory}")
    abstract_train = {"step": abstract_state.step, "opt_state": abstract_state.opt_state,
                      "rng": abstract_state.rng}
    try:
      out = self.manager.restore(step, args=ocp.args.Composite(**{
          PARAMS: ocp.args.StandardRestore(abstract_state.params),
          TRAIN: ocp.args.StandardRestore(abstract_train),
          META: ocp.args.JsonRestore()}))
    except ValueError as e:
      if "stored shape" not in str(e):
        raise
      raise CheckpointShapeError(self._shape_mismatch_message(
          step, {PARAMS: abstract_state.params, TRAIN: abstract_train})) from e
    train = out[TRAIN]
    state = abstract_state.replace(step=train["step"], params=out[PARAMS],
                                   opt_state=train["opt_state"], rng=train["rng"])
    return state, dict(out[META] or {})

  def _shape_mismatch_message(self, step: int, abstract: dict[str, Any]) -> str:
    """Names the arrays whose stored shape differs from the model's (orbax names neither)."""
    stored = self.manager.item_metadata(step)
    mismatches = []
    for item, tree in abstract.items():
      want = {jax.tree_util.keystr(k): tuple(v.shape)
              for k, v in jax.tree_util.tree_flatten_with_path(tree)[0] if hasattr(v, "shape")}
      have = {jax.tree_util.keystr(k): tuple(v.shape)
              for k, v in jax.tree_util.tree_flatten_with_path(stored[item])[0]
              if hasattr(v, "shape")}
      mismatches += [f"{item}{name}: checkpoint {have[name]}, model {shape}"
                     for name, shape in want.items() if name in have and have[name] != shape]
    shown = "; ".join(mismatches[:3]) + (f"; and {len(mismatches) - 3} more"
                                         if len(mismatches) > 3 else "")
    return (f"{self.directory} step {step} holds arrays of other shapes than the model "
            f"({shown or 'shapes differ'}); resume with the run's original model config, or "
            "use a new MODEL_DIR")

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def _resolve_step_dir(path: str) -> tuple[str, int]:
  """(checkpoints directory, step) for a checkpoints directory (its latest step) or one step
  directory."""
  path = path.rstrip("/")
  if is_step_dir(path):
    return fileio.dirname(path), int(fileio.basename(path))
  if not fileio.isdir(path):
    raise CheckpointNotFoundError(f"checkpoint path {path!r} does not exist")
  steps = list_steps(path)
  if not steps:
    raise CheckpointNotFoundError(
        f"{path!r} holds no training checkpoint (expected step directories with a "
        f"'{PARAMS}' item); give a run's checkpoints directory or one of its step directories")
  return path, steps[-1]


def load_params(path: str, abstract_params: Any) -> Any:
  """Only the params of a training checkpoint, laid out as ``abstract_params`` (with shardings).

  Used for the frozen teacher and for ``CheckpointConfig.init_checkpoint``.
  """
  checkpoints_dir, step = _resolve_step_dir(path)
  with ocp.CheckpointManager(checkpoints_dir, item_names=(PARAMS,),
                             options=ocp.CheckpointManagerOptions(read_only=True)) as mgr:
    out = mgr.restore(step, args=ocp.args.Composite(
        **{PARAMS: ocp.args.StandardRestore(abstract_params)}))
  logger.info("loaded params of %s step %d", checkpoints_dir, step)
  return out[PARAMS]


def read_meta(checkpoints_dir: str, step: int) -> dict[str, Any]:
  """The ``meta`` item (JSON) of one step."""
  with ocp.CheckpointManager(checkpoints_dir, item_names=(META,),
                             options=ocp.CheckpointManagerOptions(read_only=True)) as mgr:
    out = mgr.restore(step, args=ocp.args.Composite(**{META: ocp.args.JsonRestore()}))
  return dict(out[META] or {})


def read_metrics(checkpoints_dir: str) -> dict[int, dict[str, float]]:
  """{step: its recorded eval metrics} of the steps saved with metrics (the kept-best metrics;
  orbax records them only when the run set ``CheckpointConfig.best_metric``)."""
  out = {}
  with ocp.CheckpointManager(checkpoints_dir, item_names=(PARAMS,),
                             options=ocp.CheckpointManagerOptions(read_only=True)) as mgr:
    for step in list_steps(checkpoints_dir):
      metrics = mgr.metrics(step)
      if metrics:
        out[step] = {k: float(v) for k, v in metrics.items()}
  return out


def best_step_of(values: dict[int, float], mode: str = "max") -> int:
  """The step of the best value; ties go to the later step, as the keep-best policy keeps it."""
  if mode not in ("max", "min"):
    raise ValueError(f"best mode must be 'max' or 'min', got {mode!r}")
  if not values:
    raise ValueError("no values to choose the best step from")
  sign = 1.0 if mode == "max" else -1.0
  return max(values, key=lambda step: (sign * values[step], step))
