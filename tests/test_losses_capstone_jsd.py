"""The capstone's JSD objective (peer-methods.md 1.3 f, g): reader CE on q plus
0.1 * (answer JSD + relevance JSD) between q and its translation q' over the same passages and
answer, on the tiny unified model's outputs."""
import jax
import numpy as np
import pytest

from clqa_jax.losses import objectives, terms
from clqa_jax.models import MT5Config, UnifiedConfig, UnifiedModel
from models_testutil import random_params


def _model(mode="class"):
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
  weights = np.ones((b, t), np.float32)
  weights[0, 2] = 0.0
  return {"query_tokens": rng.integers(2, 500, (b, lq)).astype(np.int32),
          "query_translated_tokens": rng.integers(2, 500, (b, lq)).astype(np.int32),
          "passage_tokens": passages, "passage_rows": rows,
          "decoder_input_tokens": np.concatenate([np.zeros((b, 1), np.int32), targets[:, :-1]],
                                                 1),
          "decoder_target_tokens": targets, "decoder_loss_weights": weights}


@pytest.fixture(scope="module")
def setup():
  model, batch = _model(), _batch()
  params = random_params(model.module, batch["query_tokens"], batch["passage_tokens"],
                         batch["decoder_input_tokens"])
  return model, batch, params


def _forward(model, params, batch, queries):
  return model.forward(params, queries, batch["passage_tokens"], batch["decoder_input_tokens"],
                       rng=None, enable_dropout=False, return_reader_relevance=True)


def test_loss_is_the_terms_on_the_model_outputs(setup):
  model, batch, params = setup
  objective = objectives.objective_by_name("capstone_jsd")
  assert objective.jsd_weight == 0.1
  loss, m = model.loss_fn(params, batch, None, objective=objective, num_questions=4,
                          enable_dropout=False)
  q = _forward(model, params, batch, batch["query_tokens"])
  qt = _forward(model, params, batch, batch["query_translated_tokens"])
  mask = batch["passage_rows"] >= 0
  ce = np.sum(terms.reader_cross_entropy(q["logits"], batch["decoder_target_tokens"],
                                         batch["decoder_loss_weights"])) / 4
  ajsd = np.sum(terms.answer_jsd(q["logits"], qt["logits"], batch["decoder_loss_weights"])) / 4
  rjsd = np.sum(terms.relevance_jsd(q["reader_relevance"], qt["reader_relevance"], mask)) / 4
  assert ajsd > 1e-4 and rjsd > 1e-6
  np.testing.assert_allclose([m["loss/reader_ce"], m["loss/answer_jsd"],
                              m["loss/relevance_jsd"], loss],
                             [ce, ajsd, rjsd, ce + 0.1 * (ajsd + rjsd)], rtol=2e-4, atol=1e-7)


def test_zero_jsd_when_the_translation_is_the_question(setup):
  model, batch, params = setup
  same = dict(batch, query_translated_tokens=batch["query_tokens"])
  loss, m = model.loss_fn(params, same, None, objective=objectives.CapstoneJsdObjective(),
                          num_questions=2, enable_dropout=False)
  np.testing.assert_allclose([m["loss/answer_jsd"], m["loss/relevance_jsd"]], 0.0, atol=1e-6)
  np.testing.assert_allclose(loss, m["loss/reader_ce"], rtol=1e-6)
  # The JSDs train both rows: q' gets gradient through them.
  grads = jax.grad(lambda p: model.loss_fn(p, batch, None,
                                           objective=objectives.CapstoneJsdObjective(1.0),
                                           num_questions=2, enable_dropout=False)[1][
                                               "loss/answer_jsd"])(params)
  assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(grads))


def test_needs_the_translated_queries_and_a_distribution_relevance(setup):
  model, batch, params = setup
  no_translation = {k: v for k, v in batch.items() if k != "query_translated_tokens"}
  with pytest.raises(KeyError, match="query_translated_tokens"):
    model.loss_fn(params, no_translation, None, objective=objectives.CapstoneJsdObjective(),
                  num_questions=2)
  with pytest.raises(ValueError, match="fidkd_logits"):
    _model("fidkd_logits").loss_fn(params, batch, None,
                                   objective=objectives.CapstoneJsdObjective(), num_questions=2)
