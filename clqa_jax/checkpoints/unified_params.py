"""Params of a unified model from a checkpoint this codebase writes: an exported checkpoint
(``clqa export`` / ``clqa import``) or a training run's checkpoints.

``load_unified_params`` loads either into a given abstract (sharded) layout and checks that the
stored config and shapes fit the model. The training loop uses it for the stage-1 teacher
(``Teacher.checkpoint``) and for ``CheckpointConfig.init_checkpoint``.
"""
from __future__ import annotations

import logging
from typing import Any

import jax
import jax.numpy as jnp

from clqa_jax import fileio
from clqa_jax.checkpoints import exported
from clqa_jax.checkpoints import import_hf
from clqa_jax.checkpoints import kinds
from clqa_jax.checkpoints import training
from clqa_jax.checkpoints.kinds import CheckpointKindError

logger = logging.getLogger(__name__)

# Config fields that change what the params compute without changing their shapes.
_SEMANTIC_FIELDS = ("retriever_layer", "relative_attention_max_distance", "layer_norm_epsilon",
                    "tie_word_embeddings", "pad_id", "eos_id", "decoder_start_id")


def _check_config(stored: Any, model_config: Any, where: str,
                  model_name: str = "the model") -> None:
  """The stored UnifiedConfig must equal the model's in what the params mean."""
  from clqa_jax.models.unified import UnifiedConfig

  if not isinstance(stored, UnifiedConfig):
    raise CheckpointKindError(
        f"{where}: holds a plain {type(stored).__name__} (no retriever head); {model_name} "
        "needs a unified checkpoint (clqa import hf_mt5 --unified, or clqa import class)")
  if model_config is None:
    return
  diffs = []
  for name in _SEMANTIC_FIELDS:
    cfg, mdl = (stored, model_config) if name == "retriever_layer" else (stored.mt5,
                                                                          model_config.mt5)
    a, b = getattr(cfg, name), getattr(mdl, name)
    if name == "retriever_layer":
      a, b = stored.resolved_retriever_layer, model_config.resolved_retriever_layer
    if a != b:
      diffs.append(f"{name}: checkpoint {a!r} != {model_name} {b!r}")
  if diffs:
    raise CheckpointKindError(f"{where}: {model_name} config does not match the "
                              "checkpoint's: " + "; ".join(diffs))


def _place(params: Any, abstract_params: Any) -> Any:
  """Host or single-device params -> abstract_params' dtypes (and shardings when given)."""
  def put(x, a):
    x = jnp.asarray(x, a.dtype)
    sharding = getattr(a, "sharding", None)
    return jax.device_put(x, sharding) if sharding is not None else x
  return jax.tree.map(put, params, abstract_params)


def load_unified_params(path: str, model_config: Any, abstract_params: Any,
                        role: str = "checkpoint") -> Any:
  """A unified model's params from ``path`` (an exported checkpoint or a training run, its
  checkpoints directory or one step directory), laid out as ``abstract_params``
  (ShapeDtypeStructs, with shardings for a partitioned run).

  Args:
    path: the checkpoint directory (local or gs://).
    model_config: the UnifiedConfig of the model the params are for; None (a model without
      a config) checks the shapes only.
    abstract_params: the params' shapes, dtypes and (optionally) shardings.
    role: what the path configures, for error messages (e.g. "Teacher.checkpoint").

  Raises:
    CheckpointKindError: an unknown directory, a Hugging Face / CLASS directory (import it
      first), a plain-mT5 export, or a stored config / params that do not match
      ``model_config`` (names the differing fields or params).
  """
  kind = kinds.checkpoint_kind(path, role)
  if kind in kinds.TRAINING_KINDS:
    where = kinds.locate_training(path, kind)
    if where.run_dir is not None and fileio.exists(fileio.join(where.run_dir,
                                                               exported.MODEL_CONFIG)):
      try:
        stored = exported.read_model_config(where.run_dir, require_unified=False)
      except exported.ExportFormatError as e:
        raise CheckpointKindError(str(e)) from e
      _check_config(stored, model_config, fileio.join(where.run_dir, exported.MODEL_CONFIG),
                    f"{role}'s model")
    step_dir = (where.checkpoints_dir if where.step is None else
                fileio.join(where.checkpoints_dir, str(where.step)))
    params = training.load_params(step_dir, abstract_params)
  elif kind == "exported":
    try:
      config = exported.read_model_config(path, require_unified=False)
      _check_config(config, model_config, path, f"{role}'s model")
      exported.check_params_match(exported.abstract_params(config), abstract_params, path)
      shardings = jax.tree.map(lambda a: getattr(a, "sharding", None), abstract_params)
      if any(s is None for s in jax.tree.leaves(shardings, is_leaf=lambda x: x is None)):
        shardings = None
      _, params, _, _ = exported.load_exported(path, shardings=shardings)
    except exported.ExportFormatError as e:
      raise CheckpointKindError(str(e)) from e
    params = _place(params, abstract_params)
  else:
    raise CheckpointKindError(
        f"{role} {path!r} is {kinds.KINDS[kind]}; import it first "
        f"({kinds.import_hint(kind, path)}) and point at the output")
  logger.info("%s params: %s checkpoint %s", role, kind, path)
  return params


def query_proj_from_passage_proj(params: Any) -> Any:
  """``params`` with ``retriever/query_proj`` replaced by ``retriever/passage_proj``.

  After a passage-encoder-only pre-training (LEXA), queries start from the trained passage
  projection rather than from the untrained query one (the spec's recommendation).
  """
  retriever = params.get("retriever") if hasattr(params, "get") else None
  if retriever is None or "passage_proj" not in retriever or "query_proj" not in retriever:
    raise KeyError("query_proj_from_passage_proj: the params have no retriever/{query_proj, "
                   "passage_proj} (not a unified model's params)")
  return {**params, "retriever": {**retriever, "query_proj": retriever["passage_proj"]}}


def check_maxsim_head(path: str, head: int, role: str = "checkpoint") -> None:
  """The MaxSim attention head ``head`` must be the one an imported checkpoint records.

  ``clqa import`` records the source config.json's ``retriever_head`` (manifest ``source``,
  ``import_hf.RETRIEVER_HEAD_RECORD``); other checkpoints record none and are not checked.

  Raises:
    CheckpointKindError: the recorded head differs from ``head``.
  """
  if kinds.checkpoint_kind(path, role) != "exported":
    return
  recorded = exported.read_manifest(path).get("source", {}).get(import_hf.RETRIEVER_HEAD_RECORD)
  if recorded is not None and recorded != head:
    raise CheckpointKindError(
        f"{fileio.join(path, exported.MANIFEST)}: field source.{import_hf.RETRIEVER_HEAD_RECORD}"
        f" is {recorded} (the source config.json's MaxSim head), but {role} is scored with head "
        f"{head}: set Teacher.maxsim_head = {recorded}")

