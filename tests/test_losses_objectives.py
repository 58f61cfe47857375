"""The stage objectives (clr_pt, mlqa) against direct numpy formulas of class-method.md 3.3/4.3."""
import jax
import numpy as np

from clqa_jax.losses import objectives

RNG = np.random.default_rng(1)


def lsm(x, mask=None):
  x = np.asarray(x, np.float64)
  if mask is not None:
    x = np.where(mask, x, -np.inf)
  z = x - x.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def kl(p, log_r, mask):
  p = np.where(mask, p, 0.0)
  return np.where(p > 0, p * (np.log(np.where(p > 0, p, 1)) - np.where(mask, log_r, 0)), 0).sum(-1)


def ce_tokmean(logits, targets, w):
  lp = lsm(logits)
  tok = -np.take_along_axis(lp, targets[..., None], -1)[..., 0]
  return (tok * w).sum(-1) / w.sum(-1)


def test_mlqa_objective_matches_numpy():
  b, k, t, v = 3, 4, 5, 11
  logits = RNG.normal(size=(b, t, v)).astype(np.float32)
  targets = RNG.integers(2, v, size=(b, t))
  w = np.array([[1, 1, 1, 0, 0], [1] * 5, [1, 1, 0, 0, 0]], np.float32)
  rows = np.array([[0, 1, 2, 3], [4, 5, -1, -1], [6, 7, 8, 9]], np.int32)
  mask = rows >= 0
  rel = np.where(mask, jax.nn.softmax(RNG.normal(size=(b, k))), 0.0).astype(np.float32)
  scores = RNG.normal(size=(b, k)).astype(np.float32)
  batch = {"decoder_target_tokens": targets, "decoder_loss_weights": w, "passage_rows": rows}
  outputs = {"logits": logits, "reader_relevance": rel, "retrieval_scores": scores}
  obj = objectives.MlqaObjective()
  loss, m = obj.loss_from_outputs(outputs, batch, num_questions=b)
  ce = ce_tokmean(logits, targets, w).mean()
  kl_ret = kl(rel, lsm(scores, mask), mask).mean()
  np.testing.assert_allclose(m["loss/reader_ce"], ce, rtol=1e-5)
  np.testing.assert_allclose(m["loss/retriever_kl"], kl_ret, rtol=1e-5)
  np.testing.assert_allclose(loss, ce + 8.0 * kl_ret, rtol=1e-5)
  # Normalised by the global question count: half of a global batch of 2b gives half.
  loss_half, _ = obj.loss_from_outputs(outputs, batch, num_questions=2 * b)
  np.testing.assert_allclose(loss_half, loss / 2, rtol=1e-6)


def test_clr_pt_retrieval_loss_is_global_batchmean_times_lambda():
  b, k, d = 3, 2, 4
  vec = {"query_en": RNG.normal(size=(b, d)), "query_xx": RNG.normal(size=(b, d)),
         "passages_en": RNG.normal(size=(b, k, d)), "passages_xx": RNG.normal(size=(b, k, d))}
  vec = {n: a.astype(np.float32) for n, a in vec.items()}
  teacher = RNG.normal(size=(b, b * k)).astype(np.float32)
  mask = np.array([1, 1, 1, 0, 1, 1], bool)
  obj = objectives.ClrPtObjective()
  loss, m = obj.retrieval_loss(vec, teacher, mask, num_questions=b)
  pe, px = vec["passages_en"].reshape(-1, d), vec["passages_xx"].reshape(-1, d)
  s_en, s_xx = vec["query_en"] @ pe.T, vec["query_xx"] @ px.T
  pt = np.exp(lsm(teacher, mask))
  kd_en = kl(pt, lsm(s_en, mask), mask).sum() / b
  kd_xx = kl(pt, lsm(s_xx, mask), mask).sum() / b
  align = kl(np.exp(lsm(s_en, mask)), lsm(s_xx, mask), mask).sum() / b
  np.testing.assert_allclose(m["loss/retrieval_kd_en"], kd_en, rtol=1e-5)
  np.testing.assert_allclose(m["loss/retrieval_kd_xx"], kd_xx, rtol=1e-5)
  np.testing.assert_allclose(m["loss/retrieval_alignment"], align, rtol=1e-5)
  np.testing.assert_allclose(loss, 8.0 * (kd_en + kd_xx + align), rtol=1e-5)
  # Ablation switch drops the alignment term from the loss.
  loss_na, _ = objectives.ClrPtObjective(cross_lingual_alignment=False).retrieval_loss(
      vec, teacher, mask, num_questions=b)
  np.testing.assert_allclose(loss_na, 8.0 * (kd_en + kd_xx), rtol=1e-5)
  # Stop-gradient: the English vectors get no gradient from the alignment term alone.
  only_align = objectives.ClrPtObjective(teacher_distillation=False)
  g = jax.grad(lambda v: only_align.retrieval_loss(v, teacher, mask, b)[0])(vec)
  assert np.all(np.asarray(g["query_en"]) == 0) and np.all(np.asarray(g["passages_en"]) == 0)
  assert np.abs(np.asarray(g["query_xx"])).sum() > 0


