"""The decoder's key/value cache for incremental decoding."""
from __future__ import annotations

from typing import Callable

import flax.struct
import jax.numpy as jnp


@flax.struct.dataclass
class DecodingCache:
  """Per-layer self-attention and (precomputed) cross-attention keys/values.

  self_key, self_value:   [Ld, N, Tmax, H, Dk]   filled up to ``index``
  cross_key, cross_value: [Ld, N, S, H, Dk]      projections of the encoder memory
  memory_mask:            bool [N, S]            True on real memory tokens
  index:                  int32 []               the next decoder position
  memory_bias:            float32 [N, S] or None added to every layer's cross-attention
                                                 scores (the attention offset)
  N is the batch (times beams during beam search).
  """
  self_key: jnp.ndarray
  self_value: jnp.ndarray
  cross_key: jnp.ndarray
  cross_value: jnp.ndarray
  memory_mask: jnp.ndarray
  index: jnp.ndarray
  memory_bias: jnp.ndarray | None = None

  def map_batch(self, fn: Callable[[jnp.ndarray, int], jnp.ndarray]) -> "DecodingCache":
    """Applies fn(array, batch_axis) to every batch-bearing array (for beam expansion/gather)."""
    return self.replace(
        self_key=fn(self.self_key, 1), self_value=fn(self.self_value, 1),
        cross_key=fn(self.cross_key, 1), cross_value=fn(self.cross_value, 1),
        memory_mask=fn(self.memory_mask, 0),
        memory_bias=None if self.memory_bias is None else fn(self.memory_bias, 0))

  def map_self_batch(self, fn: Callable[[jnp.ndarray, int], jnp.ndarray]) -> "DecodingCache":
    """Like ``map_batch`` for the self-attention cache only. Beam reordering needs no more:
    the cross keys/values, memory mask and bias are the same for every beam of an example."""
    return self.replace(self_key=fn(self.self_key, 1), self_value=fn(self.self_value, 1))

  @property
  def max_length(self) -> int:
    return self.self_key.shape[2]
