"""The individual CLASS loss terms, each returning one value per row (question).

Shapes: B questions, K passages per question, N passages a query is scored against (K for the
question's own passages, B_g*K for the global batch), T answer positions, V vocabulary.
Stop-gradients are applied here, where the method puts them, so every caller gets them right.
The peer-method contrastive terms (``dpr_nll``, ``mixcse_contrastive``) take the retrieval
head's query vectors [B, D] and each question's K passage vectors [B, K, D] (passage 0 the
positive); ``multi_positive_contrastive`` (capstone L_sim) and ``lexa_contrastive`` (LEXA eq. 1)
take scores or topic groups; ``answer_jsd`` and ``relevance_jsd`` are the capstone's
Jensen-Shannon regularisers over a question and its translation.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from clqa_jax.losses import divergences

_TINY = 1e-12


def reader_cross_entropy(logits_BTV: jax.Array, targets_BT: jax.Array,
                         weights_BT: jax.Array) -> jax.Array:
  """CE_tokmean(y | q, P): token-mean cross-entropy over the non-pad answer positions -> [B]."""
  return divergences.token_mean(divergences.token_cross_entropy(logits_BTV, targets_BT),
                                weights_BT)


def retrieval_distillation(teacher_scores_BN: jax.Array, student_scores_BN: jax.Array,
                           passage_mask_N: jax.Array) -> jax.Array:
  """KL(softmax teacher || softmax student) over the N scored passages -> [B].

  The teacher distribution is a constant (the teacher is frozen); padding passages are excluded
  from both softmaxes.
  """
  teacher = jax.lax.stop_gradient(
      divergences.masked_log_softmax(teacher_scores_BN, passage_mask_N[None, :]))
  student = divergences.masked_log_softmax(student_scores_BN, passage_mask_N[None, :])
  return divergences.kl_from_log_probs(teacher, student, passage_mask_N[None, :])


def retrieval_alignment(en_scores_BN: jax.Array, xx_scores_BN: jax.Array,
                        passage_mask_N: jax.Array) -> jax.Array:
  """KL(sg[r^en] || r^xx): the English student's retrieval distribution teaches the XX one -> [B]."""
  return retrieval_distillation(en_scores_BN, xx_scores_BN, passage_mask_N)


def attention_distillation(teacher_relevance_BK: jax.Array, student_relevance_BK: jax.Array,
                           passage_mask_BK: jax.Array) -> jax.Array:
  """KL(a_T || a_S) between reader relevances (cross-attention mass per passage) -> [B].

  The student relevance is *not* detached: this term trains the student reader.
  """
  teacher = jax.lax.stop_gradient(teacher_relevance_BK)
  student_log = jnp.log(jnp.maximum(student_relevance_BK.astype(jnp.float32), _TINY))
  return divergences.kl_from_probs(teacher, student_log, passage_mask_BK)


def answer_distribution_alignment(en_logits_BTV: jax.Array, xx_logits_BTV: jax.Array,
                                  weights_BT: jax.Array) -> jax.Array:
  """(1/|y|) sum_t KL(sg[P(.|y<t, q^en)] || P(.|y<t, q^xx)) over the full vocabulary -> [B]."""
  en = jax.lax.stop_gradient(jax.nn.log_softmax(en_logits_BTV.astype(jnp.float32), axis=-1))
  xx = jax.nn.log_softmax(xx_logits_BTV.astype(jnp.float32), axis=-1)
  per_position = divergences.kl_from_log_probs(en, xx)
  return divergences.token_mean(per_position, weights_BT)


def reader_to_retriever_distillation(reader_relevance_BK: jax.Array,
                                     retrieval_scores_BK: jax.Array,
                                     passage_mask_BK: jax.Array) -> jax.Array:
  """KL(sg[a(q, .)] || softmax_k <e_q, e_pk>) over the question's own K passages -> [B]."""
  target = jax.lax.stop_gradient(reader_relevance_BK)
  student = divergences.masked_log_softmax(retrieval_scores_BK, passage_mask_BK)
  return divergences.kl_from_probs(target, student, passage_mask_BK)


def global_scores(query_vectors_BD: jax.Array, passage_vectors_BKD: jax.Array) -> jax.Array:
  """<e_q_i, e_p> for every query i and every passage p of the global batch -> [B, B*K].

  Under jit with a batch-sharded mesh this contraction spans every device's passages (the
  cross-device negatives); XLA inserts the gather.
  """
  b, k, d = passage_vectors_BKD.shape
  passages = passage_vectors_BKD.reshape(b * k, d)
  return jnp.einsum("bd,nd->bn", query_vectors_BD.astype(jnp.float32),
                    passages.astype(jnp.float32))


