"""Writing exported checkpoints (``clqa export``) from training runs and imported checkpoints.

Sources ``export_checkpoint`` accepts:
* a training run directory (``MODEL_DIR`` with ``checkpoints/`` and ``config.gin``), its
  ``checkpoints/`` directory, or one step directory of it;
* a checkpoint written by ``clqa import class`` (orbax step 0 plus ``config.json``);
* another export (to change its dtype).
The step is "latest", "best" (by the run's ``CheckpointConfig.best_metric``, or the metric
given) or a number. The model config comes from, in order: the ``model_config`` argument, the
imported checkpoint's ``config.json``, ``MODEL_DIR/model_config.json``, or ``UnifiedConfig``
as the run's operative ``config.gin`` binds it. The parameters are checked against that
config's parameter tree, so a wrong config is an error, never a silently broken export.
"""
from __future__ import annotations

import ast
import dataclasses
import datetime
import hashlib
import json
import logging
import os
import re
import shutil
from typing import Any

import numpy as np

from clqa_jax.checkpoints import exported as fmt

logger = logging.getLogger(__name__)

PARAMS_ITEM = "params"  # the params item of training (trainer.checkpointing) and import dirs


@dataclasses.dataclass(frozen=True)
class ExportSource:
  """A resolved source: where its orbax steps live, which step, and the run directory."""
  kind: str                 # "run" | "imported" | "export"
  checkpoints_dir: str      # the orbax CheckpointManager directory (or the export dir)
  step: int | None
  run_dir: str | None       # the training run directory (config.gin), when known


def _orbax_steps(directory: str) -> list[int]:
  return sorted(int(d) for d in os.listdir(directory)
                if d.isdigit() and os.path.isdir(os.path.join(directory, d, PARAMS_ITEM)))


def _best_metric_from_gin(run_dir: str | None) -> tuple[str | None, str]:
  """``CheckpointConfig.best_metric``/``best_mode`` as the run's operative config binds them."""
  text = _read_gin(run_dir)
  if text is None:
    return None, "max"
  metric, mode = None, "max"
  m = re.search(r"^\s*(?:[\w.]+\.)?CheckpointConfig\.best_metric\s*=\s*(.+)$", text, re.M)
  if m:
    metric = ast.literal_eval(m.group(1).strip())
  m = re.search(r"^\s*(?:[\w.]+\.)?CheckpointConfig\.best_mode\s*=\s*(.+)$", text, re.M)
  if m:
    mode = ast.literal_eval(m.group(1).strip())
  return metric, mode


def _read_gin(run_dir: str | None) -> str | None:
  if run_dir is None:
    return None
  path = os.path.join(run_dir, fmt.GIN_FILE)
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    return f.read()


def select_step(checkpoints_dir: str, step: str | int, *, best_metric: str | None = None,
                best_mode: str = "max") -> int:
  """The step number for "latest", "best" or an explicit step of an orbax directory."""
  import orbax.checkpoint as ocp

  steps = _orbax_steps(checkpoints_dir)
  if not steps:
    raise FileNotFoundError(f"{checkpoints_dir}: no checkpoint steps with a '{PARAMS_ITEM}' "
                            "item")
  if step == "latest":
    return steps[-1]
  if step == "best":
    if not best_metric:
      raise ValueError(f"{checkpoints_dir}: --step best needs the metric the run kept its best "
                       "checkpoint by (CheckpointConfig.best_metric in its config.gin, or "
                       "--best_metric NAME)")
    options = ocp.CheckpointManagerOptions(
        read_only=True, best_fn=lambda metrics: float(metrics[best_metric]),
        best_mode=best_mode)
    with ocp.CheckpointManager(checkpoints_dir, options=options,
                               item_names=(PARAMS_ITEM,)) as manager:
      scored = [s for s in manager.all_steps()
                if (manager.metrics(s) or {}).get(best_metric) is not None]
      if not scored:
        raise ValueError(f"{checkpoints_dir}: no checkpoint recorded metric {best_metric!r}; "
                         "use --step latest or a step number")
      return int(manager.best_step())
  try:
    number = int(step)
  except (TypeError, ValueError):
    raise ValueError(f"step must be 'latest', 'best' or a number, got {step!r}") from None
  if number not in steps:
    raise FileNotFoundError(f"{checkpoints_dir}: no step {number}; available: {steps}")
  return number


