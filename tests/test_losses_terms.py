"""Each CLASS loss term against a direct numpy computation, and the stop-gradients via jax.grad."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clqa_jax.losses import terms

RNG = np.random.default_rng(0)


def np_log_softmax(x, mask=None):
  x = np.asarray(x, np.float64)
  if mask is not None:
    x = np.where(mask, x, -np.inf)
  m = np.max(x, axis=-1, keepdims=True)
  z = x - m
  return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))


def test_reader_cross_entropy_token_mean():
  logits = RNG.normal(size=(3, 5, 7)).astype(np.float32)
  targets = RNG.integers(0, 7, size=(3, 5))
  weights = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], np.float32)
  got = terms.reader_cross_entropy(logits, targets, weights)
  logp = np_log_softmax(logits)
  want = [-sum(logp[b, t, targets[b, t]] for t in range(5) if weights[b, t]) / weights[b].sum()
          for b in range(3)]
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_retrieval_distillation_masks_padding_passages():
  t = RNG.normal(size=(2, 6)).astype(np.float32)
  s = RNG.normal(size=(2, 6)).astype(np.float32)
  mask = np.array([1, 1, 0, 1, 1, 0], bool)
  got = terms.retrieval_distillation(t, s, mask)
  lt, ls = np_log_softmax(t, mask), np_log_softmax(s, mask)
  want = [sum(np.exp(lt[b, j]) * (lt[b, j] - ls[b, j]) for j in range(6) if mask[j])
          for b in range(2)]
  np.testing.assert_allclose(got, want, rtol=1e-5)
  # Teacher is a constant; student gets gradient.
  g_t = jax.grad(lambda x: terms.retrieval_distillation(x, s, mask).sum())(t)
  g_s = jax.grad(lambda x: terms.retrieval_distillation(t, x, mask).sum())(s)
  assert np.all(np.asarray(g_t) == 0)
  assert np.abs(np.asarray(g_s)[:, mask]).sum() > 0
  assert np.all(np.asarray(g_s)[:, ~mask] == 0)


def test_retrieval_alignment_stops_gradient_into_english():
  en = RNG.normal(size=(3, 4)).astype(np.float32)
  xx = RNG.normal(size=(3, 4)).astype(np.float32)
  mask = np.ones(4, bool)
  want = [sum(np.exp(a) * (a - c) for a, c in zip(np_log_softmax(en)[b], np_log_softmax(xx)[b]))
          for b in range(3)]
  np.testing.assert_allclose(terms.retrieval_alignment(en, xx, mask), want, rtol=1e-5)
  g_en, g_xx = jax.grad(lambda a, c: terms.retrieval_alignment(a, c, mask).sum(),
                        argnums=(0, 1))(en, xx)
  assert np.all(np.asarray(g_en) == 0) and np.abs(np.asarray(g_xx)).sum() > 0


def test_attention_distillation_trains_student_only():
  t = jax.nn.softmax(RNG.normal(size=(2, 4))).astype(np.float32)
  s = jax.nn.softmax(RNG.normal(size=(2, 4))).astype(np.float32)
  mask = np.array([[1, 1, 1, 1], [1, 1, 1, 0]], bool)
  t = np.where(mask, t, 0.0)
  got = terms.attention_distillation(t, s, mask)
  want = [sum(t[b, j] * (np.log(t[b, j]) - np.log(s[b, j])) for j in range(4) if mask[b, j])
          for b in range(2)]
  np.testing.assert_allclose(got, want, rtol=1e-5)
  g_t, g_s = jax.grad(lambda a, c: terms.attention_distillation(a, c, mask).sum(),
                      argnums=(0, 1))(t, s)
  assert np.all(np.asarray(g_t) == 0) and np.abs(np.asarray(g_s)).sum() > 0


def test_answer_distribution_alignment_per_position_full_vocab():
  en = RNG.normal(size=(2, 4, 9)).astype(np.float32)
  xx = RNG.normal(size=(2, 4, 9)).astype(np.float32)
  w = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], np.float32)
  got = terms.answer_distribution_alignment(en, xx, w)
  le, lx = np_log_softmax(en), np_log_softmax(xx)
  per = np.sum(np.exp(le) * (le - lx), axis=-1)
  want = (per * w).sum(-1) / w.sum(-1)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  g_en, g_xx = jax.grad(lambda a, c: terms.answer_distribution_alignment(a, c, w).sum(),
                        argnums=(0, 1))(en, xx)
  assert np.all(np.asarray(g_en) == 0)
  assert np.all(np.asarray(g_xx)[0, 2:] == 0) and np.abs(np.asarray(g_xx)[0, :2]).sum() > 0


def test_reader_to_retriever_distillation_detaches_relevance():
  a = jax.nn.softmax(RNG.normal(size=(3, 5))).astype(np.float32)
  s = RNG.normal(size=(3, 5)).astype(np.float32)
  mask = np.array([[1] * 5, [1, 1, 1, 0, 0], [1] * 5], bool)
  a = np.where(mask, a, 0.0)
  got = terms.reader_to_retriever_distillation(a, s, mask)
  ls = np_log_softmax(s, mask)
  want = [sum(a[b, j] * (np.log(a[b, j]) - ls[b, j]) for j in range(5) if mask[b, j])
          for b in range(3)]
  np.testing.assert_allclose(got, want, rtol=1e-5)
  g_a, g_s = jax.grad(lambda x, y: terms.reader_to_retriever_distillation(x, y, mask).sum(),
                      argnums=(0, 1))(a, s)
  assert np.all(np.asarray(g_a) == 0) and np.abs(np.asarray(g_s)).sum() > 0


def test_global_scores_span_every_question_passages():
  q = RNG.normal(size=(3, 4)).astype(np.float32)
  p = RNG.normal(size=(3, 2, 4)).astype(np.float32)
  got = terms.global_scores(q, p)
  want = np.array([[q[i] @ p[j, k] for j in range(3) for k in range(2)] for i in range(3)])
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_maxsim_sums_over_query_tokens_of_max_over_passage_tokens():
  qs = RNG.normal(size=(2, 3, 4)).astype(np.float32)
  qm = np.array([[1, 1, 0], [1, 1, 1]], bool)
  ps = RNG.normal(size=(5, 6, 4)).astype(np.float32)
  pm = np.array([[1] * 6, [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0], [0] * 6, [1] * 6], bool)
  got = np.asarray(terms.maxsim_scores(qs, qm, ps, pm))
  for b in range(2):
    for n in range(5):
      if not pm[n].any():
        assert got[b, n] == 0
        continue
      want = sum(max(qs[b, t] @ ps[n, u] for u in range(6) if pm[n, u])
                 for t in range(3) if qm[b, t])
      np.testing.assert_allclose(got[b, n], want, rtol=1e-5)


def np_unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_dpr_nll_in_batch_and_hard_negatives():
  q = RNG.normal(size=(3, 4)).astype(np.float32)
  p = RNG.normal(size=(3, 2, 4)).astype(np.float32)
  mask = np.array([[1, 1], [1, 0], [1, 1]], bool)
  got = terms.dpr_nll(q, p, mask)
  flat, flat_mask = p.reshape(6, 4).astype(np.float64), mask.reshape(6)
  want = []
  for i in range(3):
    s = flat @ q[i].astype(np.float64)
    denominator = sum(np.exp(s[n]) for n in range(6) if flat_mask[n])
    want.append(-np.log(np.exp(s[2 * i]) / denominator))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  # Without a mask every passage is a negative.
  s_all = flat @ q.astype(np.float64).T  # [6, 3]
  want_all = [-(s_all[2 * i, i] - np.log(np.exp(s_all[:, i]).sum())) for i in range(3)]
  np.testing.assert_allclose(terms.dpr_nll(q, p), want_all, rtol=1e-5)
  # A padding question (padding positive) gives 0 and takes no column of the others.
  padded = mask.copy()
  padded[2] = False
  got = np.asarray(terms.dpr_nll(q, p, padded))
  assert got[2] == 0.0
  want0 = -(s_all[0, 0] - np.log(np.exp(s_all[[0, 1, 2], 0]).sum()))
  np.testing.assert_allclose(got[0], want0, rtol=1e-5)


def np_mixcse(q, p, j, mask, lam=0.2, tau=0.05):
  b, k, d = p.shape
  qu, pu = np_unit(q), np_unit(p)
  flat, flat_mask = pu.reshape(b * k, d), mask.reshape(b * k)
  out = []
  for i in range(b):
    mixed = np_unit(lam * pu[i, 0] + (1 - lam) * pu[i, j[i]])
    c = flat @ qu[i] / tau
    denominator = sum(np.exp(c[n]) for n in range(b * k) if flat_mask[n])
    if mask[i, j[i]]:
      denominator += np.exp(qu[i] @ mixed / tau)
    out.append(-np.log(np.exp(c[i * k]) / denominator))
  return np.array(out)


def test_mixcse_equals_numpy():
  q = RNG.normal(size=(3, 4)).astype(np.float32)
  p = RNG.normal(size=(3, 3, 4)).astype(np.float32)
  j = np.array([2, 1, 2])
  mask = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 0]], bool)  # question 1's j* is padding
  got = terms.mixcse_contrastive(q, p, j, mask)
  np.testing.assert_allclose(got, np_mixcse(q, p, j, mask), rtol=1e-4)
  padded = mask.copy()
  padded[1] = False  # a padding question
  got = np.asarray(terms.mixcse_contrastive(q, p, j, padded))
  assert got[1] == 0.0
  np.testing.assert_allclose(got[[0, 2]], np_mixcse(q, p, j, padded)[[0, 2]], rtol=1e-4)
  ones = np.ones((3, 3), bool)
  got = terms.mixcse_contrastive(q, p, j, mix_weight=0.5, temperature=0.1)
  np.testing.assert_allclose(got, np_mixcse(q, p, j, ones, 0.5, 0.1), rtol=1e-4)
  # The mixed negative is a real extra column: the loss exceeds the cosine NLL without it.
  without_mixed = np.asarray(terms.dpr_nll(np_unit(q) / 0.05, np_unit(p)))
  with_mixed = np.asarray(terms.mixcse_contrastive(q, p, j))
  assert np.all(with_mixed >= without_mixed) and np.any(with_mixed > without_mixed + 1e-4)


def test_mixcse_gradient_is_finite_with_zero_padding_vectors():
  # Padding passages embed to the zero vector (no real token to pool); the cosine's norm must
  # not turn their masked columns into NaN gradients.
  q = jnp.asarray(RNG.normal(size=(3, 4)), jnp.float32)
  p = np.asarray(RNG.normal(size=(3, 2, 4)), np.float32)
  mask = np.array([[1, 1], [0, 1], [1, 0]], bool)
  p[~mask] = 0.0
  j = terms.draw_hard_negative(jax.random.PRNGKey(0), jnp.asarray(mask))
  g_q, g_p = jax.grad(lambda a, b: jnp.sum(terms.mixcse_contrastive(a, b, j, mask)),
                      argnums=(0, 1))(q, jnp.asarray(p))
  assert np.isfinite(np.asarray(g_q)).all() and np.isfinite(np.asarray(g_p)).all()
  assert np.all(np.asarray(g_q)[1] == 0)  # the padding question adds nothing


def test_mixcse_mixed_negative_is_a_constant():
  q = jnp.asarray(RNG.normal(size=(2, 4)), jnp.float32)
  p = jnp.asarray(RNG.normal(size=(2, 3, 4)), jnp.float32)
  j = jnp.array([1, 2])
  tau = 0.05

  def unit(x):
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True)

  mixed_const = unit(0.2 * unit(p[:, 0]) + 0.8 * unit(p[jnp.arange(2), j]))

  def with_constant_mixed(q, p):
    qu, pu = unit(q), unit(p).reshape(6, 4)
    logits = jnp.concatenate([qu @ pu.T, jnp.sum(qu * mixed_const, -1)[:, None]], -1) / tau
    return -(jax.nn.log_softmax(logits)[jnp.arange(2), jnp.array([0, 3])]).sum()

  def mixcse(q, p):
    return terms.mixcse_contrastive(q, p, j).sum()

  np.testing.assert_allclose(mixcse(q, p), with_constant_mixed(q, p), rtol=1e-5)
  g_q, g_p = jax.grad(mixcse, argnums=(0, 1))(q, p)
  w_q, w_p = jax.grad(with_constant_mixed, argnums=(0, 1))(q, p)
  np.testing.assert_allclose(g_q, w_q, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(g_p, w_p, rtol=1e-4, atol=1e-5)

  # Without the stop-gradient the passages' gradients differ: the check can fail.
  def mixcse_no_sg(q, p):
    mixed = unit(0.2 * unit(p[:, 0]) + 0.8 * unit(p[jnp.arange(2), j]))
    qu, pu = unit(q), unit(p).reshape(6, 4)
    logits = jnp.concatenate([qu @ pu.T, jnp.sum(qu * mixed, -1)[:, None]], -1) / tau
    return -(jax.nn.log_softmax(logits)[jnp.arange(2), jnp.array([0, 3])]).sum()
  assert not np.allclose(jax.grad(mixcse_no_sg, argnums=1)(q, p), g_p, rtol=1e-4, atol=1e-5)


def test_draw_hard_negative_picks_real_hard_negatives():
  mask = jnp.array([[1, 1, 0, 1], [1, 0, 1, 0], [1, 0, 0, 0]], bool)
  draws = np.stack([np.asarray(terms.draw_hard_negative(jax.random.PRNGKey(s), mask))
                    for s in range(40)])
  assert set(draws[:, 0]) == {1, 3}
  assert set(draws[:, 1]) == {2}
  assert set(draws[:, 2]) <= {1, 2, 3}  # no real hard negative: its column is dropped later
  with pytest.raises(ValueError, match="K >= 2"):
    terms.draw_hard_negative(jax.random.PRNGKey(0), jnp.ones((2, 1), bool))


def np_jsd(p, q):
  m = (p + q) / 2
  kl = lambda a, b: np.sum(np.where(a > 0, a * (np.log(np.where(a > 0, a, 1)) - np.log(b)), 0),
                           axis=-1)
  return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def test_multi_positive_contrastive_equals_numpy_with_two_positives():
  scores = RNG.normal(size=(3, 7)).astype(np.float32)
  candidates = np.ones((3, 7), bool)
  candidates[1, 5:] = False
  positives = np.zeros((3, 7), bool)
  positives[0, [0, 3]] = True
  positives[1, [1, 2]] = True
  positives[2, 6] = True
  got = terms.multi_positive_contrastive(scores, positives, candidates)
  logp = np_log_softmax(scores, candidates)
  want = [-logp[b][positives[b]].sum() for b in range(3)]
  np.testing.assert_allclose(got, want, rtol=1e-5)
  none = terms.multi_positive_contrastive(scores, np.zeros((3, 7), bool), candidates)
  np.testing.assert_array_equal(none, 0.0)


def _np_lexa(anchor, positives, pos_mask, negatives, neg_topic, topic, neg_mask):
  out = []
  for g in range(anchor.shape[0]):
    n_scores = [anchor[g] @ negatives[m] for m in range(len(negatives))
                if neg_topic[m] != topic[g] and neg_mask[m]]
    total = 0.0
    for i in range(positives.shape[1]):
      if not pos_mask[g, i]:
        continue
      s = anchor[g] @ positives[g, i]
      total += -(s - np.log(np.sum(np.exp(n_scores)) + np.exp(s)))
    out.append(total)
  return np.array(out)


def test_lexa_contrastive_equals_eq1_with_the_anchor_term():
  """n = 3 documents per topic (the anchor's own slot a re-masked copy), m = 4 other-topic
  documents, plus a mined same-topic document that must stay out of the denominator."""
  d = 5
  anchor = RNG.normal(size=(2, d)).astype(np.float64) / 2
  positives = RNG.normal(size=(2, 3, d)).astype(np.float64) / 2
  pos_mask = np.array([[1, 1, 1], [1, 1, 0]], bool)
  negatives = RNG.normal(size=(5, d)).astype(np.float64) / 2
  neg_topic = np.array([7, 7, 9, 8, 3])  # 3 = group 0's own topic (a mined same-topic doc)
  topic = np.array([3, 4])
  neg_mask = np.array([1, 1, 1, 0, 1], bool)
  got = terms.lexa_contrastive(anchor, positives, pos_mask, negatives, neg_topic, topic, neg_mask)
  want = _np_lexa(anchor, positives, pos_mask, negatives, neg_topic, topic, neg_mask)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  # The same-topic document gets no gradient from its own group (it is in no denominator).
  grad = jax.grad(lambda n: terms.lexa_contrastive(
      anchor[:1], positives[:1], pos_mask[:1], n, neg_topic, topic[:1], neg_mask).sum())(
          negatives.astype(np.float32))
  assert np.all(np.asarray(grad)[4] == 0) and np.abs(np.asarray(grad)[0]).sum() > 0


def test_lexa_contrastive_never_puts_a_same_topic_document_in_a_denominator():
  """Property: moving a same-topic candidate anywhere never changes the loss."""
  rng = np.random.default_rng(3)
  for _ in range(20):
    g, n, m, d = 3, 2, 6, 4
    topic = np.arange(g)
    neg_topic = rng.integers(0, g, size=m)
    args = [rng.normal(size=(g, d)), rng.normal(size=(g, n, d)), np.ones((g, n), bool)]
    negatives = rng.normal(size=(m, d))
    base = np.asarray(terms.lexa_contrastive(*args, negatives, neg_topic, topic))
    moved = negatives + 10 * rng.normal(size=(m, d))
    for row in range(g):
      same = neg_topic == row
      mixed = np.where(same[:, None], moved, negatives)
      got = np.asarray(terms.lexa_contrastive(*args, mixed, neg_topic, topic))
      np.testing.assert_allclose(got[row], base[row], rtol=1e-5)


def test_answer_jsd_equals_numpy_and_vanishes_for_identical_inputs():
  a = RNG.normal(size=(2, 4, 9)).astype(np.float32)
  b = RNG.normal(size=(2, 4, 9)).astype(np.float32)
  w = np.array([[1, 1, 1, 0], [1, 0, 0, 0]], np.float32)
  got = terms.answer_jsd(a, b, w)
  p, q = np.exp(np_log_softmax(a)), np.exp(np_log_softmax(b))
  want = (np_jsd(p, q) * w).sum(-1)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  np.testing.assert_allclose(terms.answer_jsd(a, a, w), 0.0, atol=1e-6)
  np.testing.assert_allclose(terms.answer_jsd(a, b, w), terms.answer_jsd(b, a, w), rtol=1e-6)
  assert np.all(np.asarray(got) <= np.log(2) * w.sum(-1) + 1e-6)
  ga, gb = jax.grad(lambda x, y: terms.answer_jsd(x, y, w).sum(), argnums=(0, 1))(a, b)
  assert np.abs(np.asarray(ga)).sum() > 0 and np.abs(np.asarray(gb)).sum() > 0


def test_relevance_jsd_equals_numpy_on_random_distributions():
  r1 = RNG.dirichlet(np.ones(5), size=3).astype(np.float32)
  r2 = RNG.dirichlet(np.ones(5), size=3).astype(np.float32)
  mask = np.ones((3, 5), bool)
  np.testing.assert_allclose(terms.relevance_jsd(r1, r2, mask), np_jsd(r1, r2), rtol=1e-4)
  np.testing.assert_allclose(terms.relevance_jsd(r1, r1, mask), 0.0, atol=1e-6)
