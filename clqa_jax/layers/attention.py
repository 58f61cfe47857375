"""T5 multi-head attention: no biases, no 1/sqrt(d) score scaling, additive position bias.

Projections are ``query``/``key``/``value`` [D, H, Dk] (axes embed, heads, kv) and ``out``
[H, Dk, D]. Softmax runs in float32. The attention probabilities (after dropout, as Hugging
Face's ``T5Attention`` returns them) can be returned, which the reader-relevance target needs.
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from clqa_jax import axis_names as ax
from clqa_jax.layers.constraints import activation_axes
from clqa_jax.layers.mlp import kernel_init

NEG_INF = float(jnp.finfo(jnp.float32).min)


def attention_logits(query: jnp.ndarray, key: jnp.ndarray,
                     bias: jnp.ndarray | None) -> jnp.ndarray:
  """The pre-softmax scores q.k + bias (no mask), float32 [..., H, Lq, Lk].

  Args:
    query: [..., Lq, H, Dk].
    key: [..., Lk, H, Dk].
    bias: broadcastable to [..., H, Lq, Lk], or None.
  """
  scores = jnp.einsum("...qhd,...khd->...hqk", query, key, preferred_element_type=jnp.float32)
  if bias is not None:
    scores = scores + bias.astype(jnp.float32)
  return scores


def masked_softmax(scores: jnp.ndarray, mask: jnp.ndarray | None) -> jnp.ndarray:
  """Softmax over the last axis with masked scores set to the float32 minimum (as HF's
  extended mask). A fully masked row gets uniform probabilities (only padding rows are fully
  masked; they are never read)."""
  if mask is not None:
    scores = jnp.where(mask, scores, NEG_INF)
  return nn.softmax(scores, axis=-1)


def attention_probabilities(query: jnp.ndarray, key: jnp.ndarray, bias: jnp.ndarray | None,
                            mask: jnp.ndarray | None) -> jnp.ndarray:
  """Softmax(q.k + bias) over the unmasked keys -> float32 probabilities [..., H, Lq, Lk].

  Shapes as ``attention_logits``; mask bool, broadcastable to [..., H, Lq, Lk], False = not
  attended (see ``masked_softmax``).
  """
  return masked_softmax(attention_logits(query, key, bias), mask)


class MultiHeadAttention(nn.Module):
  """Attention with a separately callable key/value projection (for key/value caching)."""
  d_model: int
  num_heads: int
  head_dim: int
  dropout_rate: float = 0.0
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    hd = (self.num_heads, self.head_dim)

    def kernel(name, shape, axes, scale=1.0):
      return self.param(name, nn.with_logical_partitioning(kernel_init(scale), axes), shape,
                        jnp.float32)

    # T5X folds the 1/sqrt(Dk) that T5 omits from the scores into the query initialiser.
    self.query = kernel("query", (self.d_model, *hd), (ax.EMBED, ax.HEADS, ax.KV),
                        1.0 / self.head_dim)
    self.key = kernel("key", (self.d_model, *hd), (ax.EMBED, ax.HEADS, ax.KV))
    self.value = kernel("value", (self.d_model, *hd), (ax.EMBED, ax.HEADS, ax.KV))
    self.out = kernel("out", (*hd, self.d_model), (ax.HEADS, ax.KV, ax.EMBED))
    self.dropout = nn.Dropout(self.dropout_rate)

  def _project(self, x: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    """x [..., L, D] @ kernel [D, H, Dk] -> [..., L, H, Dk] in the activation dtype."""
    y = jnp.einsum("...ld,dhk->...lhk", x.astype(self.dtype), kernel.astype(self.dtype))
    return nn.with_logical_constraint(y, activation_axes(y.ndim, ax.LENGTH, ax.HEADS, ax.KV))

  def project_query(self, x: jnp.ndarray) -> jnp.ndarray:
    """x [..., L, D] -> queries [..., L, H, Dk]."""
    return self._project(x, self.query)

  def project_key_value(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """x [..., L, D] -> (keys, values), each [..., L, H, Dk]."""
    return self._project(x, self.key), self._project(x, self.value)

  def __call__(self, inputs_q: jnp.ndarray, inputs_kv: jnp.ndarray | None = None, *,
               bias: jnp.ndarray | None = None, mask: jnp.ndarray | None = None,
               key_value: tuple[jnp.ndarray, jnp.ndarray] | None = None,
               deterministic: bool = True, return_probs: bool = False,
               return_first_logits: bool = False):
    """Attends from ``inputs_q`` [..., Lq, D] to ``inputs_kv`` [..., Lk, D].

    ``key_value`` (projected keys and values [..., Lk, H, Dk], e.g. from a cache) replaces the
    projection of ``inputs_kv``. Returns outputs [..., Lq, D] alone, or a tuple of the outputs
    followed by what was asked, in this order: the float32 probabilities [..., H, Lq, Lk]
    (after dropout) when ``return_probs``; the first query position's pre-softmax scores
    q.k + bias [..., H, Lk] (unmasked) when ``return_first_logits``.
    """
    query = self.project_query(inputs_q)
    if key_value is None:
      key_value = self.project_key_value(inputs_kv)
    key, value = key_value
    logits = attention_logits(query, key, bias)
    probs = masked_softmax(logits, mask)
    probs = self.dropout(probs, deterministic=deterministic)
    context = jnp.einsum("...hqk,...khd->...qhd", probs.astype(self.dtype), value)
    context = nn.with_logical_constraint(
        context, activation_axes(context.ndim, ax.LENGTH, ax.HEADS, ax.KV))
    out = jnp.einsum("...qhd,hdm->...qm", context, self.out.astype(self.dtype))
    extras = ((probs,) if return_probs else ()) + (
        (logits[..., 0, :],) if return_first_logits else ())
    return (out, *extras) if extras else out
