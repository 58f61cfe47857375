"""Pre-norm T5.1.1 encoder and decoder layers (self-attention, [cross-attention], gated MLP)."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from clqa_jax import axis_names as ax
from clqa_jax.layers.attention import MultiHeadAttention
from clqa_jax.layers.constraints import activation_axes
from clqa_jax.layers.mlp import GatedGeluMlp
from clqa_jax.layers.normalization import RMSNorm


def _constrain(h: jnp.ndarray) -> jnp.ndarray:
  return nn.with_logical_constraint(h, activation_axes(h.ndim, ax.LENGTH, ax.EMBED))


class EncoderLayer(nn.Module):
  """h + Attn(RMSNorm(h)), then + MLP(RMSNorm(.)); dropout on each residual branch."""
  config: Any  # MT5Config

  def setup(self):
    c = self.config
    dtype = c.activation_dtype
    self.pre_attention_layer_norm = RMSNorm(c.layer_norm_epsilon, dtype)
    self.attention = MultiHeadAttention(c.d_model, c.num_heads, c.d_kv, c.dropout_rate, dtype)
    self.pre_mlp_layer_norm = RMSNorm(c.layer_norm_epsilon, dtype)
    self.mlp = GatedGeluMlp(c.d_ff, c.dropout_rate, dtype)
    self.dropout = nn.Dropout(c.dropout_rate)

  def normalized_attention_input(self, h: jnp.ndarray) -> jnp.ndarray:
    """RMSNorm of the self-attention input, h [..., L, D] -> [..., L, D]."""
    return self.pre_attention_layer_norm(h)

  def attention_query_key(self, h: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The self-attention's query and key states of h [..., L, D], each [..., L, H, Dk]."""
    x = self.pre_attention_layer_norm(h)
    return self.attention.project_query(x), self.attention.project_key_value(x)[0]

  def __call__(self, h: jnp.ndarray, bias: jnp.ndarray, mask: jnp.ndarray,
               deterministic: bool = True) -> jnp.ndarray:
    """h [..., L, D]; bias [..., H, L, L] (broadcastable); mask bool, broadcastable likewise."""
    x = self.pre_attention_layer_norm(h)
    y = self.attention(x, x, bias=bias, mask=mask, deterministic=deterministic)
    h = _constrain(h + self.dropout(y, deterministic=deterministic))
    y = self.mlp(self.pre_mlp_layer_norm(h), deterministic=deterministic)
    return _constrain(h + self.dropout(y, deterministic=deterministic))


class DecoderLayer(nn.Module):
  """Causal self-attention, cross-attention to the encoder memory, gated MLP (all pre-norm)."""
  config: Any  # MT5Config

  def setup(self):
    c = self.config
    dtype = c.activation_dtype
    self.pre_self_attention_layer_norm = RMSNorm(c.layer_norm_epsilon, dtype)
    self.self_attention = MultiHeadAttention(c.d_model, c.num_heads, c.d_kv, c.dropout_rate,
                                             dtype)
    self.pre_cross_attention_layer_norm = RMSNorm(c.layer_norm_epsilon, dtype)
    self.encoder_decoder_attention = MultiHeadAttention(c.d_model, c.num_heads, c.d_kv,
                                                        c.dropout_rate, dtype)
    self.pre_mlp_layer_norm = RMSNorm(c.layer_norm_epsilon, dtype)
    self.mlp = GatedGeluMlp(c.d_ff, c.dropout_rate, dtype)
    self.dropout = nn.Dropout(c.dropout_rate)

  def cross_key_value(self, memory: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Projected cross-attention keys/values of memory [B, S, D], each [B, S, H, Dk]."""
    return self.encoder_decoder_attention.project_key_value(memory)

  def __call__(self, h: jnp.ndarray, self_bias: jnp.ndarray, self_mask: jnp.ndarray,
               memory_mask: jnp.ndarray, *, memory: jnp.ndarray | None = None,
               cross_key_value: tuple[jnp.ndarray, jnp.ndarray] | None = None,
               self_cache: tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray] | None = None,
               memory_bias: jnp.ndarray | None = None, deterministic: bool = True,
               return_cross_probs: bool = False, first_cross: str | None = None):
    """One decoder layer.

    Args:
      h: [B, T, D] decoder states.
      self_bias: [B|1, H, T, Tk] causal relative-position bias.
      self_mask: bool broadcastable to [B, H, T, Tk].
      memory_mask: bool broadcastable to [B, H, T, S].
      memory: encoder outputs [B, S, D] (or pass ``cross_key_value``).
      cross_key_value: precomputed cross keys/values, each [B, S, H, Dk].
      self_cache: (keys [B, Tmax, H, Dk], values [B, Tmax, H, Dk], index []) of the earlier
        steps; this step's T entries are written at ``index`` and attention spans the cache.
      memory_bias: float broadcastable to [B, H, T, S], added to the cross-attention's
        pre-softmax scores (the attention offset), or None.
      deterministic: disables dropout.
      return_cross_probs: also return cross-attention probabilities [B, H, T, S].
      first_cross: also return the cross-attention at the first decoder position, [B, H, S]:
        "logits" (pre-softmax scores, bias included, unmasked) or "probs" (after dropout).

    Returns:
      (h [B, T, D], extras) with extras["cross_probs"], extras["first_cross"] and
      extras["self_cache"] (updated (keys, values)) when requested/used.
    """
    if first_cross not in (None, "logits", "probs"):
      raise ValueError(f"DecoderLayer: first_cross must be None, 'logits' or 'probs', got "
                       f"{first_cross!r}")
    extras = {}
    x = self.pre_self_attention_layer_norm(h)
    key_value = None
    if self_cache is not None:
      cache_k, cache_v, index = self_cache
      new_k, new_v = self.self_attention.project_key_value(x)
      zero = jnp.zeros((), jnp.int32)
      start = (zero, index.astype(jnp.int32), zero, zero)
      key_value = (jax.lax.dynamic_update_slice(cache_k, new_k.astype(cache_k.dtype), start),
                   jax.lax.dynamic_update_slice(cache_v, new_v.astype(cache_v.dtype), start))
      extras["self_cache"] = key_value
    y = self.self_attention(x, x, bias=self_bias, mask=self_mask, key_value=key_value,
                            deterministic=deterministic)
    h = _constrain(h + self.dropout(y, deterministic=deterministic))
    x = self.pre_cross_attention_layer_norm(h)
    want_probs = return_cross_probs or first_cross == "probs"
    out = self.encoder_decoder_attention(x, memory, bias=memory_bias, mask=memory_mask,
                                         key_value=cross_key_value, deterministic=deterministic,
                                         return_probs=want_probs,
                                         return_first_logits=first_cross == "logits")
    if want_probs or first_cross == "logits":
      y, *rest = out
      probs = rest.pop(0) if want_probs else None
      if return_cross_probs:
        extras["cross_probs"] = probs
      if first_cross == "probs":
        extras["first_cross"] = probs[..., 0, :]
      elif first_cross == "logits":
        extras["first_cross"] = rest.pop(0)
    else:
      y = out
    h = _constrain(h + self.dropout(y, deterministic=deterministic))
    y = self.mlp(self.pre_mlp_layer_norm(h), deterministic=deterministic)
    h = _constrain(h + self.dropout(y, deterministic=deterministic))
    return h, extras