def resolve_source(path: str, step: str | int = "latest", *, best_metric: str | None = None,
                   best_mode: str | None = None) -> ExportSource:
  """Finds the checkpoint a path names (see the module docstring)."""
  path = os.path.abspath(path.rstrip("/"))
  if not os.path.isdir(path):
    raise FileNotFoundError(f"{path}: no such checkpoint directory")
  if fmt.is_exported(path):
    return ExportSource("export", path, None, None)
  base = os.path.basename(path)
  if base.isdigit() and os.path.isdir(os.path.join(path, PARAMS_ITEM)):
    if step not in ("latest", int(base), base):
      raise ValueError(f"{path} is the step directory of step {base}; --step {step} disagrees")
    parent = os.path.dirname(path)
    return _source_in(parent, int(base))
  if os.path.isdir(os.path.join(path, "checkpoints")):
    run_dir, checkpoints_dir = path, os.path.join(path, "checkpoints")
  else:
    checkpoints_dir = path
    run_dir = os.path.dirname(path) if base == "checkpoints" else None
  kind = "imported" if os.path.exists(os.path.join(checkpoints_dir, "config.json")) else "run"
  metric, mode = _best_metric_from_gin(run_dir)
  chosen = select_step(checkpoints_dir, step, best_metric=best_metric or metric,
                       best_mode=best_mode or mode)
  return ExportSource(kind, checkpoints_dir, chosen, run_dir)


def _source_in(checkpoints_dir: str, step: int) -> ExportSource:
  kind = "imported" if os.path.exists(os.path.join(checkpoints_dir, "config.json")) else "run"
  base = os.path.basename(checkpoints_dir)
  run_dir = os.path.dirname(checkpoints_dir) if base == "checkpoints" else None
  return ExportSource(kind, checkpoints_dir, step, run_dir)


def model_config_from_gin(gin_path: str):
  """``UnifiedConfig`` as a run's operative config binds it (gin state is restored after)."""
  import gin

  from clqa_jax import gin_utils
  from clqa_jax.models.unified import UnifiedConfig
  from clqa_jax.trainer import register_configurables  # noqa: F401  (names the run files use)

  with open(gin_path, encoding="utf-8") as f:
    text = f.read()
  if not re.search(r"^\s*(?:[\w.]+\.)?UnifiedConfig\.", text, re.M) and \
     "UnifiedConfig()" not in text:
    raise ValueError(f"{gin_path}: the operative config does not bind UnifiedConfig (the run "
                     "did not build its model config with gin); pass --model_config JSON")
  with gin_utils.scoped_config():
    gin.parse_config(text, skip_unknown=True)
    return UnifiedConfig()


