"""UnifiedConfig.query_encoding: the query re-encoded in every [query; passage] pair (per_pair,
the official CLASS code) or once for all pairs (shared).

Without dropout the two are the same computation; under dropout per_pair draws one dropout
sample of the query per pair and its retrieval vector is the mean of the K per-pair vectors.
"""
import dataclasses
import functools

import jax
import numpy as np
import pytest

from clqa_jax.losses import objectives
from clqa_jax.models import MT5Config, UnifiedConfig, UnifiedModel, UnifiedRetrieverReader
from clqa_jax.trainer.synthetic_data import synthetic_batch
from models_testutil import random_params

B, K = 2, 4


def _config(encoding, dropout_rate=0.1, chunk=None):
  return UnifiedConfig(mt5=MT5Config.preset("tiny", vocab_size=128, num_encoder_layers=2,
                                            num_decoder_layers=1, dropout_rate=dropout_rate),
                       query_encoding=encoding, passage_chunk_size=chunk)


@pytest.fixture(scope="module")
def setup():
  batch = synthetic_batch(0, B, K, stage1=False)
  model = UnifiedRetrieverReader(_config("per_pair"))
  params = random_params(model, batch["query_tokens"], batch["passage_tokens"],
                         batch["decoder_input_tokens"])
  return batch, params


def _encode(config, params, batch, enable_dropout, seed=1):
  module = UnifiedRetrieverReader(config)
  fn = jax.jit(functools.partial(module.apply, method="encode_for_reader",
                                 enable_dropout=enable_dropout))
  return jax.tree.map(np.asarray, fn({"params": params}, batch["query_tokens"],
                                     batch["passage_tokens"],
                                     rngs={"dropout": jax.random.PRNGKey(seed)}))


def _loss(config, params, batch, enable_dropout):
  model = UnifiedModel.from_config(config)
  fn = jax.jit(lambda p, b: model.loss_fn(p, b, jax.random.PRNGKey(2),
                                          objective=objectives.MlqaObjective(),
                                          num_questions=B, enable_dropout=enable_dropout)[0])
  return float(fn(params, batch))


def test_default_is_the_official_per_pair():
  assert UnifiedConfig().query_encoding == "per_pair"
  assert UnifiedConfig.from_dict(_config("shared").to_dict()).query_encoding == "shared"
  with pytest.raises(ValueError, match="query_encoding='pairwise'"):
    UnifiedConfig(query_encoding="pairwise")


@pytest.mark.parametrize("chunk", [None, 2])
def test_without_dropout_both_encodings_agree(setup, chunk):
  """Eval mode, and training mode with dropout rate 0 (the per-pair path runs): same numbers."""
  batch, params = setup
  with jax.default_matmul_precision("highest"):
    reference = _encode(_config("shared"), params, batch, False)
    ref_loss = _loss(_config("shared"), params, batch, False)
    for encoding in ("per_pair", "shared"):
      for config, dropout in ((_config(encoding, chunk=chunk), False),
                              (_config(encoding, 0.0, chunk=chunk), True)):
        out = _encode(config, params, batch, dropout)
        for name in ("query_vectors", "query_pair_vectors", "passage_vectors", "memory"):
          np.testing.assert_allclose(out[name], reference[name], atol=1e-5,
                                     err_msg=f"{encoding} {name} dropout={dropout}")
        np.testing.assert_allclose(_loss(config, params, batch, dropout), ref_loss, rtol=1e-5)


def test_per_pair_averages_k_dropout_samples(setup):
  batch, params = setup
  out = _encode(_config("per_pair"), params, batch, True)
  pairs = out["query_pair_vectors"]                                    # [B, K, D]
  assert pairs.shape == (B, K, out["query_vectors"].shape[-1])
  for k in range(1, K):            # one dropout sample per pair: the copies differ
    assert not np.allclose(pairs[:, 0], pairs[:, k], atol=1e-3)
  np.testing.assert_allclose(out["query_vectors"], pairs.mean(axis=1), rtol=1e-5, atol=1e-6)
  # The eval-mode vector is none of the samples.
  eval_vectors = _encode(_config("per_pair"), params, batch, False)["query_vectors"]
  assert not np.allclose(out["query_vectors"], eval_vectors, atol=1e-3)


def test_shared_uses_one_sample_for_every_pair(setup):
  batch, params = setup
  out = _encode(_config("shared"), params, batch, True)
  pairs = out["query_pair_vectors"]
  np.testing.assert_array_equal(pairs, np.broadcast_to(out["query_vectors"][:, None],
                                                       pairs.shape))
  per_pair = _encode(_config("per_pair"), params, batch, True)
  assert not np.allclose(per_pair["query_vectors"], out["query_vectors"], atol=1e-3)
  assert dataclasses.replace(_config("shared"), query_encoding="per_pair") == _config("per_pair")
