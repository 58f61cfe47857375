"""``clqa export``: one checkpoint of a training run (or an export) -> an exported checkpoint.

Sources ``export_checkpoint`` accepts (``kinds.checkpoint_kind`` tells them apart):
* a training run directory (``MODEL_DIR`` with ``checkpoints/`` and ``model_config.json``), its
  ``checkpoints/`` directory, or one step directory of it;
* an exported checkpoint (``clqa export`` or ``clqa import``), e.g. to change its dtype.
The step is "latest", "best" (by the metric the run's ``CheckpointConfig.best_metric`` recorded
in its checkpoints, or the metric given) or a number. The model config comes from the
``model_config`` argument, else the export's or the run's ``model_config.json``. The
parameters are checked against that config's parameter tree, so a wrong config is an error,
never a silently broken export. Paths may be local or gs://.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np

from clqa_jax import fileio
from clqa_jax.checkpoints import exported as fmt
from clqa_jax.checkpoints import kinds
from clqa_jax.checkpoints import training

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ExportSource:
  """A resolved source: where its parameters live, which step, and the run directory."""
  kind: str                 # "run" (a training checkpoint) | "export"
  checkpoints_dir: str      # the orbax CheckpointManager directory (or the export dir)
  step: int | None
  run_dir: str | None       # the training run directory (model_config.json), when known
  selected_by: str | None = None  # the metric "best" chose the step by


def select_step(checkpoints_dir: str, step: str | int, *, best_metric: str | None = None,
                best_mode: str | None = None) -> tuple[int, str | None]:
  """(step number, metric it was selected by) for "latest", "best" or an explicit step of a
  training-checkpoint directory. "best" defaults to the metric and mode the run recorded
  and, among the steps that recorded that metric, is the one the run's keep-best policy kept
  (ties: the later step)."""
  steps = training.list_steps(checkpoints_dir)
  if not steps:
    raise FileNotFoundError(f"{checkpoints_dir}: no checkpoint steps with a "
                            f"'{training.PARAMS}' item")
  if step == "latest":
    return steps[-1], None
  if step == "best":
    recorded = training.read_meta(checkpoints_dir, steps[-1])
    best_metric = best_metric or recorded.get("best_metric")
    best_mode = best_mode or recorded.get("best_mode") or "max"
    if not best_metric:
      raise ValueError(f"{checkpoints_dir}: --step best needs the metric the run kept its best "
                       "checkpoint by (its CheckpointConfig.best_metric was not set): pass "
                       "--best_metric NAME")
    values = {s: m[best_metric] for s, m in training.read_metrics(checkpoints_dir).items()
              if best_metric in m}
    if not values:
      raise ValueError(f"{checkpoints_dir}: no checkpoint recorded metric {best_metric!r}; "
                       "use --step latest or a step number")
    return training.best_step_of(values, best_mode), best_metric
  try:
    number = int(step)
  except (TypeError, ValueError):
    raise ValueError(f"step must be 'latest', 'best' or a number, got {step!r}") from None
  if number not in steps:
    raise FileNotFoundError(f"{checkpoints_dir}: no step {number}; available: {steps}")
  return number, None


def resolve_source(path: str, step: str | int = "latest", *, best_metric: str | None = None,
                   best_mode: str | None = None) -> ExportSource:
  """The checkpoint a path names (see the module docstring)."""
  path = fileio.abspath(path.rstrip("/"))
  kind = kinds.checkpoint_kind(path, "--checkpoint_dir")
  if kind == "exported":
    return ExportSource("export", path, None, None)
  if kind not in kinds.TRAINING_KINDS:
    raise ValueError(f"{path} is {kinds.KINDS[kind]}; import it first "
                     f"({kinds.import_hint(kind, path)}), which writes an exported checkpoint")
  where = kinds.locate_training(path, kind)
  if where.step is not None:
    if step not in ("latest", where.step, str(where.step)):
      raise ValueError(f"{path} is the step directory of step {where.step}; --step {step} "
                       "disagrees")
    return ExportSource("run", where.checkpoints_dir, where.step, where.run_dir)
  chosen, metric = select_step(where.checkpoints_dir, step, best_metric=best_metric,
                               best_mode=best_mode)
  return ExportSource("run", where.checkpoints_dir, chosen, where.run_dir, metric)


def resolve_model_config(source: ExportSource, model_config: Any = None):
  """The UnifiedConfig of a source: ``model_config`` (a UnifiedConfig or a JSON file, bare or
  as a ``{"kind", "config"}`` record), else the export's or the run's ``model_config.json``."""
  from clqa_jax.checkpoints.hf_mt5 import config_from_record
  from clqa_jax.models.unified import UnifiedConfig

  if isinstance(model_config, UnifiedConfig):
    return model_config
  if isinstance(model_config, str):
    record = fileio.read_json(model_config)
    if "kind" not in record:
      record = {"kind": "unified", "config": record}
    return config_from_record(record)
  if source.kind == "export":
    return fmt.read_model_config(source.checkpoints_dir)
  if source.run_dir is None or not fileio.exists(fileio.join(source.run_dir, fmt.MODEL_CONFIG)):
    where = (fileio.join(source.run_dir, fmt.MODEL_CONFIG) if source.run_dir is not None
             else f"the run directory above {source.checkpoints_dir}")
    raise ValueError(f"{where} is missing (the training loop writes it at the start of a run): "
                     "cannot tell the model config; pass --model_config JSON")
  return fmt.read_model_config(source.run_dir)


def restore_params(source: ExportSource, config) -> Any:
  """The source's params as host numpy arrays (float32 or as stored), checked against config."""
  import jax
  import orbax.checkpoint as ocp

  if source.kind == "export":
    return fmt.load_exported(source.checkpoints_dir)[1]
  expected = fmt.abstract_params(config)
  restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), expected)
  options = ocp.CheckpointManagerOptions(read_only=True)
  with ocp.CheckpointManager(source.checkpoints_dir, options=options,
                             item_names=(training.PARAMS,)) as manager:
    out = manager.restore(source.step, args=ocp.args.Composite(**{
        training.PARAMS: ocp.args.PyTreeRestore(restore_args=restore_args)}))
  params = out[training.PARAMS]
  fmt.check_params_match(params, expected, fileio.join(source.checkpoints_dir,
                                                       str(source.step), training.PARAMS))
  return params