def maxsim_scores(query_states_BQH: jax.Array, query_mask_BQ: jax.Array,
                  passage_states_NPH: jax.Array, passage_mask_NP: jax.Array) -> jax.Array:
  """ColBERT MaxSim summed over query tokens: sum_t max_u <Q[t], K[u]> -> [B, N].

  The ReAtt teacher's score (one head's query/key states at the retrieval layer). Padding
  passage tokens never win the max; padding query tokens add nothing.
  """
  sims = jnp.einsum("bqh,nph->bnqp", query_states_BQH.astype(jnp.float32),
                    passage_states_NPH.astype(jnp.float32))
  sims = jnp.where(passage_mask_NP[None, :, None, :], sims, divergences.NEG_INF)
  best = jnp.max(sims, axis=-1)  # [B, N, Lq]
  # A passage with no real token (padding passage) would give NEG_INF * Lq; keep it finite.
  best = jnp.where(jnp.any(passage_mask_NP, axis=-1)[None, :, None], best, 0.0)
  return jnp.sum(jnp.where(query_mask_BQ[:, None, :], best, 0.0), axis=-1)


def _positive_columns(num_questions: int, passages_per_question: int) -> jax.Array:
  """Column of question i's positive (its passage 0) in the flattened [B*K] passages -> [B]."""
  return jnp.arange(num_questions) * passages_per_question


def dpr_nll(query_vectors_BD: jax.Array, passage_vectors_BKD: jax.Array,
            passage_mask_BK: jax.Array | None = None) -> jax.Array:
  """DPR's NLL of the positive among every passage of the batch, dot-product scores -> [B].

  L_i = -log e^{s(q_i, p_i+)} / sum_n e^{s(q_i, p_n)} over the B*K passages: passage 0 of each
  question is its positive, passages 1..K-1 its hard negatives, so the negatives are the other
  questions' positives and every hard negative. Padding passages (mask False) are excluded; a
  question whose positive is padding (a padding question) gives 0.
  """
  b, k, _ = passage_vectors_BKD.shape
  scores_BN = global_scores(query_vectors_BD, passage_vectors_BKD)
  mask_N = None if passage_mask_BK is None else passage_mask_BK.reshape(1, b * k)
  log_probs = divergences.masked_log_softmax(scores_BN, mask_N)
  return _positive_nll(log_probs, passage_mask_BK, k)


def _positive_nll(log_probs_BN: jax.Array, passage_mask_BK: jax.Array | None,
                  k: int) -> jax.Array:
  """-log p(positive of question i, column i*K) -> [B]; 0 for a padding question."""
  b = log_probs_BN.shape[0]
  nll = -jnp.take_along_axis(log_probs_BN, _positive_columns(b, k)[:, None], axis=-1)[:, 0]
  return nll if passage_mask_BK is None else jnp.where(passage_mask_BK[:, 0], nll, 0.0)


def draw_hard_negative(rng: jax.Array, passage_mask_BK: jax.Array) -> jax.Array:
  """MixCSE's j*: a uniform draw among each question's real hard negatives (1..K-1) -> [B].

  A question without a real hard negative gets any index in 1..K-1, a padding passage, whose mixed
  column ``mixcse_contrastive`` then drops.
  """
  b, k = passage_mask_BK.shape
  if k < 2:
    raise ValueError(f"MixCSE mixes with a hard negative: need K >= 2 passages, got K={k}")
  logits = jnp.where(passage_mask_BK[:, 1:], 0.0, divergences.NEG_INF)
  return 1 + jax.random.categorical(rng, logits, axis=-1)


def _unit(x: jax.Array) -> jax.Array:
  """x / |x| along the last axis; a zero vector (a padding passage's) stays 0 with a finite
  gradient (the norm's own gradient is 0/0 there)."""
  x = x.astype(jnp.float32)
  squared = jnp.sum(x * x, axis=-1, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(squared, _TINY * _TINY))


