"""encode_corpus driven by a UnifiedModel's embed_passages (any module with the retrieval
contract's encode_passages / encode_queries) through the model adapter."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clqa_jax.index import encode
from clqa_jax.index import model_encoders
from clqa_jax.index import shards
from clqa_jax.models.model_api import UnifiedModel


class BagOfWords(nn.Module):
  """A model with the retrieval contract's two methods: mean embedding, then a projection."""

  @nn.compact
  def __call__(self, tokens, is_query: bool = False):
    emb = nn.Embed(30, 8, name="embed")(tokens)
    mask = (tokens > 0)[..., None]
    pooled = (emb * mask).sum(-2) / jnp.maximum(mask.sum(-2), 1)
    proj = nn.Dense(4, use_bias=False, name="query_proj" if is_query else "passage_proj")
    return nn.with_logical_constraint(proj(pooled), ("batch", "retrieval"))

  def encode_passages(self, passage_tokens):
    return self(passage_tokens, False)

  def encode_queries(self, query_tokens):
    return self(query_tokens, True)


def test_adapter_encodes_with_the_models_passage_method(tmp_path):
  model = BagOfWords()
  tokens = np.random.default_rng(0).integers(0, 30, size=(21, 5)).astype(np.int32)
  params = model.init(jax.random.key(0), tokens[:2], True)["params"]
  params.update(model.init(jax.random.key(0), tokens[:2], False)["params"])
  rules = (("batch", "data"), ("retrieval", None))
  fn = model_encoders.passage_encode_fn(UnifiedModel(model), rules)
  encode.encode_corpus(fn, [(np.arange(21), tokens)], str(tmp_path), params=params,
                       fingerprint="bow", global_batch_size=8, dtype="float16", progress=False)
  _, got = shards.load_embeddings(str(tmp_path), np.float32)
  want = model.apply({"params": params}, tokens, method=BagOfWords.encode_passages)
  np.testing.assert_allclose(got, np.asarray(want), rtol=2e-3, atol=2e-3)
  queries = model_encoders.query_encode_fn(UnifiedModel(model), rules)(params, tokens[:3])
  np.testing.assert_allclose(queries, model.apply({"params": params}, tokens[:3], True),
                             rtol=1e-6)
  assert not np.allclose(queries, got[:3], atol=1e-3)  # the two heads differ
  with pytest.raises(TypeError, match="no method 'embed_passages'"):
    model_encoders.passage_encode_fn(nn.Dense(3))