def read_run_gin(run_dir: str | None) -> str | None:
  """The operative ``config.gin`` of a run directory, if it has one."""
  if run_dir is None or not fileio.exists(fileio.join(run_dir, fmt.GIN_FILE)):
    return None
  return fileio.read_text(fileio.join(run_dir, fmt.GIN_FILE))


def _gin_string_bindings(text: str) -> dict[str, str]:
  """{"configurable.arg": value} for the unscoped string bindings of a gin text, parsed with
  gin's own parser (nothing imported or registered); ``%MACRO`` values are resolved."""
  from gin import config_parser

  class _Values(config_parser.ParserDelegate):
    def configurable_reference(self, scoped_configurable_name, evaluate):
      return None

    def macro(self, macro_name):
      return ("macro", macro_name)

  bindings: dict[str, Any] = {}
  for statement in config_parser.ConfigParser(text, _Values()):
    if isinstance(statement, config_parser.BindingStatement) and not statement.scope:
      name = statement.selector.rsplit(".", 1)[-1]
      bindings[f"{name}.{statement.arg_name}" if statement.arg_name else name] = statement.value
  out = {}
  for key, value in bindings.items():
    if isinstance(value, tuple) and value[:1] == ("macro",):
      value = bindings.get(value[1])
    if isinstance(value, str):
      out[key] = value
  return out


def vocabulary_from_gin(run_dir: str | None) -> str | None:
  """The vocabulary the run's operative config names: ``vocabulary_path.path``, else
  ``data_root.path``/vocab/spm.model (``clqa_jax.data.paths``' default)."""
  text = read_run_gin(run_dir)
  if text is None:
    return None
  bindings = _gin_string_bindings(text)
  if bindings.get("vocabulary_path.path"):
    return bindings["vocabulary_path.path"]
  root = bindings.get("data_root.path")
  return fileio.join(root, "vocab", "spm.model") if root else None


def resolve_vocabulary(source: ExportSource, vocab_path: str | None) -> str:
  """The SentencePiece model to ship: explicit, the source export's, the run's gin, or the
  configured default (``clqa_jax.data.paths.vocabulary_path``: env CLQA_VOCAB / data root)."""
  if source.kind == "export":
    found = fileio.join(source.checkpoints_dir, fmt.VOCAB_FILE)
  else:
    found = vocabulary_from_gin(source.run_dir)
  return fmt.vocabulary_to_ship(vocab_path, found, "no vocabulary for the export")


def export_checkpoint(checkpoint_dir: str, out_dir: str, *, step: str | int = "latest",
                      dtype: str = "float32", vocab_path: str | None = None,
                      model_config: Any = None, best_metric: str | None = None,
                      best_mode: str | None = None, overwrite: bool = False) -> dict[str, Any]:
  """Exports one checkpoint of a run (or an export) to ``out_dir``.

  Returns the manifest written.
  """
  source = resolve_source(checkpoint_dir, step, best_metric=best_metric, best_mode=best_mode)
  if fileio.abspath(out_dir.rstrip("/")) == source.checkpoints_dir:
    raise ValueError("--out must differ from the source directory")
  config = resolve_model_config(source, model_config)
  vocab = resolve_vocabulary(source, vocab_path)
  params = restore_params(source, config)
  gin_text = read_run_gin(source.run_dir)
  if gin_text is None and source.kind == "export":
    gin_text = read_run_gin(source.checkpoints_dir)
  record = {"kind": source.kind, "path": source.checkpoints_dir, "step": source.step,
            "run_dir": source.run_dir}
  if source.selected_by is not None:
    record["selected_by"] = source.selected_by
  return fmt.write_exported(out_dir, config, params, vocab, dtype=dtype, source=record,
                            gin_text=gin_text, overwrite=overwrite)