def mixcse_contrastive(query_vectors_BD: jax.Array, passage_vectors_BKD: jax.Array,
                       hard_negative_index_B: jax.Array,
                       passage_mask_BK: jax.Array | None = None, *,
                       mix_weight: float = 0.2, temperature: float = 0.05) -> jax.Array:
  """MixCSE (Zhang et al., AAAI 2022) as ZusammenQA states it: cosine/tau NLL + one mixed negative.

  With c(x, y) = cos(x, y) / tau and e~_i = normalise(lambda e_{p_i+} + (1 - lambda) e_{p_ij*}),
    L_i = -log e^{c(q_i, p_i+)} / (sum_n e^{c(q_i, p_n)} + e^{c(q_i, sg[e~_i])}),
  where n runs over the B*K passages of the batch (the positive, the in-batch positives and every
  hard negative, as ``dpr_nll``) and j* = ``hard_negative_index_B`` (in 1..K-1, see
  ``draw_hard_negative``). The mixed negative is a constant: no gradient reaches the passages
  through its construction, only through their own columns. Its column is dropped for a
  question whose j* is a padding passage; a padding question (padding positive) gives 0.
  """
  b, k, _ = passage_vectors_BKD.shape
  queries = _unit(query_vectors_BD)
  passages = _unit(passage_vectors_BKD)
  scores_BN = global_scores(queries, passages) / temperature
  rows = jnp.arange(b)
  mixed = jax.lax.stop_gradient(_unit(
      mix_weight * passages[:, 0] + (1.0 - mix_weight) * passages[rows, hard_negative_index_B]))
  mixed_scores_B1 = (jnp.sum(queries * mixed, axis=-1) / temperature)[:, None]
  logits = jnp.concatenate([scores_BN, mixed_scores_B1], axis=-1)
  if passage_mask_BK is None:
    passage_mask_BK = jnp.ones((b, k), bool)
  mask = jnp.concatenate(
      [jnp.broadcast_to(passage_mask_BK.reshape(1, b * k), (b, b * k)),
       passage_mask_BK[rows, hard_negative_index_B][:, None]], axis=-1)
  log_probs = divergences.masked_log_softmax(logits, mask)
  return _positive_nll(log_probs, passage_mask_BK, k)


def multi_positive_contrastive(scores_BN: jax.Array, positive_mask_BN: jax.Array,
                               candidate_mask_BN: jax.Array) -> jax.Array:
  """The capstone's L_sim over several positives, dot-product scores, no temperature -> [B].

    L_i = - sum_{p in P+_i} log e^{s(q_i, p)} / sum_{p' in P+_i u P-_i} e^{s(q_i, p')}

  ``candidate_mask_BN`` marks P+ u P- (in-batch and hard negatives), ``positive_mask_BN`` marks
  P+ (a subset of the candidates). One softmax over the candidates: positives compete with each
  other, as in the formula. A question without a positive gives 0.
  """
  positive = jnp.logical_and(positive_mask_BN, candidate_mask_BN)
  log_probs = divergences.masked_log_softmax(scores_BN, candidate_mask_BN)
  return -jnp.sum(jnp.where(positive, log_probs, 0.0), axis=-1)


def lexa_contrastive(anchor_vectors_GD: jax.Array, positive_vectors_GnD: jax.Array,
                     positive_mask_Gn: jax.Array, negative_vectors_MD: jax.Array,
                     negative_topic_M: jax.Array, topic_G: jax.Array,
                     negative_mask_M: jax.Array | None = None) -> jax.Array:
  """LEXA eq. (1) for G topic groups, dot-product similarity, no temperature -> [G].

  Group g's anchor d_j (``anchor_vectors_GD``) and its n documents (``positive_vectors_GnD``,
  the anchor's own slot holding an independently re-masked copy of it), against the M documents
  ``negative_vectors_MD`` of the batch (every group's documents plus any mined ones):

    L_g = sum_i -log e^{sim(d_i, d_j)} / (sum_{k in N_g} e^{sim(d_j, d_k)} + e^{sim(d_i, d_j)})

  N_g is every candidate whose topic differs from the group's (``negative_topic_M`` !=
  ``topic_G``): a same-topic document never enters a denominator, and positives never compete
  with each other (one denominator per positive). Padding positives add nothing.
  """
  anchors = anchor_vectors_GD.astype(jnp.float32)
  positive_scores_Gn = jnp.einsum("gd,gnd->gn", anchors, positive_vectors_GnD.astype(jnp.float32))
  negative_scores_GM = jnp.einsum("gd,md->gm", anchors, negative_vectors_MD.astype(jnp.float32))
  in_n_GM = negative_topic_M[None, :] != topic_G[:, None]
  if negative_mask_M is not None:
    in_n_GM = jnp.logical_and(in_n_GM, negative_mask_M[None, :])
  # log sum_{k in N} e^{s_k}; -inf (an empty N) leaves each term at -log 1 = 0.
  negatives_lse_G = jax.nn.logsumexp(jnp.where(in_n_GM, negative_scores_GM, -jnp.inf), axis=-1)
  denominators_Gn = jnp.logaddexp(negatives_lse_G[:, None], positive_scores_Gn)
  per_positive = denominators_Gn - positive_scores_Gn
  return jnp.sum(jnp.where(positive_mask_Gn, per_positive, 0.0), axis=-1)