def test_clr_pt_reader_loss_matches_numpy():
  b, k, t, v = 2, 3, 4, 13
  targets = RNG.integers(2, v, size=(b, t))
  w = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], np.float32)
  rows = np.array([[0, 1, 2], [3, 4, -1]], np.int32)
  mask = rows >= 0

  def rel():
    return np.where(mask, jax.nn.softmax(RNG.normal(size=(b, k))), 0.0).astype(np.float32)

  en = {"logits": RNG.normal(size=(b, t, v)).astype(np.float32), "reader_relevance": rel()}
  xx = {"logits": RNG.normal(size=(b, t, v)).astype(np.float32), "reader_relevance": rel()}
  a_t = rel()
  batch = {"decoder_target_tokens": targets, "decoder_loss_weights": w, "passage_rows": rows}
  obj = objectives.ClrPtObjective()
  loss, m = obj.reader_loss(en, xx, batch, a_t, num_questions=b)
  ce = (ce_tokmean(en["logits"], targets, w).sum() + ce_tokmean(xx["logits"], targets, w).sum())
  ce /= 2 * b
  att = (kl(a_t, np.log(np.maximum(en["reader_relevance"], 1e-30)), mask).sum()
         + kl(a_t, np.log(np.maximum(xx["reader_relevance"], 1e-30)), mask).sum()) / (2 * b)
  le, lx = lsm(en["logits"]), lsm(xx["logits"])
  per = (np.exp(le) * (le - lx)).sum(-1)
  lm = ((per * w).sum(-1) / w.sum(-1)).sum() / b
  np.testing.assert_allclose(m["loss/reader_ce"], ce, rtol=1e-5)
  np.testing.assert_allclose(m["loss/attention_kl"], att, rtol=1e-5)
  np.testing.assert_allclose(m["loss/answer_kl"], lm, rtol=1e-5)
  np.testing.assert_allclose(loss, ce + att + lm, rtol=1e-5)
  # The answer KL sends no gradient into the English logits.
  only_lm = objectives.ClrPtObjective(attention_distillation=False)
  g_en = jax.grad(lambda e: only_lm.reader_loss(
      {**en, "logits": e}, xx, batch, a_t, b)[1]["loss/answer_kl"])(en["logits"])
  assert np.all(np.asarray(g_en) == 0)


def test_supervised_retrieval_objective_adds_dpr_nll_of_passage_0():
  b, k, t, v, d = 3, 2, 4, 7, 5
  logits = RNG.normal(size=(b, t, v)).astype(np.float32)
  targets = RNG.integers(2, v, size=(b, t))
  w = np.ones((b, t), np.float32)
  rows = np.array([[0, 1], [2, -1], [4, 5]], np.int32)
  mask = rows >= 0
  q = RNG.normal(size=(b, d)).astype(np.float32)
  p = RNG.normal(size=(b, k, d)).astype(np.float32)
  outputs = {"logits": logits, "reader_relevance": np.where(mask, 0.5, 0.0).astype(np.float32),
             "retrieval_scores": np.einsum("bd,bkd->bk", q, p), "query_vectors": q,
             "passage_vectors": p}
  batch = {"query_tokens": np.ones((b, 3), np.int32), "passage_tokens": np.ones((b, k, 3)),
           "decoder_input_tokens": targets, "decoder_target_tokens": targets,
           "decoder_loss_weights": w, "passage_rows": rows}

  class Model:
    def forward(self, params, *args, **kwargs):
      return outputs

  obj = objectives.SupervisedRetrievalObjective(dpr_weight=2.0)
  loss, m = obj.loss(None, batch, model=Model(), rng=None, num_questions=b)
  want_mlqa, _ = objectives.MlqaObjective().loss_from_outputs(outputs, batch, b)
  scores = np.einsum("bd,nd->bn", q, p.reshape(b * k, d))
  nll = -np.take_along_axis(lsm(scores, mask.reshape(1, -1)), np.arange(b)[:, None] * k, -1)
  np.testing.assert_allclose(m["loss/dpr_nll"], nll.mean(), rtol=1e-5)
  np.testing.assert_allclose(loss, want_mlqa + 2.0 * nll.mean(), rtol=1e-5)


def test_objective_selector():
  assert objectives.objective_by_name("clr_pt").name == "clr_pt"
  assert objectives.objective_by_name("mlqa").retriever_weight == 8.0
  try:
    objectives.objective_by_name("nope")
  except ValueError as e:
    assert "clr_pt" in str(e)
  else:
    raise AssertionError("unknown objective accepted")
