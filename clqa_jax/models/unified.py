"""The CLASS unified retriever-reader: one mT5 whose encoder is split at retriever layer R.

* lower stack, layers [0, R): runs once per query and once per passage (a bi-encoder; equal
  to the official "independent mask" over [q; p] pairs because the T5 bias is translation
  invariant);
* retrieval vectors: u = RMSNorm_R^attn(h) (the normalized input of layer R's
  self-attention), masked mean over the segment (passage incl. EOS), ``query_proj`` or
  ``passage_proj`` (d -> d, no bias), then one shared RMSNorm; score = dot product;
* upper stack, layers [R, L): runs on [query; passage] pairs with explicit positions (query
  0..|q|-1, passage |q|..), the query padding in between masked;
* FiD decoder over all K pairs ([B, K * (Lq + Lp)] memory), and the reader relevance
  a(q, p_k) (``UnifiedConfig.reader_relevance_mode``): by default ("class") the last decoder
  layer's cross-attention at decoder position 0, summed over each pair's slots and averaged
  over heads (after dropout in training mode, as the reference);
* optionally the attention offset: lambda * log softmax_k s(q, p_k) (s held constant) added to
  every decoder layer's cross-attention scores of pair k's slots, in training and decoding.

Parameters are the ``MT5`` tree plus ``retriever/{query_proj, passage_proj, layer_norm}``.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import gin
import jax
import jax.numpy as jnp

from clqa_jax import axis_names as ax
from clqa_jax.layers.constraints import activation_axes
from clqa_jax.layers.embedding import Embed
from clqa_jax.layers.normalization import RMSNorm
from clqa_jax.losses import terms
from clqa_jax.models.cache import DecodingCache
from clqa_jax.models.config import MT5Config
from clqa_jax.models.mt5 import DecoderStack, EncoderStack


READER_RELEVANCE_MODES = ("class", "all_layers_probs", "fidkd_logits")
QUERY_ENCODINGS = ("per_pair", "shared")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class UnifiedConfig:
  """The backbone and the retriever layer R (None -> num_encoder_layers // 2).

  ``passage_chunk_size`` (an execution option, like ``MT5Config.remat_policy``): encode a
  question's K passages (both encoder halves) in chunks of this many passages, one chunk at a
  time under rematerialisation, so a training step keeps only one chunk's encoder
  activations; K must then be a multiple of it. None (or >= K) encodes them all at once.

  ``reader_relevance_mode``, what ``reader_relevance`` [N, K] is (all at decoder position 0):
    "class": the last layer's cross-attention probabilities, head mean, summed over the
      pair's slots (CLASS; sums to 1 over K);
    "all_layers_probs": the same averaged over every layer and head (the capstone's forward
      KL, reference/peer-methods.md 1.3 d; sums to 1 over K);
    "fidkd_logits": the pre-softmax cross-attention scores averaged over every layer, head and
      the pair's real tokens (FiD's ``get_crossattention_scores``, 1.3 c; 0 for a padding
      passage).
  ``attention_offset_weight`` (lambda, 1.3 e): None is the plain model; a float adds
  lambda * log softmax_k sg(s(q, p_k)) to every decoder cross-attention score of pair k's slots
  (every layer, head and position; in training and in cached decoding).
  ``query_encoding`` (training only; without dropout both give the same numbers):
  - "per_pair" (the official CLASS code): the query's lower stack runs again in each of its K
    [query; passage] pairs, one dropout sample per pair; the pair's upper stack uses its own
    sample and the query's retrieval vector is the mean of the K per-pair vectors;
  - "shared": the query's lower stack runs once and all K pairs share that sample (K times
    less query compute below R).

  ``retriever_head`` (the official student without ``--de_avg_pooling``): None scores with the
  single-vector head (mean pooling, projection, RMSNorm); a head index h scores with ColBERT
  MaxSim over layer R's self-attention query states (query tokens) and key states (passage
  tokens) of head h. The forward then also returns those token vectors and its
  ``retrieval_scores`` are the MaxSim sums; each objective applies its stage's normalisation.
  """
  mt5: MT5Config = dataclasses.field(default_factory=MT5Config)
  retriever_layer: int | None = None
  passage_chunk_size: int | None = None
  reader_relevance_mode: str = "class"
  attention_offset_weight: float | None = None
  query_encoding: str = "per_pair"
  retriever_head: int | None = None

  def __post_init__(self):
    if not isinstance(self.mt5, MT5Config):
      raise TypeError(f"UnifiedConfig.mt5 must be an MT5Config, got {type(self.mt5).__name__}")
    r = self.retriever_layer
    if r is not None and not 0 <= r < self.mt5.num_encoder_layers:
      raise ValueError(f"UnifiedConfig.retriever_layer={r} must be in [0, "
                       f"{self.mt5.num_encoder_layers})")
    size = self.passage_chunk_size
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
      raise ValueError(f"UnifiedConfig.passage_chunk_size must be None or a positive int, got "
                       f"{size!r}")
    if self.reader_relevance_mode not in READER_RELEVANCE_MODES:
      raise ValueError(f"UnifiedConfig.reader_relevance_mode must be one of "
                       f"{READER_RELEVANCE_MODES}, got {self.reader_relevance_mode!r}")
    weight = self.attention_offset_weight
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float))):
      raise ValueError(f"UnifiedConfig.attention_offset_weight must be None or a number, got "
                       f"{weight!r}")
    head = self.retriever_head
    if head is not None and (not isinstance(head, int) or isinstance(head, bool)
                             or not 0 <= head < self.mt5.num_heads):
      raise ValueError(f"UnifiedConfig.retriever_head={head!r} must be None or a head index in "
                       f"[0, {self.mt5.num_heads})")
    if self.query_encoding not in QUERY_ENCODINGS:
      raise ValueError(f"UnifiedConfig.query_encoding={self.query_encoding!r}; choose one of "
                       f"{QUERY_ENCODINGS}")

  @property
  def resolved_retriever_layer(self) -> int:
    if self.retriever_layer is None:
      return self.mt5.num_encoder_layers // 2
    return self.retriever_layer

  def to_dict(self) -> dict[str, Any]:
    return {"mt5": self.mt5.to_dict(), "retriever_layer": self.retriever_layer,
            "passage_chunk_size": self.passage_chunk_size,
            "reader_relevance_mode": self.reader_relevance_mode,
            "attention_offset_weight": self.attention_offset_weight,
            "query_encoding": self.query_encoding, "retriever_head": self.retriever_head}

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "UnifiedConfig":
    return cls(mt5=MT5Config.from_dict(d["mt5"]), retriever_layer=d.get("retriever_layer"),
               passage_chunk_size=d.get("passage_chunk_size"),
               reader_relevance_mode=d.get("reader_relevance_mode", "class"),
               attention_offset_weight=d.get("attention_offset_weight"),
               query_encoding=d.get("query_encoding", "per_pair"),
               retriever_head=d.get("retriever_head"))


def masked_mean(x: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
  """Mean of x [..., L, D] over positions where mask [..., L] is true, in float32 -> [..., D].

  An all-padding segment gives zeros.
  """
  m = mask.astype(jnp.float32)[..., None]
  total = jnp.sum(x.astype(jnp.float32) * m, axis=-2)
  return total / jnp.maximum(jnp.sum(m, axis=-2), 1.0)


def query_copies(num_query_rows: int, num_passage_rows: int) -> int:
  """C, the queries per question, when [B * C] query rows share [B] passage rows."""
  if num_passage_rows <= 0 or num_query_rows % num_passage_rows:
    raise ValueError(f"{num_query_rows} query rows are not a multiple of the "
                     f"{num_passage_rows} passage rows")
  return num_query_rows // num_passage_rows


def repeat_rows(x: jnp.ndarray, copies: int) -> jnp.ndarray:
  """[B, ...] -> [B * C, ...], row b * C + c = x[b] (question-major; stays on b's device)."""
  if copies == 1:
    return x
  x = jnp.broadcast_to(x[:, None], (x.shape[0], copies) + x.shape[1:])
  x = x.reshape((-1,) + x.shape[2:])
  return nn.with_logical_constraint(x, (ax.BATCH,) + (None,) * (x.ndim - 1))


def attention_offset_bias(retrieval_scores_NK: jnp.ndarray, passage_present_NK: jnp.ndarray,
                          pair_len: int, weight: float) -> jnp.ndarray:
  """The attention offset of each memory slot, float32 [N, K * pair_len].

  Slot j of pair k gets weight * log softmax_k s(q, p_k), the softmax over the real passages
  with the scores held constant (no gradient reaches the retriever through the reader); the
  slots of a padding passage (masked in the attention anyway) get 0.
  """
  scores = jax.lax.stop_gradient(retrieval_scores_NK).astype(jnp.float32)
  scores = jnp.where(passage_present_NK, scores, jnp.finfo(jnp.float32).min)
  offset = jnp.where(passage_present_NK, weight * jax.nn.log_softmax(scores, axis=-1), 0.0)
  n, k = offset.shape
  return jnp.broadcast_to(offset[:, :, None], (n, k, pair_len)).reshape(n, k * pair_len)


def relevance_from_first_cross(first_cross_NS: jnp.ndarray, memory_mask_NS: jnp.ndarray,
                               k: int, mode: str) -> jnp.ndarray:
  """Reader relevance [N, K] from the first-position cross-attention averaged over layers and
  heads [N, K * Lpair] (``DecoderStack`` with ``first_cross``).

  "all_layers_probs" sums each pair's probabilities; "fidkd_logits" averages each pair's
  pre-softmax scores over its real slots (a padding passage, with none, gets 0).
  """
  n = first_cross_NS.shape[0]
  per_pair = first_cross_NS.reshape(n, k, -1)
  if mode == "all_layers_probs":
    return jnp.sum(per_pair, axis=-1)
  if mode != "fidkd_logits":
    raise ValueError(f"relevance_from_first_cross: no first-position mode {mode!r}")
  mask = memory_mask_NS.reshape(n, k, -1)
  total = jnp.sum(jnp.where(mask, per_pair, 0.0), axis=-1)
  return total / jnp.maximum(jnp.sum(mask, axis=-1), 1).astype(jnp.float32)


def own_maxsim_scores(query_states_NQH: jnp.ndarray, query_mask_NQ: jnp.ndarray,
                      passage_states_NKPH: jnp.ndarray, passage_mask_NKP: jnp.ndarray
                      ) -> jnp.ndarray:
  """MaxSim of each query against its own K passages (``terms.maxsim_scores`` per row) -> [N, K].

  sum over real query tokens of the max over real passage tokens; a padding passage gets 0.
  """
  def one(q, qm, p, pm):
    return terms.maxsim_scores(q[None], qm[None], p, pm)[0]
  return jax.vmap(one)(query_states_NQH, query_mask_NQ, passage_states_NKPH, passage_mask_NKP)


class RetrieverHead(nn.Module):
  """``query_proj``/``passage_proj`` [D, D] (embed, retrieval) and a shared ``layer_norm``."""
  d_model: int
  epsilon: float = 1e-6

  def setup(self):
    # PyTorch's default nn.Linear init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as the reference.
    init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
    shape = (self.d_model, self.d_model)
    axes = (ax.EMBED, ax.RETRIEVAL)
    self.query_proj = self.param("query_proj", nn.with_logical_partitioning(init, axes), shape,
                                 jnp.float32)
    self.passage_proj = self.param("passage_proj", nn.with_logical_partitioning(init, axes),
                                   shape, jnp.float32)
    self.layer_norm = RMSNorm(self.epsilon, jnp.float32, axis=ax.RETRIEVAL)

  def __call__(self, pooled: jnp.ndarray, is_query: bool) -> jnp.ndarray:
    """pooled [..., D] (float32) -> retrieval vectors [..., D] (float32)."""
    kernel = self.query_proj if is_query else self.passage_proj
    return self.layer_norm(jnp.einsum("...d,de->...e", pooled, kernel))


class UnifiedRetrieverReader(nn.Module):
  """``apply({"params": p}, query_tokens [N, Lq], passage_tokens [B, K, Lp],
  decoder_input_tokens [N, T], enable_dropout=False, return_reader_relevance=False)`` -> dict
  with logits [N, T, V], query_vectors [N, D], passage_vectors [N, K, D],
  retrieval_scores [N, K] and, when asked, reader_relevance [N, K]. N = B * C: C queries per
  question share its passages (see ``encode_for_reader``); C = 1 is the usual case.
  """
  config: UnifiedConfig

  def setup(self):
    c = self.config.mt5
    self.token_embedder = Embed(c.vocab_size, c.d_model, c.activation_dtype)
    self.encoder = EncoderStack(c)
    self.decoder = DecoderStack(c)
    self.retriever = RetrieverHead(c.d_model, c.layer_norm_epsilon)

  @property
  def _r(self) -> int:
    return self.config.resolved_retriever_layer

  def _lower(self, tokens: jnp.ndarray, deterministic: bool) -> jnp.ndarray:
    """tokens [..., L] -> residual stream after layers [0, R) [..., L, D] (own segment only)."""
    mask = tokens != self.config.mt5.pad_id
    h = self.encoder.dropout(self.token_embedder(tokens), deterministic=deterministic)
    positions = jnp.arange(tokens.shape[-1])[None]
    return self.encoder.run_layers(h, positions, mask, start=0, end=self._r,
                                   deterministic=deterministic)

  def _vectors(self, h: jnp.ndarray, tokens: jnp.ndarray, is_query: bool) -> jnp.ndarray:
    """Retrieval vectors [..., D] from the lower stack's output h [..., L, D]."""
    u = self.encoder.normalized_layer_input(h, self._r)
    pooled = masked_mean(u, tokens != self.config.mt5.pad_id)
    vectors = self.retriever(pooled, is_query)
    return nn.with_logical_constraint(vectors, activation_axes(vectors.ndim, ax.RETRIEVAL))

  def _head_states(self, h: jnp.ndarray, head: int, is_query: bool) -> jnp.ndarray:
    """Layer R's self-attention query (``is_query``) or key states of one head for the lower
    stack's output h [..., L, D] -> [..., L, Dk]."""
    q_states, k_states = self.encoder.layer_query_key(h, self._r)
    return (q_states if is_query else k_states)[..., head, :]

  def encode_queries(self, query_tokens: jnp.ndarray,
                     enable_dropout: bool = False) -> jnp.ndarray:
    """query_tokens [N, Lq] -> query vectors [N, D] (lower stack and head only)."""
    return self._vectors(self._lower(query_tokens, not enable_dropout), query_tokens, True)

  def encode_passages(self, passage_tokens: jnp.ndarray,
                      enable_dropout: bool = False) -> jnp.ndarray:
    """passage_tokens [N, Lp] -> passage vectors [N, D] (lower stack and head only)."""
    return self._vectors(self._lower(passage_tokens, not enable_dropout), passage_tokens, False)

  def encode_for_reader(self, query_tokens: jnp.ndarray, passage_tokens: jnp.ndarray,
                        enable_dropout: bool = False) -> dict[str, jnp.ndarray]:
    """Both encoder halves.

    Args:
      query_tokens: [B * C, Lq]: C >= 1 queries per question, question-major (row b * C + c
        is query c of question b). The passages go through the lower stack once and are
        shared by the C queries (in training mode with the same dropout masks).
      passage_tokens: [B, K, Lp].
      enable_dropout: training mode.

    Returns a dict with memory [B * C, K * (Lq + Lp), D], memory_mask [B * C, K * (Lq + Lp)],
    query_vectors [B * C, D], query_pair_vectors [B * C, K, D] (the per-pair query vectors
    whose mean query_vectors is; K copies of it with ``query_encoding='shared'`` or without
    dropout), passage_vectors [B * C, K, D] and, with ``retriever_head`` set, the MaxSim token
    vectors query_token_vectors [B * C, Lq, Dk] (the mean of the per-pair copies, as
    query_vectors) and passage_token_vectors [B * C, K, Lp, Dk].
    """
    c = self.config.mt5
    det = not enable_dropout
    query_copies(query_tokens.shape[0], passage_tokens.shape[0])
    # Without dropout every pair's query encoding is the same: encode it once.
    per_pair = self.config.query_encoding == "per_pair" and enable_dropout
    shared_h_q = None if per_pair else self._lower(query_tokens, det)     # [N, Lq, D]
    b, k, lp = passage_tokens.shape
    size = self.config.passage_chunk_size
    if size is None or size >= k:
      outs = self._encode_pairs(shared_h_q, query_tokens, passage_tokens, det)
    else:
      if k % size:
        raise ValueError(f"UnifiedConfig.passage_chunk_size={size} does not divide the "
                         f"{k} passages of a question")
      chunks = k // size
      # [B, K, Lp] -> [chunks, B, size, Lp]: chunk j holds passages j*size .. (j+1)*size - 1.
      chunked = jnp.swapaxes(passage_tokens.reshape(b, chunks, size, lp), 0, 1)

      def body(module, carry, p_chunk, h_q, query_tokens):
        return carry, module._encode_pairs(h_q, query_tokens, p_chunk, det)

      # Only each chunk's inputs are kept for the backward pass; the chunk is recomputed
      # there (with its layers' own remat policy inside).
      body = nn.remat(body, prevent_cse=False, policy=jax.checkpoint_policies.nothing_saveable)
      scan = nn.scan(body, variable_broadcast="params", split_rngs={"params": False,
                                                                    "dropout": True},
                     in_axes=(0, nn.broadcast, nn.broadcast), length=chunks)
      _, outs = scan(self, None, chunked, shared_h_q, query_tokens)
      # [chunks, N, size, ...] -> [N, K, ...]
      outs = {name: jnp.swapaxes(x, 0, 1).reshape((x.shape[1], k) + x.shape[3:])
              for name, x in outs.items()}
    if per_pair:
      query_pair_vectors = outs["query_pair_vectors"]
      query_vectors = jnp.mean(query_pair_vectors, axis=1)   # the official mean of K copies
    else:
      query_vectors = self._vectors(shared_h_q, query_tokens, True)
      query_pair_vectors = jnp.broadcast_to(query_vectors[:, None],
                                            (query_vectors.shape[0], k, query_vectors.shape[-1]))
    h, pair_mask = outs["hidden"], outs["pair_mask"]
    n, _, pair_len = pair_mask.shape
    memory = h.reshape(n, k * pair_len, c.d_model)
    memory = nn.with_logical_constraint(memory, (ax.BATCH, ax.LENGTH, ax.EMBED))
    passage_vectors = nn.with_logical_constraint(
        outs["passage_vectors"], activation_axes(3, ax.RETRIEVAL))
    result = dict(memory=memory, memory_mask=pair_mask.reshape(n, k * pair_len),
                  query_vectors=query_vectors, query_pair_vectors=query_pair_vectors,
                  passage_vectors=passage_vectors)
    head = self.config.retriever_head
    if head is not None:
      result["query_token_vectors"] = (
          jnp.mean(outs["query_pair_token_vectors"], axis=1) if per_pair
          else self._head_states(shared_h_q, head, True))
      result["passage_token_vectors"] = outs["passage_token_vectors"]
    return result

  def _encode_pairs(self, h_q: jnp.ndarray | None, query_tokens: jnp.ndarray,
                    passage_tokens: jnp.ndarray, det: bool) -> dict[str, jnp.ndarray]:
    """The lower stack on passages (and queries, per pair), then the upper stack on pairs.

    Args:
      h_q: [N, Lq, D] the queries' lower-stack output shared by every pair (N = B * C,
        question-major), or None: the query's lower stack runs again in every pair (its own
        dropout sample, as the official [query; passage] sequences).
      query_tokens: [N, Lq].
      passage_tokens: [B, k, Lp] (all of a question's passages, or a chunk of them).
      det: no dropout.

    Returns a dict: passage_vectors [N, k, D], hidden [N, k, Lq + Lp, D] (the encoder outputs
    after the final norm), pair_mask [N, k, Lq + Lp], when h_q is None query_pair_vectors
    [N, k, D] and, with ``retriever_head`` set, passage_token_vectors [N, k, Lp, Dk] (and when
    h_q is None query_pair_token_vectors [N, k, Lq, Dk]).
    """
    c = self.config.mt5
    head = self.config.retriever_head
    copies = query_copies(query_tokens.shape[0], passage_tokens.shape[0])
    h_p = self._lower(passage_tokens, det)                        # [B, k, Lp, D]
    out = {"passage_vectors": repeat_rows(self._vectors(h_p, passage_tokens, False), copies)}
    if head is not None:
      out["passage_token_vectors"] = repeat_rows(self._head_states(h_p, head, False), copies)
    h_p = repeat_rows(h_p, copies)                                # [N, k, Lp, D]
    passage_tokens = repeat_rows(passage_tokens, copies)
    n, k, lp = passage_tokens.shape
    lq = query_tokens.shape[-1]
    if h_q is None:
      pair_queries = jnp.broadcast_to(query_tokens[:, None], (n, k, lq))
      h_q = self._lower(pair_queries, det)                        # [N, k, Lq, D]
      out["query_pair_vectors"] = self._vectors(h_q, pair_queries, True)
      if head is not None:
        out["query_pair_token_vectors"] = self._head_states(h_q, head, True)
    else:
      h_q = jnp.broadcast_to(h_q[:, None], (n, k, lq, c.d_model))
    q_mask = query_tokens != c.pad_id
    p_mask = passage_tokens != c.pad_id
    # A padding passage (no tokens) masks its whole pair, query copy included.
    present = jnp.any(p_mask, axis=-1, keepdims=True)            # [N, k, 1]
    pair_mask = jnp.concatenate(
        [jnp.broadcast_to(q_mask[:, None], (n, k, lq)) & present, p_mask], axis=-1)
    h = jnp.concatenate([h_q, h_p], axis=2)
    h = nn.with_logical_constraint(h, activation_axes(h.ndim, ax.LENGTH, ax.EMBED))
    q_len = jnp.sum(q_mask, axis=-1, dtype=jnp.int32)
    positions = jnp.concatenate(
        [jnp.broadcast_to(jnp.arange(lq), (n, lq)), q_len[:, None] + jnp.arange(lp)[None]],
        axis=-1)[:, None]                                         # [N, 1, Lq + Lp]
    h = self.encoder.run_layers(h, positions, pair_mask, start=self._r,
                                deterministic=det)
    out["hidden"] = self.encoder.finalize(h, det)
    out["pair_mask"] = pair_mask
    return out

  def to_logits(self, h: jnp.ndarray) -> jnp.ndarray:
    """Normalized decoder states [..., D] -> float32 logits [..., V]."""
    c = self.config.mt5
    if c.tie_word_embeddings:
      return self.token_embedder.attend(h * (c.d_model ** -0.5))
    return self.decoder.logits(h)

  def _memory_bias(self, retrieval_scores: jnp.ndarray, passage_tokens: jnp.ndarray,
                   memory: jnp.ndarray) -> jnp.ndarray | None:
    """The attention offset [N, S] for retrieval_scores [N, K] over passage_tokens [B, K, Lp]
    and memory [N, S, D], or None without one (``UnifiedConfig.attention_offset_weight``)."""
    weight = self.config.attention_offset_weight
    if weight is None:
      return None
    n, k = retrieval_scores.shape
    present = jnp.any(passage_tokens != self.config.mt5.pad_id, axis=-1)   # [B, K]
    present = repeat_rows(present, query_copies(n, present.shape[0]))
    return attention_offset_bias(retrieval_scores, present, memory.shape[1] // k, weight)

  def _retrieval_scores(self, enc: dict[str, jnp.ndarray], query_tokens: jnp.ndarray,
                        passage_tokens: jnp.ndarray) -> dict[str, jnp.ndarray]:
    """retrieval_scores [N, K] of each query against its own passages (dot product, or MaxSim
    with ``retriever_head``, which also returns the token vectors it scored)."""
    if self.config.retriever_head is None:
      return {"retrieval_scores": jnp.einsum("bd,bkd->bk", enc["query_vectors"],
                                             enc["passage_vectors"])}
    pad = self.config.mt5.pad_id
    copies = query_copies(query_tokens.shape[0], passage_tokens.shape[0])
    return {"query_token_vectors": enc["query_token_vectors"],
            "passage_token_vectors": enc["passage_token_vectors"],
            "retrieval_scores": own_maxsim_scores(
                enc["query_token_vectors"], query_tokens != pad, enc["passage_token_vectors"],
                repeat_rows(passage_tokens, copies) != pad)}

  def __call__(self, query_tokens: jnp.ndarray, passage_tokens: jnp.ndarray,
               decoder_input_tokens: jnp.ndarray, enable_dropout: bool = False,
               return_reader_relevance: bool = False) -> dict[str, jnp.ndarray]:
    k = passage_tokens.shape[1]
    enc = self.encode_for_reader(query_tokens, passage_tokens, enable_dropout)
    result = dict(query_vectors=enc["query_vectors"], passage_vectors=enc["passage_vectors"])
    result.update(self._retrieval_scores(enc, query_tokens, passage_tokens))
    memory_bias = self._memory_bias(result["retrieval_scores"], passage_tokens, enc["memory"])
    mode = self.config.reader_relevance_mode
    all_layers = return_reader_relevance and mode != "class"
    out = self.decoder(self.token_embedder(decoder_input_tokens), enc["memory"],
                       enc["memory_mask"], deterministic=not enable_dropout,
                       return_cross_probs=return_reader_relevance and not all_layers,
                       memory_bias=memory_bias,
                       first_cross=({"all_layers_probs": "probs", "fidkd_logits": "logits"}[mode]
                                    if all_layers else None))
    if all_layers:
      h, first = out
      result["reader_relevance"] = relevance_from_first_cross(first, enc["memory_mask"], k,
                                                              mode)
    elif return_reader_relevance:
      h, probs = out
      first = probs[:, :, 0, :].reshape(probs.shape[0], probs.shape[1], k, -1)  # [N,H,K,Lpair]
      result["reader_relevance"] = jnp.mean(jnp.sum(first, axis=-1), axis=1)
    else:
      h = out
    result["logits"] = self.to_logits(h)
    return result

  def encode_for_decoding(self, query_tokens: jnp.ndarray,
                          passage_tokens: jnp.ndarray) -> dict[str, jnp.ndarray]:
    """What decoding needs (eval mode): memory [N, S, D], memory_mask [N, S] and, with the
    attention offset, memory_bias [N, S] (``init_decoding_cache``)."""
    enc = self.encode_for_reader(query_tokens, passage_tokens)
    out = dict(memory=enc["memory"], memory_mask=enc["memory_mask"])
    scores = self._retrieval_scores(enc, query_tokens, passage_tokens)["retrieval_scores"]
    memory_bias = self._memory_bias(scores, passage_tokens, enc["memory"])
    if memory_bias is not None:
      out["memory_bias"] = memory_bias
    return out

  def init_decoding_cache(self, memory: jnp.ndarray, memory_mask: jnp.ndarray,
                          max_length: int,
                          memory_bias: jnp.ndarray | None = None) -> DecodingCache:
    """Cache for decoding against memory [N, S, D] / mask [N, S] and, with the attention
    offset, memory_bias [N, S] (all from ``encode_for_decoding``)."""
    if (memory_bias is None) != (self.config.attention_offset_weight is None):
      raise ValueError("init_decoding_cache: memory_bias must be given exactly when "
                       "UnifiedConfig.attention_offset_weight is set (see encode_for_decoding)")
    return self.decoder.init_cache(memory, memory_mask, max_length, memory_bias)

  def decode_step(self, cache: DecodingCache, tokens: jnp.ndarray):
    """tokens int [N] -> (logits [N, V], cache)."""
    h, cache = self.decoder.step(self.token_embedder(tokens[:, None]), cache)
    return self.to_logits(h[:, 0]), cache

  def retrieval_token_states(self, tokens: jnp.ndarray, head: int,
                             is_query: bool) -> jnp.ndarray:
    """One head's layer-R self-attention states of a segment, the MaxSim token vectors.

    Args:
      tokens: [..., L] query tokens (``is_query``) or passage tokens, each its own segment.
      head: the attention head (6 for neulab/reatt-large-nq).
      is_query: True -> the query states Q_R,head; False -> the key states K_R,head.

    Returns:
      states [..., L, Dk] in the activation dtype (padding positions included).
    """
    c = self.config.mt5
    if not 0 <= head < c.num_heads:
      raise ValueError(f"head {head} outside [0, {c.num_heads})")
    return self._head_states(self._lower(tokens, True), head, is_query)

  def maxsim_scores(self, query_tokens: jnp.ndarray, passage_tokens: jnp.ndarray,
                    head: int) -> jnp.ndarray:
    """Token-level teacher score (ReAtt/ColBERT MaxSim) at layer R, one attention head.

    s(q, p) = sum over real query tokens t of max over real passage tokens u of
    <Q_R,head[t], K_R,head[u]>, with Q/K from ``retrieval_token_states``.

    Args:
      query_tokens: [B, Lq].
      passage_tokens: [B, K, Lp].
      head: the attention head (6 for neulab/reatt-large-nq).

    Returns:
      float32 scores [B, K].
    """
    pad = self.config.mt5.pad_id
    return own_maxsim_scores(self.retrieval_token_states(query_tokens, head, True),
                             query_tokens != pad,
                             self.retrieval_token_states(passage_tokens, head, False),
                             passage_tokens != pad)
