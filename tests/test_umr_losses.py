"""UMR's in-batch KL term (peer-methods 4.3) against numpy: oracles O2 (zero teacher mass on other
questions' passages; B = 1 is a KL over C_i) and O3 (10 multiplies the teacher logits), with the
teacher scores constant under jax.grad."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from clqa_jax.losses import terms

RNG = np.random.default_rng(4)


def np_log_softmax(x, mask):
  x = np.where(mask, np.asarray(x, np.float64), -np.inf)
  z = x - x.max(axis=-1, keepdims=True)
  return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def np_inbatch_kl(t_BC, s_BN, mask_BC, multiplier=10.0):
  b, c = t_BC.shape
  out = []
  for i in range(b):
    p = np.zeros(b * c)                       # zero mass on other questions' passages
    if mask_BC[i].any():
      p[i * c:(i + 1) * c] = np.exp(np_log_softmax(multiplier * t_BC[i], mask_BC[i]))
    log_r = np_log_softmax(s_BN[i], mask_BC.reshape(-1))
    out.append(sum(p[n] * (np.log(p[n]) - log_r[n]) for n in range(b * c) if p[n] > 0))
  return np.array(out)


def _case(b=3, c=4):
  t = RNG.normal(size=(b, c)).astype(np.float32) * 0.3
  s = RNG.normal(size=(b, b * c)).astype(np.float32)
  mask = np.ones((b, c), bool)
  if b > 2:
    mask[1, c - 1] = mask[2, 0] = False
  return t, s, mask


def test_inbatch_teacher_kl_matches_numpy():
  t, s, mask = _case()
  got = terms.inbatch_teacher_kl(t, s, mask)
  np.testing.assert_allclose(got, np_inbatch_kl(t, s, mask), rtol=1e-5, atol=1e-6)
  # A question whose candidates are all padding contributes 0.
  mask[0] = False
  got = terms.inbatch_teacher_kl(t, s, mask)
  assert got[0] == 0.0
  np.testing.assert_allclose(got, np_inbatch_kl(t, s, mask), rtol=1e-5, atol=1e-6)


def test_single_question_is_a_kl_over_its_candidates():
  t, s, mask = _case(b=1, c=5)
  p = np.exp(np_log_softmax(10.0 * t[0], mask[0]))
  r = np.exp(np_log_softmax(s[0], mask[0]))
  want = sum(p[j] * np.log(p[j] / r[j]) for j in range(5))
  np.testing.assert_allclose(terms.inbatch_teacher_kl(t, s, mask), [want], rtol=1e-5)


def test_multiplier_scales_the_teacher_logits():
  t, s, mask = _case()
  ten = terms.inbatch_teacher_kl(t, s, mask)
  np.testing.assert_allclose(ten, terms.inbatch_teacher_kl(10.0 * t, s, mask, multiplier=1.0),
                             rtol=1e-5)
  np.testing.assert_allclose(terms.inbatch_teacher_kl(t, s, mask, multiplier=1.0),
                             np_inbatch_kl(t, s, mask, multiplier=1.0), rtol=1e-5, atol=1e-6)
  assert not np.allclose(ten, terms.inbatch_teacher_kl(t, s, mask, multiplier=1.0))


def test_gradients_reach_only_the_student():
  t, s, mask = _case()
  loss = lambda t, s: jnp.sum(terms.inbatch_teacher_kl(t, s, mask))
  g_t, g_s = jax.grad(loss, argnums=(0, 1))(jnp.asarray(t), jnp.asarray(s))
  np.testing.assert_array_equal(np.asarray(g_t), 0.0)
  # dL_i/ds_in = r_i(n) - p_i(n) over the real passages.
  b, c = t.shape
  want = np.zeros_like(s, dtype=np.float64)
  flat = mask.reshape(-1)
  for i in range(b):
    p = np.zeros(b * c)
    p[i * c:(i + 1) * c] = np.exp(np_log_softmax(10.0 * t[i], mask[i]))
    want[i] = np.where(flat, np.exp(np_log_softmax(s[i], flat)) - p, 0.0)
  np.testing.assert_allclose(np.asarray(g_s), want, atol=1e-5)


def test_umr_kd_objective_is_the_term_on_the_retrieval_vectors():
  from clqa_jax.losses import objectives
  from fixtures.trainer.tiny import tiny_model

  model = tiny_model()
  b, c, lq, lp = 2, 3, 5, 7
  params = model.get_initial_variables(jax.random.PRNGKey(0), {
      "query_tokens": (1, lq), "passage_tokens": (1, 1, lp),
      "decoder_input_tokens": (1, 2)})["params"]
  batch = {"query_tokens": RNG.integers(2, 128, (b, lq)).astype(np.int32),
           "passage_tokens": RNG.integers(2, 128, (b, c, lp)).astype(np.int32),
           "passage_rows": np.array([[0, 1, 2], [3, 4, -1]], np.int32),
           objectives.UMR_TEACHER_SCORES: RNG.normal(size=(b, c)).astype(np.float32)}
  obj = objectives.objective_by_name("umr_kd")
  loss, metrics = obj.loss(params, batch, model=model, rng=None, num_questions=2 * b,
                           enable_dropout=False)
  q = np.asarray(model.embed_queries(params, batch["query_tokens"]), np.float64)
  p = np.asarray(model.embed_passages(params, batch["passage_tokens"].reshape(b * c, lp)),
                 np.float64)
  want = np_inbatch_kl(batch[objectives.UMR_TEACHER_SCORES], q @ p.T,
                       batch["passage_rows"] >= 0).sum() / (2 * b)
  np.testing.assert_allclose(loss, want, rtol=1e-4)
  assert set(metrics) == {"loss", "loss/inbatch_teacher_kl"}
  # Train mode with dropout runs and differs from eval mode.
  train_loss, _ = obj.loss(params, batch, model=model, rng=jax.random.PRNGKey(1),
                           num_questions=2 * b, enable_dropout=True)
  assert np.isfinite(train_loss)
