"""Greedy and beam-search decoding with a key/value cache.

Both searches drive a ``step_fn(cache, tokens [N]) -> (logits [N, V], cache)``; ``generate``
wires it to ``MT5`` or ``UnifiedRetrieverReader``, whose ``init_decoding_cache``/``decode_step``
methods own the cache (the unified model decodes through ``model_api.UnifiedModel``). The beam
search follows the semantics of Hugging Face ``generate(num_beams=W, early_stopping=False)``
(length-normalised scores ``sum log p / len ** length_penalty``, its early-stop heuristic, and
only the top-W candidates allowed to finish per step), so results are comparable with the
reference.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from clqa_jax.models.cache import DecodingCache

StepFn = Callable[[DecodingCache, jnp.ndarray], tuple[jnp.ndarray, DecodingCache]]
MAX_ANSWER_LENGTH = 50
_NEG = -1.0e9


def greedy_search(step_fn: StepFn, cache: DecodingCache, *, max_length: int, eos_id: int = 1,
                  start_id: int = 0, pad_id: int = 0) -> jnp.ndarray:
  """Greedy decoding; returns tokens int32 [N, max_length], ``pad_id`` after EOS."""
  n = cache.memory_mask.shape[0]

  def cond(state):
    i, _, _, done, _ = state
    return (i < max_length) & ~jnp.all(done)

  def body(state):
    i, tokens, last, done, cache = state
    logits, cache = step_fn(cache, last)
    nxt = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    nxt = jnp.where(done, pad_id, nxt)
    tokens = jax.lax.dynamic_update_slice(tokens, nxt[:, None], (0, i))
    return i + 1, tokens, nxt, done | (nxt == eos_id), cache

  state = (jnp.zeros((), jnp.int32), jnp.full((n, max_length), pad_id, jnp.int32),
           jnp.full((n,), start_id, jnp.int32), jnp.zeros((n,), bool), cache)
  return jax.lax.while_loop(cond, body, state)[1]


def _gather(x: jnp.ndarray, indices: jnp.ndarray) -> jnp.ndarray:
  """x [B, W, ...] gathered along the beam axis with indices [B, W'] -> [B, W', ...]."""
  return jnp.take_along_axis(x, indices.reshape(indices.shape + (1,) * (x.ndim - 2)), axis=1)


def beam_search(step_fn: StepFn, cache: DecodingCache, *, beam_size: int, max_length: int,
                length_penalty: float = 1.0, eos_id: int = 1, start_id: int = 0,
                pad_id: int = 0) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Beam search over a cache for N = B examples (expanded to B * beam_size inside).

  Returns:
    tokens int32 [B, beam_size, max_length] (``pad_id`` after EOS) and their scores
    [B, beam_size] (sum of log-probabilities / length ** length_penalty), best first.
  """
  b, w = cache.memory_mask.shape[0], beam_size
  keep = 2 * w
  cache = cache.map_batch(lambda x, axis: jnp.repeat(x, w, axis=axis))

  def flat_gather(cache, beam_indices):   # beam_indices [B, W] into the previous beams
    flat = (beam_indices + jnp.arange(b)[:, None] * w).reshape(-1)
    return cache.map_self_batch(lambda x, axis: jnp.take(x, flat, axis=axis))

  def cond(state):
    i, *_, unsatisfied, _ = state
    return (i < max_length) & jnp.any(unsatisfied)

  def body(state):
    i, run_seq, run_scores, seqs, scores, finished, unsatisfied, cache = state
    last = jnp.where(i == 0, start_id,
                     jnp.take_along_axis(run_seq, jnp.maximum(i - 1, 0)[None, None, None],
                                         axis=2)[..., 0])
    logits, cache = step_fn(cache, last.reshape(-1))
    vocab = logits.shape[-1]
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1).reshape(b, w, vocab)
    log_probs = (log_probs + run_scores[:, :, None]).reshape(b, w * vocab)
    top_lp, top_idx = jax.lax.top_k(log_probs, keep)                        # [B, 2W]
    src_beam, token = top_idx // vocab, (top_idx % vocab).astype(jnp.int32)
    top_seq = _gather(run_seq, src_beam)
    top_seq = jax.lax.dynamic_update_slice(top_seq, token[:, :, None], (0, 0, i))
    hits = (token == eos_id) | (i == max_length - 1)
    # Running beams: the best W candidates that did not stop.
    run_lp = top_lp + hits * _NEG
    _, next_idx = jax.lax.top_k(run_lp, w)
    run_seq, run_scores = _gather(top_seq, next_idx), _gather(run_lp, next_idx)
    cache = flat_gather(cache, _gather(src_beam, next_idx))
    # Finished hypotheses: candidates among the top W that stopped, length-normalised.
    just_finished = hits & (jnp.arange(keep) < w)[None]
    norm = top_lp / ((i + 1).astype(jnp.float32) ** length_penalty)
    norm = norm + (~unsatisfied) * _NEG + (~just_finished) * _NEG
    merged_seq = jnp.concatenate([seqs, top_seq], axis=1)
    merged_scores = jnp.concatenate([scores, norm], axis=1)
    merged_fin = jnp.concatenate([finished, just_finished], axis=1)
    _, best = jax.lax.top_k(merged_scores, w)
    seqs, scores = _gather(merged_seq, best), _gather(merged_scores, best)
    finished = _gather(merged_fin, best)
    # Early-stop heuristic (early_stopping=False): the best running beam at its current length
    # cannot beat the worst finished one.
    best_running = run_scores[:, :1] / ((i + 1).astype(jnp.float32) ** length_penalty)
    worst = jnp.where(finished, jnp.min(scores, axis=1, keepdims=True), _NEG)
    unsatisfied = unsatisfied & jnp.any(best_running > worst, axis=-1, keepdims=True)
    return i + 1, run_seq, run_scores, seqs, scores, finished, unsatisfied, cache

  run_scores = jnp.concatenate([jnp.zeros((b, 1)), jnp.full((b, w - 1), _NEG)], axis=1)
  state = (jnp.zeros((), jnp.int32), jnp.full((b, w, max_length), pad_id, jnp.int32),
           run_scores, jnp.full((b, w, max_length), pad_id, jnp.int32), jnp.full((b, w), _NEG),
           jnp.zeros((b, w), bool), jnp.ones((b, 1), bool), cache)
  _, _, _, seqs, scores, _, _, _ = jax.lax.while_loop(cond, body, state)
  # Tokens after the first EOS are padding (a hypothesis only finishes at its EOS).
  after_eos = jnp.cumsum(jnp.cumsum(seqs == eos_id, axis=-1), axis=-1) > 1
  return jnp.where(after_eos, pad_id, seqs), scores


