"""Encoder functions for encode_corpus from a model's ``embed_passages`` / ``embed_queries``.

    encode_fn = passage_encode_fn(UnifiedModel.from_config(config), rules)
    encode_corpus(encode_fn, chunks, out_dir, params=params, ...)

The index package depends only on the two pure methods of the model contract
(``clqa_jax.models.model_api.UnifiedModel``: ``embed_passages(params, passage_tokens [N, Lp])
-> [N, D]``, ``embed_queries(params, query_tokens [N, Lq]) -> [N, D]``), not on a particular
model.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax

EncodeFn = Callable[[Any, jax.Array], jax.Array]


def _method_fn(model: Any, method: str,
               logical_axis_rules: Sequence[tuple[str, Any]] | None) -> EncodeFn:
  embed = getattr(model, method, None)
  if not callable(embed):
    raise TypeError(f"{type(model).__name__} has no method {method!r}")

  def encode_fn(params: Any, tokens: jax.Array) -> jax.Array:
    # The model's logical activation constraints resolve against these rules.
    with nn.logical_axis_rules(tuple(logical_axis_rules or ())):
      return embed(params, tokens)

  encode_fn.__name__ = f"{type(model).__name__}.{method}"
  return encode_fn


def passage_encode_fn(model: Any,
                      logical_axis_rules: Sequence[tuple[str, Any]] | None = None) -> EncodeFn:
  """(params, passage_tokens int32 [N, Lp]) -> passage vectors [N, D], from ``model``'s
  ``embed_passages`` (a ``UnifiedModel``)."""
  return _method_fn(model, "embed_passages", logical_axis_rules)


def query_encode_fn(model: Any,
                    logical_axis_rules: Sequence[tuple[str, Any]] | None = None) -> EncodeFn:
  """(params, query_tokens int32 [N, Lq]) -> query vectors [N, D], from ``model``'s
  ``embed_queries`` (a ``UnifiedModel``)."""
  return _method_fn(model, "embed_queries", logical_axis_rules)