def answer_jsd(logits_BTV: jax.Array, translated_logits_BTV: jax.Array,
               weights_BT: jax.Array) -> jax.Array:
  """The capstone's output JSD: sum_t JSD(P(.|a<t, q', P), P(.|a<t, q, P)) over the answer's
  non-pad positions and the full vocabulary -> [B]. Both questions get gradient."""
  p = jax.nn.log_softmax(logits_BTV.astype(jnp.float32), axis=-1)
  q = jax.nn.log_softmax(translated_logits_BTV.astype(jnp.float32), axis=-1)
  per_position = divergences.jensen_shannon_from_log_probs(p, q)
  return jnp.sum(per_position * weights_BT.astype(jnp.float32), axis=-1)


def relevance_jsd(relevance_BK: jax.Array, translated_relevance_BK: jax.Array,
                  passage_mask_BK: jax.Array) -> jax.Array:
  """The capstone's cross-attention JSD between the passage relevances (aggregated attention at
  the first decoder position, summing to 1 over K) for q and for its translation q' -> [B].

  The source's equation is missing; this is the spec's recommendation: the same JSD over the K
  passages, on the log of the aggregated post-softmax attention.
  """
  p = jnp.log(jnp.maximum(relevance_BK.astype(jnp.float32), _TINY))
  q = jnp.log(jnp.maximum(translated_relevance_BK.astype(jnp.float32), _TINY))
  return divergences.jensen_shannon_from_log_probs(p, q, passage_mask_BK)


def fidkd_distillation(reader_scores_BK: jax.Array, retrieval_scores_BK: jax.Array,
                       passage_mask_BK: jax.Array, vector_dim: int) -> jax.Array:
  """FiD-KD (the capstone's backward step, FiD's retriever loss) over the question's own K
  passages -> [B]:

    KL(softmax_k sg[g] || softmax_k s(q, p_k) / sqrt(d)) / K

  g is the reader's pre-softmax first-position cross-attention score averaged over layers,
  heads and the passage's tokens (reader_relevance in "fidkd_logits" mode), held constant: the
  reader is frozen. The division by K makes the mean over rows torch ``KLDivLoss()``'s default
  reduction, the mean over all B * K elements (padding passages count as zero elements).
  """
  k = reader_scores_BK.shape[-1]
  target = jax.lax.stop_gradient(
      divergences.masked_log_softmax(reader_scores_BK, passage_mask_BK))
  student = divergences.masked_log_softmax(
      retrieval_scores_BK.astype(jnp.float32) / jnp.sqrt(float(vector_dim)), passage_mask_BK)
  return divergences.kl_from_log_probs(target, student, passage_mask_BK) / k


def retriever_to_reader_distillation(retrieval_scores_BK: jax.Array,
                                     reader_relevance_BK: jax.Array,
                                     passage_mask_BK: jax.Array) -> jax.Array:
  """The capstone's forward KL, KL(sg softmax_k s(q, p_k) || a(q, .)) over the question's own K
  passages -> [B] (peer-methods.md 1.3 d, the recommended direction; batchmean over rows).

  a is the reader's aggregated post-softmax attention (reader_relevance in "all_layers_probs"
  mode), which this term trains; the retriever is the constant teacher.
  """
  teacher = jnp.exp(divergences.masked_log_softmax(retrieval_scores_BK, passage_mask_BK))
  return attention_distillation(teacher, reader_relevance_BK, passage_mask_BK)


def inbatch_teacher_kl(teacher_scores_BC: jax.Array, student_scores_BN: jax.Array,
                       candidate_mask_BC: jax.Array, *, multiplier: float = 10.0) -> jax.Array:
  """UMR's in-batch KL to LM pseudo-labels (peer-methods 4.3, ``BiEncoderInBatchKLLoss``) -> [B].

  Question i's C candidates are columns i*C .. i*C+C-1 of the N = B*C in-batch passages.
    p_i = softmax over C_i of (multiplier * s_LM), zero mass on other questions' passages
    r_i = softmax over all N passages of s(q_i, .)
    L_i = sum_{c in C_i} p_i(c) [log p_i(c) - log r_i(c)]
  ``multiplier`` (10 in the source, which calls it "temperature") multiplies the teacher
  logits. The teacher scores are constants. Padding candidates (mask False) are out of both
  softmaxes; a question without a real candidate gives 0.
  """
  b, c = teacher_scores_BC.shape
  teacher = jax.lax.stop_gradient(divergences.masked_log_softmax(
      multiplier * teacher_scores_BC.astype(jnp.float32), candidate_mask_BC))
  student = divergences.masked_log_softmax(student_scores_BN,
                                           candidate_mask_BC.reshape(1, b * c))
  own_BC = student.reshape(b, b, c)[jnp.arange(b), jnp.arange(b)]  # r_i on question i's columns
  return divergences.kl_from_log_probs(teacher, own_BC, candidate_mask_BC)
