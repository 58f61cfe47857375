"""The official CLASS forward pass, written with our model's building blocks: the reference that
tests/test_models_unified.py checks the unified model against and that
benchmarks/train_step.py times it against.

The official model encodes every (question, passage) pair as one sequence [q; p] through the
whole encoder, with an "independent" mask below the retriever layer R (query rows see the
query, every other row sees the passage), and averages the K query vectors of a question.
"""
from __future__ import annotations

import jax.numpy as jnp

from clqa_jax.models.model_api import UnifiedModel
from clqa_jax.models.unified import masked_mean


def official_pairs(query_tokens, passage_tokens):
  """[B, Lq], [B, K, Lp] -> per-pair [q; p] sequences and masks of the reference collator.

  Returns x [B, K, L], attention [B, K, L], query_mask, passage_mask [B, K, L] and the
  independent mask [B, K, L, L] (query rows see the query; every other row sees the passage).
  """
  b, lq = query_tokens.shape
  _, k, lp = passage_tokens.shape
  length = lq + lp
  nq = jnp.sum(query_tokens > 0, axis=-1)                          # [B]
  npas = jnp.sum(passage_tokens > 0, axis=-1)                      # [B, K]
  j = jnp.arange(length)
  in_q = j[None, :] < nq[:, None]                                  # [B, L]
  q_tok = query_tokens[:, jnp.clip(j, 0, lq - 1)]                  # [B, L]
  pj = j[None, None, :] - nq[:, None, None]                        # [B, 1, L]
  p_tok = jnp.take_along_axis(passage_tokens, jnp.clip(jnp.broadcast_to(pj, (b, k, length)),
                                                       0, lp - 1), axis=-1)
  in_p = (pj >= 0) & (pj < npas[..., None])                        # [B, K, L]
  q_mask = jnp.broadcast_to(in_q[:, None, :], (b, k, length))
  x = jnp.where(q_mask, q_tok[:, None, :], jnp.where(in_p, p_tok, 0))
  attention = q_mask | in_p
  independent = ((q_mask[..., :, None] & q_mask[..., None, :])
                 | (~q_mask[..., :, None] & in_p[..., None, :]))
  return x, attention, q_mask, in_p, independent


def official_forward(module, x, attention, q_mask, p_mask, independent, decoder_input_tokens,
                     deterministic: bool = True, return_reader_relevance: bool = True,
                     return_teacher_states: bool = False):
  """The reference computation (a flax method function: ``model.apply(..., method=...)``).

  Returns query_vectors [B, D] (mean of the K per-pair copies), passage_vectors [B, K, D],
  retrieval_scores [B, K], logits [B, T, V], and when asked reader_relevance [B, K] and the
  layer-R query/key states of the MaxSim teacher.
  """
  b, k, length = x.shape
  r = module.config.resolved_retriever_layer
  positions = jnp.arange(length)[None]
  h = module.encoder.dropout(module.token_embedder(x), deterministic=deterministic)
  h = module.encoder.run_layers(h, positions, pairwise_mask=independent, start=0, end=r,
                                deterministic=deterministic)
  u = module.encoder.normalized_layer_input(h, r)
  query_vectors = module.retriever(masked_mean(u, q_mask), True).mean(axis=1)   # K copies
  passage_vectors = module.retriever(masked_mean(u, p_mask), False)
  result = dict(query_vectors=query_vectors, passage_vectors=passage_vectors,
                retrieval_scores=jnp.einsum("bd,bkd->bk", query_vectors, passage_vectors))
  if return_teacher_states:
    result["q_states"], result["k_states"] = module.encoder.layer_query_key(h, r)
  h = module.encoder.run_layers(h, positions, attention, start=r, deterministic=deterministic)
  h = module.encoder.finalize(h, deterministic)
  out = module.decoder(module.token_embedder(decoder_input_tokens), h.reshape(b, k * length, -1),
                       attention.reshape(b, -1), deterministic=deterministic,
                       return_cross_probs=return_reader_relevance)
  if return_reader_relevance:
    out, probs = out
    result["reader_relevance"] = (
        probs[:, :, 0].reshape(b, probs.shape[1], k, length).sum(-1).mean(1))
  result["logits"] = module.to_logits(out)
  return result


class OfficialModel(UnifiedModel):
  """A ``UnifiedModel`` whose ``forward`` is the official formulation (same params, same
  outputs); the benchmark trains it with the same train step as ours."""

  def forward(self, params, query_tokens, passage_tokens, decoder_input_tokens, *, rng=None,
              enable_dropout=False, return_reader_relevance=True):
    pairs = official_pairs(query_tokens, passage_tokens)
    rngs = {"dropout": rng} if (enable_dropout and rng is not None) else {}
    return self.module.apply({"params": params}, *pairs, decoder_input_tokens,
                             not enable_dropout, return_reader_relevance,
                             method=official_forward, rngs=rngs)
