"""Splitting a global batch into microbatches without unbalancing the data-parallel devices.

Microbatch m takes rows m, m+M, m+2M, ... (a [B] -> [B/M, M] reshape), so when the batch axis is
sharded over devices each device contributes its own rows to every microbatch (as long as the
per-device batch is divisible by M) and no rows move between devices.
"""
from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp


def split(batch: Mapping[str, jax.Array], num_microbatches: int) -> dict[str, jax.Array]:
  """[B, ...] -> [M, B/M, ...] per feature (rows interleaved, see module docstring)."""
  out = {}
  for name, x in batch.items():
    b = x.shape[0]
    if b % num_microbatches:
      raise ValueError(f"batch size {b} of feature {name!r} is not divisible by "
                       f"num_microbatches={num_microbatches}")
    x = x.reshape((b // num_microbatches, num_microbatches) + x.shape[1:])
    out[name] = jnp.swapaxes(x, 0, 1)
  return out


def num_rows(batch: Mapping[str, jax.Array]) -> int:
  """The leading (question, or topic-group) dimension every feature of ``batch`` shares."""
  sizes = {name: x.shape[0] for name, x in batch.items()}
  if len(set(sizes.values())) != 1:
    raise ValueError(f"the features of a batch must share their leading dimension, got {sizes}")
  return next(iter(sizes.values()))


def merge(x: jax.Array) -> jax.Array:
  """[M, b, ...] -> [M*b, ...] in microbatch-major order (the order GradCache scores in)."""
  return x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:])


def unmerge(x: jax.Array, num_microbatches: int) -> jax.Array:
  """Inverse of ``merge``."""
  return x.reshape((num_microbatches, x.shape[0] // num_microbatches) + x.shape[1:])


def check_divisible(global_batch: int, num_microbatches: int, data_parallel: int = 1) -> None:
  """Raises unless every device's share of the batch splits evenly into the microbatches."""
  if global_batch % (num_microbatches * data_parallel):
    raise ValueError(
        f"global batch {global_batch} must be divisible by num_microbatches "
        f"({num_microbatches}) x data-parallel devices ({data_parallel})")


def zeros_like_tree(tree):
  return jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), tree)
