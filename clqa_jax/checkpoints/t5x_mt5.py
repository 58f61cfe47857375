"""Import T5X mT5 checkpoints (e.g. gs://t5-data/pretrained_models/t5x/mt5_large/checkpoint_1000000)
into our parameters.

T5X's T5.1.1/mT5 network names its parameters as we do, but every dense layer is a 2-D
``.../kernel`` (attention projections flattened over heads: query [D, H*Dk], out [H*Dk, D]).
Names are mapped by the table ``T5X_MT5_RULES``; anything the table does not expect, or expects
but does not find, is an error listing the names. A stack is stored unscanned
(``encoder/layers_0/...``) or scanned (``encoder/layers/...``, the layers stacked on axis
``scan_axis``: T5X's ``param_scan_axis``, 1).

A T5X checkpoint holds no config: the dimensions come from the array shapes (vocabulary and
d_model from the embedding, heads and buckets from ``relpos_bias``, d_kv from the query kernel,
d_ff from ``wi_0``, the layer counts, tied embeddings when there is no ``logits_dense``); the
activation is mT5's gated GELU, and ``relative_attention_max_distance`` (not stored) is mT5's
128 unless overridden.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np

from clqa_jax.checkpoints import param_mapping as pm
from clqa_jax.checkpoints import t5x_reader
from clqa_jax.checkpoints.hf_mt5 import CheckpointFormatError, add_new_retriever_head
from clqa_jax.models.config import MT5Config

T5X_SCAN_AXIS = 1  # T5X's param_scan_axis: where a scanned stack puts its layer axis
STACKS = ("encoder", "decoder")


@dataclasses.dataclass(frozen=True)
class T5XRule:
  t5x: str         # a path under ``target``, with an optional {i} (a layer index)
  ours: str        # our (unscanned) path, with the same {i}
  layout: str      # a key of T5X_LAYOUTS


# layout -> the stored T5X shape of a parameter of our shape; the stored array is reshaped
# into ours (C order: T5X splits the flat heads axis as [H, Dk], as we store it).
T5X_LAYOUTS = {
    "same": lambda shape: tuple(shape),
    "heads_in": lambda shape: (shape[0], shape[1] * shape[2]),    # [D, H, Dk] <- [D, H*Dk]
    "heads_out": lambda shape: (shape[0] * shape[1], shape[2]),   # [H, Dk, D] <- [H*Dk, D]
}


def _attention_rules(prefix: str) -> list[T5XRule]:
  return [T5XRule(f"{prefix}/{p}/kernel", f"{prefix}/{p}", layout) for p, layout in (
      ("query", "heads_in"), ("key", "heads_in"), ("value", "heads_in"), ("out", "heads_out"))]


def _mlp_rules(prefix: str) -> list[T5XRule]:
  return [T5XRule(f"{prefix}/mlp/{n}/kernel", f"{prefix}/mlp/{n}", "same")
          for n in ("wi_0", "wi_1", "wo")]


def _norm_rule(path: str) -> T5XRule:
  return T5XRule(f"{path}/scale", f"{path}/scale", "same")


LOGITS_RULE = T5XRule("decoder/logits_dense/kernel", "decoder/logits_dense", "same")
T5X_MT5_RULES: list[T5XRule] = [
    T5XRule("token_embedder/embedding", "token_embedder/embedding", "same"),
    T5XRule("encoder/relpos_bias/rel_embedding", "encoder/relpos_bias/rel_embedding", "same"),
    _norm_rule("encoder/layers_{i}/pre_attention_layer_norm"),
    *_attention_rules("encoder/layers_{i}/attention"),
    _norm_rule("encoder/layers_{i}/pre_mlp_layer_norm"),
    *_mlp_rules("encoder/layers_{i}"),
    _norm_rule("encoder/encoder_norm"),
    T5XRule("decoder/relpos_bias/rel_embedding", "decoder/relpos_bias/rel_embedding", "same"),
    _norm_rule("decoder/layers_{i}/pre_self_attention_layer_norm"),
    *_attention_rules("decoder/layers_{i}/self_attention"),
    _norm_rule("decoder/layers_{i}/pre_cross_attention_layer_norm"),
    *_attention_rules("decoder/layers_{i}/encoder_decoder_attention"),
    _norm_rule("decoder/layers_{i}/pre_mlp_layer_norm"),
    *_mlp_rules("decoder/layers_{i}"),
    _norm_rule("decoder/decoder_norm"),
    LOGITS_RULE,
]

_LAYER_NAME = re.compile(r"^(encoder|decoder)/layers_(\d+)/")
_FLOAT_DTYPES = ("float32", "bfloat16", "float16", "float64")


def t5x_rules(config: MT5Config) -> list[T5XRule]:
  """The rules for a config (the untied head only when the embeddings are untied)."""
  return [r for r in T5X_MT5_RULES if r != LOGITS_RULE or not config.tie_word_embeddings]


def scanned_stacks(index: dict[str, Any]) -> tuple[str, ...]:
  """The stacks stored scanned (``encoder/layers/...``) in a T5X target index."""
  return tuple(s for s in STACKS if any(n.startswith(f"{s}/layers/") for n in index))


def _shape(index: dict[str, t5x_reader.T5XArray], name: str, where: str) -> tuple[int, ...]:
  if name not in index:
    shown = ", ".join(sorted(index)[:8]) + (", ..." if len(index) > 8 else "")
    raise CheckpointFormatError(f"{where}: target/{name} is missing, so this is no T5X mT5 "
                                f"checkpoint (target holds {shown or 'nothing'})")
  return index[name].shape


def _layer_shape(index, stack: str, suffix: str, scanned: tuple[str, ...], scan_axis: int,
                 where: str) -> tuple[int, ...]:
  """The per-layer shape of ``{stack}/layers_0/{suffix}`` (the scan axis removed)."""
  if stack not in scanned:
    return _shape(index, f"{stack}/layers_0/{suffix}", where)
  shape = list(_shape(index, f"{stack}/layers/{suffix}", where))
  del shape[scan_axis]
  return tuple(shape)


def _num_layers(index, stack: str, scanned: tuple[str, ...], scan_axis: int,
                where: str) -> int:
  if stack in scanned:
    return _shape(index, f"{stack}/layers/pre_mlp_layer_norm/scale", where)[scan_axis]
  indices = {int(m.group(2)) for n in index if (m := _LAYER_NAME.match(n)) and m.group(1) == stack}
  if not indices:
    raise CheckpointFormatError(f"{where}: no {stack}/layers_N/ or {stack}/layers/ parameters")
  return max(indices) + 1  # a gap is reported as missing names by the mapping


def config_from_t5x(index: dict[str, t5x_reader.T5XArray], where: str = "checkpoint",
                    scan_axis: int = T5X_SCAN_AXIS, **overrides: Any) -> MT5Config:
  """The MT5Config of a T5X mT5 target index, from its shapes (see the module docstring)."""
  scanned = scanned_stacks(index)
  vocab_size, d_model = _shape(index, "token_embedder/embedding", where)
  num_heads, num_buckets = _shape(index, "encoder/relpos_bias/rel_embedding", where)
  query = _layer_shape(index, "encoder", "attention/query/kernel", scanned, scan_axis, where)
  if f"encoder/{'layers' if 'encoder' in scanned else 'layers_0'}/mlp/wi/kernel" in index:
    raise CheckpointFormatError(f"{where}: the MLP has a single 'wi' (T5 1.0, ReLU); only the "
                                "gated 'wi_0'/'wi_1' of T5.1.1/mT5 is supported")
  d_ff = _layer_shape(index, "encoder", "mlp/wi_0/kernel", scanned, scan_axis, where)[1]
  if query[1] % num_heads:
    raise CheckpointFormatError(f"{where}: encoder query kernel {query} does not split into "
                                f"{num_heads} heads (relpos_bias has {num_heads})")
  fields = dict(
      vocab_size=vocab_size, d_model=d_model, d_kv=query[1] // num_heads, d_ff=d_ff,
      num_heads=num_heads, relative_attention_num_buckets=num_buckets,
      num_encoder_layers=_num_layers(index, "encoder", scanned, scan_axis, where),
      num_decoder_layers=_num_layers(index, "decoder", scanned, scan_axis, where),
      tie_word_embeddings=LOGITS_RULE.t5x not in index)
  fields.update(overrides)
  try:
    return MT5Config(**fields)
  except ValueError as e:
    raise CheckpointFormatError(f"{where}: {e}") from e


@dataclasses.dataclass(frozen=True)
class _Source:
  name: str            # the stored T5X name
  layer: int | None    # the index along the scan axis, for a scanned stack
  layout: str


def _sources(config: MT5Config, scanned: tuple[str, ...]) -> dict[str, _Source]:
  """{our path: where it is stored} for every parameter of ``config``."""
  out = {}
  for rule in t5x_rules(config):
    if "{i}" not in rule.t5x:
      out[rule.ours] = _Source(rule.t5x, None, rule.layout)
      continue
    stack = rule.t5x.split("/")[0]
    num = config.num_encoder_layers if stack == "encoder" else config.num_decoder_layers
    for i in range(num):
      if stack in scanned:
        out[rule.ours.format(i=i)] = _Source(rule.t5x.replace("layers_{i}", "layers"), i,
                                             rule.layout)
      else:
        out[rule.ours.format(i=i)] = _Source(rule.t5x.format(i=i), None, rule.layout)
  return out


def t5x_to_tree(index: dict[str, t5x_reader.T5XArray], config: MT5Config,
                scan_axis: int = T5X_SCAN_AXIS, where: str = "checkpoint") -> dict[str, Any]:
  """Maps a T5X target index to our nested (unscanned) float32 param tree, reading each
  stored array once.

  Raises:
    CheckpointMappingError: listing every missing and every unexpected T5X name, and every
      array whose shape does not fit ``config`` (all checked before any array is read).
  """
  from clqa_jax.checkpoints.exported import abstract_params

  scanned = scanned_stacks(index)
  ours = pm.flatten(abstract_params(config.replace(scan_layers=False)))
  sources = _sources(config, scanned)
  stored_shapes: dict[str, tuple[int, ...]] = {}
  for path, src in sources.items():
    shape = list(T5X_LAYOUTS[src.layout](ours[path].shape))
    if src.layer is not None:
      shape.insert(scan_axis, config.num_encoder_layers if src.name.startswith("encoder/")
                   else config.num_decoder_layers)
    stored_shapes[src.name] = tuple(shape)
  missing = sorted(set(stored_shapes) - set(index))
  unexpected = sorted(set(index) - set(stored_shapes))
  wrong = [f"{n}: stored {index[n].shape}, this config needs {s}"
           for n, s in sorted(stored_shapes.items()) if n in index and index[n].shape != s]
  if missing or unexpected or wrong:
    raise pm.mismatch_error(f"{where}: T5X parameters do not match the mT5 layout for this "
                            "config", missing, unexpected,
                            [f"wrong shape ({len(wrong)}): " + "; ".join(wrong)] if wrong else [])
  by_name: dict[str, list[str]] = {}
  for path, src in sources.items():
    by_name.setdefault(src.name, []).append(path)
  flat = {}
  for name, paths in by_name.items():
    stored = t5x_reader.read_array(index[name])
    if stored.dtype.name not in _FLOAT_DTYPES:
      raise CheckpointFormatError(f"{where}: target/{name} has dtype {stored.dtype.name}; "
                                  f"expected one of {_FLOAT_DTYPES}")
    for path in paths:
      src = sources[path]
      part = stored if src.layer is None else np.take(stored, src.layer, axis=scan_axis)
      flat[path] = np.ascontiguousarray(part.astype(np.float32).reshape(ours[path].shape))
  return pm.unflatten(flat)


def load_t5x_mt5(path: str, scan_axis: int = T5X_SCAN_AXIS,
                 **config_overrides: Any) -> tuple[MT5Config, dict[str, Any]]:
  """Loads a T5X mT5 checkpoint directory (local or gs://).

  Args:
    path: the ``checkpoint_N`` directory (the ``checkpoint`` file and its arrays).
    scan_axis: the layer axis of scanned stacks.
    **config_overrides: MT5Config fields to change (e.g. scan_layers=True,
      relative_attention_max_distance=...).

  Returns:
    (MT5Config, params): float32 numpy params for ``MT5(config)``, stacked when
    ``config.scan_layers``.
  """
  index = t5x_reader.read_target_index(path)
  config = config_from_t5x(index, path, scan_axis, **config_overrides)
  params = t5x_to_tree(index, config, scan_axis, where=path)
  return config, pm.scan_layers(params) if config.scan_layers else params


def load_t5x_mt5_as_unified(path: str, retriever_layer: int | None = None, seed: int = 0,
                            scan_axis: int = T5X_SCAN_AXIS, **config_overrides: Any):
  """A T5X mT5 checkpoint as the start of a ``UnifiedRetrieverReader``: its retriever head
  is freshly initialised with ``seed`` (``hf_mt5.add_new_retriever_head``).

  Returns:
    (UnifiedConfig, params, initialised): the head's parameter paths.
  """
  mt5, params = load_t5x_mt5(path, scan_axis, **config_overrides)
  return add_new_retriever_head(mt5, params, retriever_layer, seed)
