"""T5.1.1 / mT5 encoder-decoder in flax.linen.

Parameter tree (``L``/``Ld`` encoder/decoder layers; ``layers_i`` becomes one ``layers`` tree
with a leading ``layers`` axis when ``scan_layers``)::

  token_embedder/embedding                        [V, D]        vocab, embed
  encoder/relpos_bias/rel_embedding               [H, buckets]  heads, relpos_buckets
  encoder/layers_i/pre_attention_layer_norm/scale [D]
  encoder/layers_i/attention/{query,key,value}    [D, H, Dk]    embed, heads, kv
  encoder/layers_i/attention/out                  [H, Dk, D]    heads, kv, embed
  encoder/layers_i/pre_mlp_layer_norm/scale       [D]
  encoder/layers_i/mlp/{wi_0,wi_1}                [D, F]        embed, mlp
  encoder/layers_i/mlp/wo                         [F, D]        mlp, embed
  encoder/encoder_norm/scale                      [D]
  decoder/relpos_bias/rel_embedding               [H, buckets]
  decoder/layers_i/{pre_self_attention_layer_norm, self_attention,
                    pre_cross_attention_layer_norm, encoder_decoder_attention,
                    pre_mlp_layer_norm, mlp}/...
  decoder/decoder_norm/scale                      [D]
  decoder/logits_dense                            [D, V]        embed, vocab (untied only)
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from clqa_jax import axis_names as ax
from clqa_jax.layers.constraints import activation_axes
from clqa_jax.layers.embedding import Embed
from clqa_jax.layers.normalization import RMSNorm
from clqa_jax.layers.relative_position import RelativePositionBias
from clqa_jax.layers.transformer import DecoderLayer, EncoderLayer
from clqa_jax.models import layer_stack
from clqa_jax.models.cache import DecodingCache
from clqa_jax.models.config import MT5Config, remat_policy


def expand_mask(mask: jnp.ndarray | None, pairwise_mask: jnp.ndarray | None) -> jnp.ndarray:
  """Key-padding mask [..., Lk] or pairwise mask [..., Lq, Lk] -> [..., 1, Lq|1, Lk]."""
  if (mask is None) == (pairwise_mask is None):
    raise ValueError("pass exactly one of mask (key padding) and pairwise_mask")
  if mask is not None:
    return mask.astype(bool)[..., None, None, :]
  return pairwise_mask.astype(bool)[..., None, :, :]


def _cross_bias(memory_bias: jnp.ndarray | None) -> jnp.ndarray | None:
  """A per-slot cross-attention bias [B, S] -> float32 [B, 1, 1, S] (every head and position)."""
  if memory_bias is None:
    return None
  return memory_bias.astype(jnp.float32)[:, None, None, :]


class EncoderStack(nn.Module):
  """Relative-position bias, encoder layers and the final norm, runnable by layer range."""
  config: MT5Config

  def _layer_def(self) -> EncoderLayer:
    return EncoderLayer(self.config, parent=None)

  def setup(self):
    c = self.config
    self.relpos_bias = RelativePositionBias(
        c.num_heads, c.relative_attention_num_buckets, c.relative_attention_max_distance,
        bidirectional=True)

    def init_inputs():
      h = jnp.zeros((1, 1, c.d_model), c.activation_dtype)
      return (h, jnp.zeros((1, c.num_heads, 1, 1)), jnp.ones((1, 1, 1, 1), bool)), {}

    self.layers = layer_stack.create_layer_params(
        self, self._layer_def(), c.num_encoder_layers, c.scan_layers, init_inputs)
    self.encoder_norm = RMSNorm(c.layer_norm_epsilon, c.activation_dtype)
    self.dropout = nn.Dropout(c.dropout_rate)

  def run_layers(self, h: jnp.ndarray, positions: jnp.ndarray,
                 mask: jnp.ndarray | None = None, *, pairwise_mask: jnp.ndarray | None = None,
                 start: int = 0, end: int | None = None,
                 deterministic: bool = True) -> jnp.ndarray:
    """Runs encoder layers [start, end) on the residual stream.

    Args:
      h: [..., L, D] residual stream (embeddings after dropout, for start == 0).
      positions: int [..., L] token positions for the relative bias (leading dims broadcast).
      mask: bool key-padding mask [..., L]; True = a real token.
      pairwise_mask: instead of ``mask``, bool [..., L, L]: row i may attend to column j.
      start, end: layer range (end None = all layers).
      deterministic: disables dropout.
    """
    c = self.config
    end = c.num_encoder_layers if end is None else end
    if not 0 <= start <= end <= c.num_encoder_layers:
      raise ValueError(f"encoder layer range [{start}, {end}) outside [0, "
                       f"{c.num_encoder_layers}]")
    bias = self.relpos_bias(positions, positions)
    mask = expand_mask(mask, pairwise_mask)
    layer_def = self._layer_def()
    rng = None if deterministic else self.make_rng("dropout")

    def step(p, h, _, rng):
      rngs = None if rng is None else {"dropout": rng}
      return layer_def.apply({"params": p}, h, bias, mask, rng is None, rngs=rngs), None

    h, _ = layer_stack.run_layers(step, self.layers, h, start=start, end=end,
                                  scan=c.scan_layers, dropout_rng=rng,
                                  remat_policy=remat_policy(c.remat_policy))
    return h

  def finalize(self, h: jnp.ndarray, deterministic: bool = True) -> jnp.ndarray:
    """Final RMSNorm and dropout: [..., L, D] -> [..., L, D]."""
    h = self.dropout(self.encoder_norm(h), deterministic=deterministic)
    return nn.with_logical_constraint(h, activation_axes(h.ndim, ax.LENGTH, ax.EMBED))

  def normalized_layer_input(self, h: jnp.ndarray, layer: int) -> jnp.ndarray:
    """RMSNorm_layer(h): the normalized input of layer ``layer``'s self-attention."""
    p = layer_stack.layer_params(self.layers, layer, self.config.scan_layers)
    return self._layer_def().apply({"params": p}, h,
                                   method=EncoderLayer.normalized_attention_input)

  def layer_query_key(self, h: jnp.ndarray, layer: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Self-attention query and key states of layer ``layer`` for input h, [..., L, H, Dk]."""
    p = layer_stack.layer_params(self.layers, layer, self.config.scan_layers)
    return self._layer_def().apply({"params": p}, h, method=EncoderLayer.attention_query_key)

  def __call__(self, embedded: jnp.ndarray, mask: jnp.ndarray,
               positions: jnp.ndarray | None = None, deterministic: bool = True):
    """All layers: embedded [..., L, D], mask [..., L] -> encoder outputs [..., L, D]."""
    if positions is None:
      positions = jnp.arange(embedded.shape[-2])[None]
    h = self.dropout(embedded, deterministic=deterministic)
    h = self.run_layers(h, positions, mask, deterministic=deterministic)
    return self.finalize(h, deterministic)


class DecoderStack(nn.Module):
  """Causal relative bias, decoder layers, final norm and (untied) output projection."""
  config: MT5Config

  def _layer_def(self) -> DecoderLayer:
    return DecoderLayer(self.config, parent=None)

  def setup(self):
    c = self.config
    self.relpos_bias = RelativePositionBias(
        c.num_heads, c.relative_attention_num_buckets, c.relative_attention_max_distance,
        bidirectional=False)

    def init_inputs():
      h = jnp.zeros((1, 1, c.d_model), c.activation_dtype)
      mask = jnp.ones((1, 1, 1, 1), bool)
      return (h, jnp.zeros((1, c.num_heads, 1, 1)), mask, mask), {"memory": h}

    self.layers = layer_stack.create_layer_params(
        self, self._layer_def(), c.num_decoder_layers, c.scan_layers, init_inputs)
    self.decoder_norm = RMSNorm(c.layer_norm_epsilon, c.activation_dtype)
    self.dropout = nn.Dropout(c.dropout_rate)
    if not c.tie_word_embeddings:
      self.logits_dense = self.param(
          "logits_dense",
          nn.with_logical_partitioning(nn.initializers.variance_scaling(1.0, "fan_in", "normal"),
                                       (ax.EMBED, ax.VOCAB)),
          (c.d_model, c.vocab_size), jnp.float32)

  def _step(self, first_cross: str | None = None, **kwargs):
    """A ``layer_stack`` step: one layer; its outputs are {"self_cache": (keys, values)} when
    decoding with a cache and {"first_cross": [B, S]} (the head mean of the layer's
    first-position cross-attention, see ``DecoderLayer``) when ``first_cross`` is set."""
    layer_def = self._layer_def()

    def step(p, h, xs, rng):
      rngs = None if rng is None else {"dropout": rng}
      extra = {}
      if xs is not None:
        extra = dict(cross_key_value=(xs["cross_key"], xs["cross_value"]),
                     self_cache=(xs["self_key"], xs["self_value"], xs["index"]))
      h, out = layer_def.apply({"params": p}, h, **kwargs, **extra, first_cross=first_cross,
                               deterministic=rng is None, rngs=rngs)
      outputs = {}
      if "self_cache" in out:
        outputs["self_cache"] = out["self_cache"]
      if first_cross is not None:
        # Reduced over heads here, so the stack keeps [B, S] per layer, never [B, H, T, S].
        outputs["first_cross"] = jnp.mean(out["first_cross"], axis=1)
      return h, outputs

    return step

  def __call__(self, embedded: jnp.ndarray, memory: jnp.ndarray, memory_mask: jnp.ndarray,
               deterministic: bool = True, return_cross_probs: bool = False,
               memory_bias: jnp.ndarray | None = None, first_cross: str | None = None):
    """Teacher-forced decoding.

    Args:
      embedded: [B, T, D] embedded decoder inputs (shifted right).
      memory: [B, S, D] encoder outputs.
      memory_mask: bool [B, S].
      deterministic: disables dropout.
      return_cross_probs: also return the last layer's cross-attention probabilities
        [B, H, T, S] (after dropout).
      memory_bias: float [B, S] added to every layer's and head's cross-attention scores at
        every position (the attention offset), or None.
      first_cross: instead of ``return_cross_probs``, also return the cross-attention at
        decoder position 0 averaged over all layers and heads, [B, S]: "logits" (pre-softmax
        scores including ``memory_bias``, unmasked) or "probs" (after dropout).

    Returns:
      normalized decoder states [B, T, D] (and the probabilities or the first-position
      cross-attention).
    """
    c = self.config
    if return_cross_probs and first_cross is not None:
      raise ValueError("DecoderStack: pass return_cross_probs or first_cross, not both")
    t = embedded.shape[-2]
    positions = jnp.arange(t)
    self_bias = self.relpos_bias(positions[None], positions[None])           # [1, H, T, T]
    self_mask = (positions[None, :] <= positions[:, None])[None, None]        # [1, 1, T, T]
    mmask = memory_mask.astype(bool)[:, None, None, :]
    rng = None if deterministic else self.make_rng("dropout")
    h = self.dropout(embedded, deterministic=deterministic)
    kwargs = dict(self_bias=self_bias, self_mask=self_mask, memory_mask=mmask, memory=memory,
                  memory_bias=_cross_bias(memory_bias))
    last = c.num_decoder_layers - 1
    h, outputs = layer_stack.run_layers(
        self._step(first_cross, **kwargs), self.layers, h, start=0,
        end=last if return_cross_probs else last + 1, scan=c.scan_layers, dropout_rng=rng,
        remat_policy=remat_policy(c.remat_policy))
    if first_cross is not None:
      first = jnp.mean(outputs["first_cross"], axis=0)                       # [B, S]
      h = self.dropout(self.decoder_norm(h), deterministic=deterministic)
      h = nn.with_logical_constraint(h, activation_axes(h.ndim, ax.LENGTH, ax.EMBED))
      return h, first
    probs = None
    if return_cross_probs:
      # The last layer runs on its own so that only its probabilities are kept.
      p = layer_stack.layer_params(self.layers, last, c.scan_layers)
      rngs = None if rng is None else {"dropout": jax.random.fold_in(rng, last)}
      h, extras = self._layer_def().apply({"params": p}, h, **kwargs, deterministic=deterministic,
                                          return_cross_probs=True, rngs=rngs)
      probs = extras["cross_probs"]
    h = self.dropout(self.decoder_norm(h), deterministic=deterministic)
    h = nn.with_logical_constraint(h, activation_axes(h.ndim, ax.LENGTH, ax.EMBED))
    return (h, probs) if return_cross_probs else h

  def logits(self, h: jnp.ndarray) -> jnp.ndarray:
    """Untied output projection: [..., D] -> float32 logits [..., V] (no d^-0.5 rescale)."""
    c = self.config
    logits = jnp.einsum("...d,dv->...v", h.astype(c.activation_dtype),
                        self.logits_dense.astype(c.activation_dtype),
                        preferred_element_type=jnp.float32)
    return nn.with_logical_constraint(logits, activation_axes(logits.ndim, ax.LENGTH, ax.VOCAB))

  def init_cache(self, memory: jnp.ndarray, memory_mask: jnp.ndarray, max_length: int,
                 memory_bias: jnp.ndarray | None = None) -> DecodingCache:
    """A fresh cache: cross keys/values of memory [N, S, D] for every layer, empty self cache,
    and the cross-attention bias [N, S] every step adds (None: no bias)."""
    c = self.config
    layer_def = self._layer_def()

    def cross(p):
      return layer_def.apply({"params": p}, memory, method=DecoderLayer.cross_key_value)

    if c.scan_layers:
      cross_key, cross_value = jax.vmap(cross)(self.layers)
    else:
      kv = [cross(p) for p in self.layers]
      cross_key = jnp.stack([k for k, _ in kv])
      cross_value = jnp.stack([v for _, v in kv])
    n = memory.shape[0]
    shape = (c.num_decoder_layers, n, max_length, c.num_heads, c.d_kv)
    zeros = jnp.zeros(shape, c.activation_dtype)
    return DecodingCache(self_key=zeros, self_value=zeros, cross_key=cross_key,
                         cross_value=cross_value, memory_mask=memory_mask.astype(bool),
                         index=jnp.zeros((), jnp.int32),
                         memory_bias=(None if memory_bias is None
                                      else memory_bias.astype(jnp.float32)))

  def step(self, embedded: jnp.ndarray, cache: DecodingCache) -> tuple[jnp.ndarray,
                                                                         DecodingCache]:
    """One decoding step (no dropout): embedded [N, 1, D] at position ``cache.index``.

    Returns the normalized decoder state [N, 1, D] and the cache advanced by one position.
    """
    c = self.config
    index = cache.index
    key_positions = jnp.arange(cache.max_length)
    self_bias = self.relpos_bias(index[None, None], key_positions[None])     # [1, H, 1, Tmax]
    self_mask = (key_positions <= index)[None, None, None, :]
    mmask = cache.memory_mask[:, None, None, :]
    kwargs = dict(self_bias=self_bias, self_mask=self_mask, memory_mask=mmask,
                  memory_bias=_cross_bias(cache.memory_bias))
    num = c.num_decoder_layers
    layer_inputs = dict(self_key=cache.self_key, self_value=cache.self_value,
                        cross_key=cache.cross_key, cross_value=cache.cross_value,
                        index=jnp.broadcast_to(index, (num,)))
    h, outputs = layer_stack.run_layers(
        self._step(**kwargs), self.layers, embedded, start=0, end=num,
        scan=c.scan_layers, layer_inputs=layer_inputs)
    self_key, self_value = outputs["self_cache"]
    h = self.decoder_norm(h)
    return h, cache.replace(self_key=self_key, self_value=self_value, index=index + 1)



class MT5(nn.Module):
  """mT5 encoder-decoder: ``apply({"params": p}, encoder_input_tokens [B, Le],
  decoder_input_tokens [B, T], enable_dropout=False) -> logits [B, T, V]`` (float32).

  Encoder pad id 0 is masked; the decoder is causal and its inputs are already shifted right
  (starting with ``decoder_start_id`` 0), as in T5X.
  """
  config: MT5Config

  def setup(self):
    c = self.config
    self.token_embedder = Embed(c.vocab_size, c.d_model, c.activation_dtype)
    self.encoder = EncoderStack(c)
    self.decoder = DecoderStack(c)

  def encode(self, encoder_input_tokens: jnp.ndarray, enable_dropout: bool = False):
    """encoder_input_tokens int [B, Le] -> encoder outputs [B, Le, D]."""
    mask = encoder_input_tokens != self.config.pad_id
    return self.encoder(self.token_embedder(encoder_input_tokens), mask,
                        deterministic=not enable_dropout)

  def to_logits(self, h: jnp.ndarray) -> jnp.ndarray:
    """Normalized decoder states [..., D] -> float32 logits [..., V]."""
    if self.config.tie_word_embeddings:
      # Original T5 ties the head and rescales by d^-0.5; mT5 (untied) does not.
      return self.token_embedder.attend(h * (self.config.d_model ** -0.5))
    return self.decoder.logits(h)

  def decode(self, encoded: jnp.ndarray, encoder_mask: jnp.ndarray,
             decoder_input_tokens: jnp.ndarray, enable_dropout: bool = False,
             return_cross_probs: bool = False):
    """Teacher-forced decoder.

    Args:
      encoded: [B, S, D] encoder outputs.
      encoder_mask: bool [B, S], True on real tokens.
      decoder_input_tokens: int [B, T], shifted right.
      enable_dropout: training mode.
      return_cross_probs: also return the last decoder layer's cross-attention probabilities
        [B, H, T, S].

    Returns:
      logits [B, T, V] (float32), and the probabilities when asked.
    """
    out = self.decoder(self.token_embedder(decoder_input_tokens), encoded, encoder_mask,
                       deterministic=not enable_dropout, return_cross_probs=return_cross_probs)
    if return_cross_probs:
      h, probs = out
      return self.to_logits(h), probs
    return self.to_logits(out)

  def __call__(self, encoder_input_tokens: jnp.ndarray, decoder_input_tokens: jnp.ndarray,
               enable_dropout: bool = False) -> jnp.ndarray:
    encoded = self.encode(encoder_input_tokens, enable_dropout)
    return self.decode(encoded, encoder_input_tokens != self.config.pad_id,
                       decoder_input_tokens, enable_dropout)

  def init_decoding_cache(self, encoded: jnp.ndarray, encoder_mask: jnp.ndarray,
                          max_length: int) -> DecodingCache:
    """Cache for decoding ``max_length`` tokens against encoded [N, S, D] / mask [N, S]."""
    return self.decoder.init_cache(encoded, encoder_mask, max_length)

  def decode_step(self, cache: DecodingCache, tokens: jnp.ndarray):
    """tokens int [N] (the previous output, or the start id) -> (logits [N, V], cache)."""
    h, cache = self.decoder.step(self.token_embedder(tokens[:, None]), cache)
    return self.to_logits(h[:, 0]), cache