def resolve_model_config(source: ExportSource, model_config: Any = None):
  """The UnifiedConfig of a source (see the module docstring for the order)."""
  from clqa_jax.checkpoints.hf_mt5 import config_from_record
  from clqa_jax.models.unified import UnifiedConfig

  if isinstance(model_config, UnifiedConfig):
    return model_config
  if isinstance(model_config, str):
    with open(model_config, encoding="utf-8") as f:
      record = json.load(f)
    if "kind" not in record:
      record = {"kind": "unified", "config": record}
    return config_from_record(record)
  if source.kind == "export":
    return fmt.read_model_config(source.checkpoints_dir)
  if source.kind == "imported":
    with open(os.path.join(source.checkpoints_dir, "config.json"), encoding="utf-8") as f:
      config = config_from_record(json.load(f))
    if not isinstance(config, UnifiedConfig):
      raise ValueError(f"{source.checkpoints_dir} holds a plain mT5 import; exports need the "
                       "retriever-reader (import it with `clqa import class`)")
    return config
  if source.run_dir is not None:
    path = os.path.join(source.run_dir, fmt.MODEL_CONFIG)
    if os.path.exists(path):
      return resolve_model_config(source, path)
    gin_path = os.path.join(source.run_dir, fmt.GIN_FILE)
    if os.path.exists(gin_path):
      return model_config_from_gin(gin_path)
  raise ValueError(f"{source.checkpoints_dir}: cannot tell the model config (no "
                   f"{fmt.MODEL_CONFIG} or config.gin in the run directory); pass --model_config")


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
                             item_names=(PARAMS_ITEM,)) as manager:
    out = manager.restore(source.step, args=ocp.args.Composite(**{
        PARAMS_ITEM: ocp.args.PyTreeRestore(restore_args=restore_args)}))
  params = out[PARAMS_ITEM]
  fmt.check_params_match(params, expected,
                         os.path.join(source.checkpoints_dir, str(source.step), PARAMS_ITEM))
  return params


def _gin_string(text: str, name: str) -> str | None:
  """The string a ``[scope/][module.]NAME = 'value'`` line binds, if any."""
  m = re.search(r"^\s*(?:[\w./]+\.)?" + re.escape(name) + r"\s*=\s*(.+)$", text, re.M)
  if not m:
    return None
  try:
    value = ast.literal_eval(m.group(1).strip())
  except (ValueError, SyntaxError):
    return None
  return value if isinstance(value, str) else None


def vocabulary_from_gin(run_dir: str | None) -> str | None:
  """The vocabulary the run's operative config names: ``vocabulary_path.path``, else
  ``data_root.path``/vocab/spm.model (``clqa_jax.data.paths``' default)."""
  text = _read_gin(run_dir)
  if text is None:
    return None
  path = _gin_string(text, "vocabulary_path.path")
  if path:
    return path
  root = _gin_string(text, "data_root.path")
  return os.path.join(root, "vocab", "spm.model") if root else None


def resolve_vocabulary(source: ExportSource, vocab_path: str | None) -> str:
  """The SentencePiece model to ship: explicit, the source export's, the run's gin, or the
  configured default (``clqa_jax.data.paths.vocabulary_path``: env CLQA_VOCAB / data root)."""
  if vocab_path:
    candidate = vocab_path
  elif source.kind == "export":
    candidate = os.path.join(source.checkpoints_dir, fmt.VOCAB_FILE)
  else:
    candidate = vocabulary_from_gin(source.run_dir)
    if candidate is None:
      from clqa_jax.data import paths
      try:
        candidate = paths.vocabulary_path()
      except FileNotFoundError as e:
        raise FileNotFoundError(f"no vocabulary for the export: pass --vocab PATH ({e})") from e
  if not os.path.isfile(candidate):
    raise FileNotFoundError(f"vocabulary {candidate!r} not found: pass --vocab PATH")
  return candidate


def _sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _check_vocab_size(vocab_path: str, config) -> None:
  import sentencepiece as spm

  pieces = spm.SentencePieceProcessor(model_file=vocab_path).get_piece_size()
  if pieces > config.mt5.vocab_size:
    raise ValueError(f"vocabulary {vocab_path} has {pieces} pieces but the model's vocab_size "
                     f"is {config.mt5.vocab_size}: wrong --vocab?")


