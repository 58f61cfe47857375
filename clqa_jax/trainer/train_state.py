"""The train state: everything a step changes, as one pytree orbax can save.

Checkpoint *metadata* (data position, retrieval-store version) travels next to it as JSON (see
``clqa_jax.checkpoints.training``), not inside it, because it is host-side bookkeeping, not device arrays.
"""
from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


class TrainState(flax.struct.PyTreeNode):
  """step [] int32; params; opt_state; rng uint32[2] (raw key data, so orbax stores it as-is)."""
  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array

  @classmethod
  def create(cls, params: Any, optimizer: optax.GradientTransformation,
             seed: int = 42) -> "TrainState":
    return cls(step=jnp.zeros((), jnp.int32), params=params,
               opt_state=optimizer.init(params), rng=jax.random.PRNGKey(seed))