def generate(model: Any, params: Any, memory: jnp.ndarray, memory_mask: jnp.ndarray, *,
             max_length: int = MAX_ANSWER_LENGTH, beam_size: int = 1,
             length_penalty: float = 1.0, memory_bias: jnp.ndarray | None = None):
  """Decodes answers for encoder memory [N, S, D] / mask [N, S] with a model exposing
  ``init_decoding_cache`` and ``decode_step`` (``MT5`` or ``UnifiedRetrieverReader``).
  ``memory_bias`` [N, S], the unified model's attention offset, goes into the cache.

  Returns tokens [N, max_length] for beam_size 1 (greedy), else (tokens [N, W, max_length],
  scores [N, W]).
  """
  c = model.config.mt5 if hasattr(model.config, "mt5") else model.config
  extra = {} if memory_bias is None else {"memory_bias": memory_bias}
  cache = model.apply({"params": params}, memory, memory_mask, max_length, **extra,
                      method="init_decoding_cache")

  def step_fn(cache, tokens):
    return model.apply({"params": params}, cache, tokens, method="decode_step")

  ids = dict(eos_id=c.eos_id, start_id=c.decoder_start_id, pad_id=c.pad_id)
  if beam_size == 1:
    return greedy_search(step_fn, cache, max_length=max_length, **ids)
  return beam_search(step_fn, cache, beam_size=beam_size, max_length=max_length,
                     length_penalty=length_penalty, **ids)