def write_export(out_dir: str, config, params: Any, vocab_path: str, *,
                 dtype: str = "float32", source: dict[str, Any] | None = None,
                 gin_text: str | None = None, overwrite: bool = False) -> dict[str, Any]:
  """Writes an export directory atomically (temporary directory, then rename).

  Returns the manifest. Refuses an existing ``out_dir`` unless ``overwrite``.
  """
  import jax
  import ml_dtypes
  import orbax.checkpoint as ocp

  if dtype not in fmt.PARAM_DTYPES:
    raise ValueError(f"dtype must be one of {fmt.PARAM_DTYPES}, got {dtype!r}")
  out_dir = os.path.abspath(out_dir.rstrip("/"))
  if os.path.exists(out_dir) and not overwrite:
    raise FileExistsError(f"{out_dir} exists; pass --overwrite to replace it")
  _check_vocab_size(vocab_path, config)
  fmt.check_params_match(params, fmt.abstract_params(config), "params")
  np_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.float32
  host = jax.tree.map(lambda x: np.asarray(x).astype(np_dtype), params)
  parent = os.path.dirname(out_dir)
  os.makedirs(parent, exist_ok=True)
  tmp = os.path.join(parent, f".{os.path.basename(out_dir)}.tmp-{os.getpid()}")
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(os.path.join(tmp, "vocab"))
  try:
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(os.path.join(tmp, fmt.PARAMS_DIR), host)
    checkpointer.wait_until_finished()
    checkpointer.close()
    with open(os.path.join(tmp, fmt.MODEL_CONFIG), "w", encoding="utf-8") as f:
      json.dump({"kind": "unified", "config": config.to_dict()}, f, indent=2, sort_keys=True)
    shutil.copyfile(vocab_path, os.path.join(tmp, fmt.VOCAB_FILE))
    files = {"params": fmt.PARAMS_DIR, "model_config": fmt.MODEL_CONFIG, "vocab": fmt.VOCAB_FILE}
    if gin_text is not None:
      with open(os.path.join(tmp, fmt.GIN_FILE), "w", encoding="utf-8") as f:
        f.write(gin_text)
      files["gin"] = fmt.GIN_FILE
    manifest = {
        "format": fmt.FORMAT, "format_version": fmt.FORMAT_VERSION, "dtype": dtype,
        "param_count": int(sum(np.size(x) for x in jax.tree.leaves(host))),
        "retriever_layer": config.resolved_retriever_layer,
        "vocab_sha256": _sha256(vocab_path), "vocab_source": os.path.abspath(vocab_path),
        "source": source or {}, "files": files,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    with open(os.path.join(tmp, fmt.MANIFEST), "w", encoding="utf-8") as f:
      json.dump(manifest, f, indent=2, sort_keys=True)
    fmt.publish_directory(tmp, out_dir)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  logger.info("exported %s parameters (%s) to %s", f"{manifest['param_count']:,}", dtype,
              out_dir)
  return manifest


def export_checkpoint(checkpoint_dir: str, out_dir: str, *, step: str | int = "latest",
                      dtype: str = "float32", vocab_path: str | None = None,
                      model_config: Any = None, best_metric: str | None = None,
                      best_mode: str | None = None, overwrite: bool = False) -> dict[str, Any]:
  """Exports one checkpoint of a run (or an import, or an export) to ``out_dir``.

  Returns the manifest written.
  """
  source = resolve_source(checkpoint_dir, step, best_metric=best_metric, best_mode=best_mode)
  if os.path.abspath(out_dir.rstrip("/")) == source.checkpoints_dir:
    raise ValueError("--out must differ from the source directory")
  config = resolve_model_config(source, model_config)
  vocab = resolve_vocabulary(source, vocab_path)
  params = restore_params(source, config)
  gin_text = _read_gin(source.run_dir)
  if gin_text is None and source.kind == "export":
    gin_text = _read_gin(source.checkpoints_dir)
  record = {"kind": source.kind, "path": source.checkpoints_dir, "step": source.step,
            "run_dir": source.run_dir}
  if step == "best":
    metric, _ = _best_metric_from_gin(source.run_dir)
    record["selected_by"] = best_metric or metric
  return write_export(out_dir, config, params, vocab, dtype=dtype, source=record,
                      gin_text=gin_text, overwrite=overwrite)
