"""The capstone's two-way distillation (reference/peer-methods.md 1.3 c, d): the FiD-KD term
against a numpy port of FiD's retriever loss (torch KLDivLoss() default mean), the forward KL
against numpy, the objectives' sums, and where their gradients go in the unified model."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clqa_jax.losses import objectives, terms
from clqa_jax.models import MT5Config, UnifiedConfig, UnifiedModel
from models_testutil import random_params

RNG = np.random.default_rng(7)


def np_log_softmax(x, mask=None):
  x = np.asarray(x, np.float64)
  if mask is not None:
    x = np.where(mask, x, -np.inf)
  z = x - x.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def np_fid_retriever_loss(g, s, d):
  """FiD's Retriever.kldivloss: KLDivLoss()(log_softmax(s / sqrt(d)), softmax(g)), i.e. the
  element-wise target * (log target - input), averaged over every element."""
  target = np.exp(np_log_softmax(g))
  pred = np_log_softmax(s / np.sqrt(d))
  return np.mean(target * (np.log(target) - pred))


def test_fidkd_is_fid_kldivloss_with_the_mean_over_b_times_k():
  b, k, d = 3, 5, 16
  g = RNG.normal(size=(b, k)).astype(np.float32) * 3
  s = RNG.normal(size=(b, k)).astype(np.float32) * 4
  per_row = np.asarray(terms.fidkd_distillation(g, s, np.ones((b, k), bool), d))
  assert per_row.shape == (b,)
  np.testing.assert_allclose(per_row.mean(), np_fid_retriever_loss(g, s, d), rtol=1e-5)
  # A padding passage leaves both softmaxes and adds a zero element to the mean.
  mask = np.ones((b, k), bool)
  mask[1, 3:] = False
  got = np.asarray(terms.fidkd_distillation(g, s, mask, d))
  want = np_fid_retriever_loss(g[1:2, :3], s[1:2, :3], d) * 3 / k
  np.testing.assert_allclose(got[1], want, rtol=1e-5)
  # Only the retriever learns: no gradient into the reader's scores.
  grad_g, grad_s = jax.grad(lambda g, s: jnp.sum(terms.fidkd_distillation(g, s, mask, d)),
                            argnums=(0, 1))(g, s)
  assert np.all(np.asarray(grad_g) == 0.0) and np.any(np.asarray(grad_s) != 0.0)


def test_forward_kl_is_kl_of_the_retriever_softmax_to_the_attention():
  b, k = 3, 4
  mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]], bool)
  s = RNG.normal(size=(b, k)).astype(np.float32) * 2
  a = np.where(mask, RNG.dirichlet(np.ones(k), size=b), 0.0).astype(np.float32)
  a = a / a.sum(-1, keepdims=True)
  got = np.asarray(terms.retriever_to_reader_distillation(s, a, mask))
  p = np.exp(np_log_softmax(s, mask))
  want = np.where(mask, p * (np.log(np.where(mask, p, 1)) - np.log(np.where(mask, a, 1))),
                  0).sum(-1)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  grad_s, grad_a = jax.grad(
      lambda s, a: jnp.sum(terms.retriever_to_reader_distillation(s, a, mask)),
      argnums=(0, 1))(s, a)
  assert np.all(np.asarray(grad_s) == 0.0) and np.any(np.asarray(grad_a) != 0.0)


def _outputs_and_batch(b=3, k=4, t=5, v=11, d=8):
  rows = np.array([[0, 1, 2, 3], [4, 5, -1, -1], [6, 7, 8, 9]], np.int32)
  mask = rows >= 0
  targets = RNG.integers(2, v, size=(b, t))
  w = np.array([[1, 1, 1, 0, 0], [1] * 5, [1, 1, 0, 0, 0]], np.float32)
  outputs = {"logits": RNG.normal(size=(b, t, v)).astype(np.float32),
             "reader_relevance": RNG.normal(size=(b, k)).astype(np.float32),
             "retrieval_scores": RNG.normal(size=(b, k)).astype(np.float32),
             "query_vectors": np.zeros((b, d), np.float32)}
  batch = {"decoder_target_tokens": targets, "decoder_loss_weights": w, "passage_rows": rows}
  return outputs, batch, mask


def _ce(outputs, batch):
  return np.asarray(terms.reader_cross_entropy(outputs["logits"],
                                               batch["decoder_target_tokens"],
                                               batch["decoder_loss_weights"]))


def test_objectives_sum_their_terms_over_the_global_batch():
  outputs, batch, mask = _outputs_and_batch()
  b = mask.shape[0]
  ce = _ce(outputs, batch).mean()
  kd = np.asarray(terms.fidkd_distillation(outputs["reader_relevance"],
                                           outputs["retrieval_scores"], mask, 8)).mean()
  loss, m = objectives.FidKdObjective().loss_from_outputs(outputs, batch, num_questions=b)
  np.testing.assert_allclose([m["loss/reader_ce"], m["loss/fidkd"], loss], [ce, kd, kd],
                             rtol=1e-6)
  loss, _ = objectives.FidKdObjective(reader_weight=1.0).loss_from_outputs(
      outputs, batch, num_questions=2 * b)
  np.testing.assert_allclose(loss, (ce + kd) / 2, rtol=1e-6)
  relevance = np.where(mask, np.exp(np_log_softmax(outputs["reader_relevance"], mask)), 0.0)
  fwd = dict(outputs, reader_relevance=relevance.astype(np.float32))
  kl = np.asarray(terms.retriever_to_reader_distillation(fwd["retrieval_scores"], relevance,
                                                         mask)).mean()
  loss, m = objectives.CapstoneForwardObjective().loss_from_outputs(fwd, batch, num_questions=b)
  np.testing.assert_allclose([m["loss/reader_kl"], loss], [kl, ce + 0.01 * kl], rtol=1e-6)
  assert objectives.objective_by_name("fidkd").name == "fidkd"
  assert objectives.objective_by_name("capstone_forward").reader_kl_weight == 0.01


def _model(mode):
  mt5 = MT5Config.preset("tiny", num_encoder_layers=2, num_decoder_layers=2, dropout_rate=0.0,
                         scan_layers=True)
  return UnifiedModel.from_config(UnifiedConfig(mt5=mt5, reader_relevance_mode=mode))


def _batch():
  rng = np.random.default_rng(0)
  b, k, lq, lp, t = 2, 3, 4, 5, 3
  passages = rng.integers(2, 500, (b, k, lp)).astype(np.int32)
  passages[1, 2] = 0
  rows = np.arange(b * k, dtype=np.int32).reshape(b, k)
  rows[1, 2] = -1
  targets = rng.integers(2, 500, (b, t)).astype(np.int32)
  return {"query_tokens": rng.integers(2, 500, (b, lq)).astype(np.int32),
          "passage_tokens": passages, "passage_rows": rows,
          "decoder_input_tokens": np.concatenate([np.zeros((b, 1), np.int32), targets[:, :-1]],
                                                 1),
          "decoder_target_tokens": targets, "decoder_loss_weights": np.ones((b, t), np.float32)}


def test_gradients_flow_one_way_in_the_unified_model():
  """FiD-KD: no gradient into the decoder; forward KL: none into query_proj / passage_proj."""
  batch = _batch()
  fid_model, fwd_model = _model("fidkd_logits"), _model("all_layers_probs")
  params = random_params(fid_model.module, batch["query_tokens"], batch["passage_tokens"],
                         batch["decoder_input_tokens"])

  def grads(params):
    fid = objectives.FidKdObjective()
    fwd = objectives.CapstoneForwardObjective()
    kd_grad = jax.grad(lambda p: fid_model.loss_fn(p, batch, None, objective=fid,
                                                   num_questions=2,
                                                   enable_dropout=False)[1]["loss/fidkd"])(params)
    kl_grad = jax.grad(lambda p: fwd_model.loss_fn(p, batch, None, objective=fwd,
                                                   num_questions=2,
                                                   enable_dropout=False)[1]["loss/reader_kl"])(params)
    return kd_grad, kl_grad

  kd_grad, kl_grad = jax.tree.map(np.asarray, jax.jit(grads)(params))
  for leaf in jax.tree.leaves(kd_grad["decoder"]):
    assert np.all(leaf == 0.0)
  assert np.any(kd_grad["retriever"]["query_proj"] != 0.0)
  assert np.any(kd_grad["retriever"]["passage_proj"] != 0.0)
  for name in ("query_proj", "passage_proj"):
    assert np.all(kl_grad["retriever"][name] == 0.0), name
  assert any(np.any(leaf != 0.0) for leaf in jax.tree.leaves(kl_grad["decoder"]))
  # Each objective refuses a model whose relevance is not the one its term is defined on.
  with pytest.raises(ValueError, match="reader_relevance_mode = 'fidkd_logits'"):
    fwd_model.loss_fn(params, batch, None, objective=objectives.FidKdObjective(),
                      num_questions=2)
  with pytest.raises(ValueError, match="reader_relevance_mode = 'all_layers_probs'"):
    fid_model.loss_fn(params, batch, None, objective=objectives.CapstoneForwardObjective(),
                      num_questions=2)
