"""KL divergences and token cross-entropy with the reductions the CLASS objectives use.

Every function returns *per-row* values; the objectives decide how rows are averaged
(``batchmean`` = sum over a row's distribution, mean over rows, as torch's
``kl_div(..., reduction='batchmean')``).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

# A finite "minus infinity" for masked logits: keeps softmax/log-softmax free of inf - inf.
NEG_INF = -1e9


def masked_log_softmax(logits: jax.Array, mask: jax.Array | None, axis: int = -1) -> jax.Array:
  """log softmax of ``logits`` with masked-out entries excluded (they get ~NEG_INF)."""
  logits = logits.astype(jnp.float32)
  if mask is not None:
    logits = jnp.where(mask, logits, NEG_INF)
  return jax.nn.log_softmax(logits, axis=axis)


def kl_from_log_probs(target_log_probs: jax.Array, pred_log_probs: jax.Array,
                      mask: jax.Array | None = None, axis: int = -1) -> jax.Array:
  """KL(p_target || p_pred) = sum p_t (log p_t - log p_pred) along ``axis``, per row.

  Entries where ``mask`` is False contribute nothing (their target mass is treated as 0).
  """
  target_probs = jnp.exp(target_log_probs)
  terms = target_probs * (target_log_probs - pred_log_probs)
  if mask is not None:
    terms = jnp.where(mask, terms, 0.0)
  return jnp.sum(terms, axis=axis)


def kl_from_probs(target_probs: jax.Array, pred_log_probs: jax.Array,
                  mask: jax.Array | None = None, axis: int = -1) -> jax.Array:
  """KL(p_target || p_pred) for a target given as probabilities (0 log 0 = 0, as torch's xlogy)."""
  target_probs = target_probs.astype(jnp.float32)
  if mask is not None:
    target_probs = jnp.where(mask, target_probs, 0.0)
  safe = jnp.where(target_probs > 0, target_probs, 1.0)
  terms = jnp.where(target_probs > 0, target_probs * (jnp.log(safe) - pred_log_probs), 0.0)
  return jnp.sum(terms, axis=axis)


def token_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """-log p(target) per position. logits [..., T, V], targets [..., T] -> [..., T]."""
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.take_along_axis(log_probs, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]


def token_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
  """Mean of ``values`` [B, T] over the positions with weight, per row -> [B].

  A row without any weighted position gives 0 (not NaN), so padding questions are harmless.
  """
  weights = weights.astype(jnp.float32)
  total = jnp.sum(values * weights, axis=-1)
  count = jnp.sum(weights, axis=-1)
  return total / jnp.maximum(count, 1.0)


def jensen_shannon_from_log_probs(p_log_probs: jax.Array, q_log_probs: jax.Array,
                                  mask: jax.Array | None = None, axis: int = -1) -> jax.Array:
  """JSD(P, Q) = 1/2 KL(P || M) + 1/2 KL(Q || M), M = (P + Q) / 2, along ``axis``, per row.

  Symmetric, in [0, log 2], and 0 for identical inputs. Both sides get gradient. Entries where
  ``mask`` is False contribute nothing.
  """
  p_log_probs = p_log_probs.astype(jnp.float32)
  q_log_probs = q_log_probs.astype(jnp.float32)
  # log M computed stably from the two log-probabilities.
  m_log_probs = jnp.logaddexp(p_log_probs, q_log_probs) - jnp.log(2.0)
  return 0.5 * (kl_from_log_probs(p_log_probs, m_log_probs, mask, axis)
                + kl_from_log_probs(q_log_probs, m_log_probs, mask, axis))
