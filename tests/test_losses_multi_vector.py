"""The MaxSim student (UnifiedConfig.retriever_head, the official student without
``--de_avg_pooling``): scores equal a numpy MaxSim, divided by the query length in stage 2
(mlqa) and not in stage 1 (clr_pt); the forward's token vectors are layer R's head states."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clqa_jax.losses import objectives
from clqa_jax.losses.teacher import Teacher
from clqa_jax.models import MT5Config, UnifiedConfig, UnifiedModel, UnifiedRetrieverReader
from clqa_jax.models.unified import own_maxsim_scores
from clqa_jax.trainer.synthetic_data import synthetic_batch
from models_testutil import random_params

B, K, LQ, LP, DK = 3, 4, 5, 7, 6


def _numpy_maxsim(q, qm, p, pm):
  """sum over real query tokens of the max over real passage tokens of <q_t, p_u>."""
  sims = q[qm] @ p[pm].T
  return sims.max(axis=1).sum()


@pytest.fixture(scope="module")
def tokens_and_vectors():
  rng = np.random.default_rng(0)
  q = rng.normal(size=(B, LQ, DK)).astype(np.float32)
  p = rng.normal(size=(B, K, LP, DK)).astype(np.float32)
  q_len = np.array([5, 2, 3])
  p_len = rng.integers(1, LP + 1, size=(B, K))
  p_len[1, 2] = 0                                         # a padding passage
  query_tokens = np.where(np.arange(LQ) < q_len[:, None], 7, 0).astype(np.int32)
  passage_tokens = np.where(np.arange(LP) < p_len[..., None], 9, 0).astype(np.int32)
  return q, p, query_tokens, passage_tokens


def test_stage2_scores_are_maxsim_over_query_length(tokens_and_vectors):
  q, p, query_tokens, passage_tokens = tokens_and_vectors
  qm, pm = query_tokens > 0, passage_tokens > 0
  sums = np.asarray(own_maxsim_scores(q, qm, p, pm))
  outputs = {"retrieval_scores": jnp.asarray(sums), "query_token_vectors": q}
  got = np.asarray(objectives.MlqaObjective.retrieval_scores(
      outputs, {"query_tokens": query_tokens}))
  for b in range(B):
    for k in range(K):
      if not pm[b, k].any():
        assert sums[b, k] == 0.0                          # padding passage: finite, masked later
        continue
      want = _numpy_maxsim(q[b], qm[b], p[b, k], pm[b, k])
      np.testing.assert_allclose(sums[b, k], want, rtol=1e-5)
      np.testing.assert_allclose(got[b, k], want / qm[b].sum(), rtol=1e-5)
  # A single-vector student's scores are used as they are.
  plain = {"retrieval_scores": jnp.asarray(sums)}
  np.testing.assert_array_equal(objectives.MlqaObjective.retrieval_scores(
      plain, {"query_tokens": query_tokens}), sums)


def test_stage1_scores_are_unnormalised_maxsim_over_the_batch(tokens_and_vectors):
  q, p, query_tokens, passage_tokens = tokens_and_vectors
  qm, pm = query_tokens > 0, passage_tokens > 0
  got = np.asarray(objectives.ClrPtObjective.student_scores(q, p, qm, pm))
  assert got.shape == (B, B * K)
  for b in range(B):
    for n in range(B * K):
      pb, pk = divmod(n, K)
      if pm[pb, pk].any():
        np.testing.assert_allclose(got[b, n], _numpy_maxsim(q[b], qm[b], p[pb, pk], pm[pb, pk]),
                                   rtol=1e-5)
  with pytest.raises(ValueError, match="need the token masks"):
    objectives.ClrPtObjective.student_scores(q, p, None, None)


@pytest.fixture(scope="module")
def maxsim_model():
  config = UnifiedConfig(mt5=MT5Config.preset("tiny", vocab_size=128, num_encoder_layers=2,
                                              num_decoder_layers=1), retriever_head=2)
  batch = synthetic_batch(0, 2, 3, stage1=True)
  module = UnifiedRetrieverReader(config)
  params = random_params(module, batch["query_tokens"], batch["passage_tokens"],
                         batch["decoder_input_tokens"])
  return UnifiedModel(module), jax.tree.map(jnp.asarray, params), batch


def test_forward_token_vectors_are_the_head_states(maxsim_model):
  model, params, batch = maxsim_model
  with jax.default_matmul_precision("highest"):
    out = jax.jit(model.forward)(params, batch["query_tokens"], batch["passage_tokens"],
                                 batch["decoder_input_tokens"])
    q_states = model.token_states(params, batch["query_tokens"], head=2, is_query=True)
    p_states = model.token_states(params, batch["passage_tokens"], head=2, is_query=False)
    method = model.module.apply({"params": params}, batch["query_tokens"],
                                batch["passage_tokens"], 2, method="maxsim_scores")
  np.testing.assert_allclose(out["query_token_vectors"], q_states, atol=1e-5)
  np.testing.assert_allclose(out["passage_token_vectors"], p_states, atol=1e-5)
  np.testing.assert_allclose(out["retrieval_scores"], method, rtol=1e-5, atol=1e-5)
  # The padding passage of question 0 scores 0, not -inf.
  assert float(out["retrieval_scores"][0, -1]) == 0.0
  with pytest.raises(ValueError, match="retriever_head=2"):
    model.embed_queries(params, batch["query_tokens"])
  with pytest.raises(ValueError, match="retriever_head=9 must be None or a head index"):
    UnifiedConfig(mt5=model.config.mt5, retriever_head=9)
  assert UnifiedConfig.from_dict(model.config.to_dict()) == model.config
  with pytest.raises(ValueError, match="scorer='dense' needs a single-vector teacher"):
    Teacher(model=model)


def test_objectives_use_the_maxsim_scores(maxsim_model):
  """The mlqa KL and the clr_pt retrieval KLs are computed from the normalised / summed
  MaxSim scores of the forward's token vectors."""
  model, params, batch = maxsim_model
  outputs = model.forward(params, batch["query_tokens"], batch["passage_tokens"],
                          batch["decoder_input_tokens"])
  mlqa = objectives.MlqaObjective()
  _, metrics = mlqa.loss_from_outputs(outputs, batch, 2)
  scores = outputs["retrieval_scores"] / jnp.sum(batch["query_tokens"] > 0, -1)[:, None]
  mask = batch["passage_rows"] >= 0
  log_r = jax.nn.log_softmax(jnp.where(mask, scores, -1e9), axis=-1)
  a = outputs["reader_relevance"]
  want = jnp.sum(jnp.where(mask, a * (jnp.log(jnp.maximum(a, 1e-30)) - log_r), 0.0)) / 2
  np.testing.assert_allclose(metrics["loss/retriever_kl"], want, rtol=1e-4)

  clr = objectives.ClrPtObjective()
  teacher = Teacher(model=UnifiedModel.from_config(
      UnifiedConfig(mt5=model.config.mt5)), scorer="maxsim", maxsim_head=2)
  loss, m = jax.jit(functools.partial(clr.loss, model=model, rng=None, num_questions=2,
                                      teacher=teacher, enable_dropout=False))(
      params, batch, teacher_params=params)
  en, xx = clr.student_outputs(model, params, batch, rng=None, enable_dropout=False)
  assert en["query_token_vectors"].shape[-1] == model.config.mt5.d_kv
  assert np.isfinite(float(loss)) and float(m["loss/retrieval_kd_xx"]) > 0
  # The teacher here is the student's own MaxSim (same params, head, queries): unnormalised
  # stage-1 scores equal the teacher's, so the English KD vanishes (normalised ones would not).
  np.testing.assert_allclose(m["loss/retrieval_kd_en"], 0.0, atol=1e-5)
