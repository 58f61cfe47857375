"""encode_corpus with UnifiedModel.embed_passages on a 4 x 2 (data, model) mesh."""
import flax.linen as nn
import jax
import numpy as np

from clqa_jax.index import encode
from clqa_jax.index import model_encoders
from clqa_jax.index import shards
from clqa_jax.models.config import MT5Config
from clqa_jax.models.model_api import UnifiedModel
from clqa_jax.models.unified import UnifiedConfig
from clqa_jax.models.unified import UnifiedRetrieverReader
from clqa_jax.partitioning import mesh as mesh_lib
from clqa_jax.partitioning import rules as rules_lib


def test_unified_passage_encoding_sharded_equals_unsharded(tmp_path):
  model = UnifiedRetrieverReader(UnifiedConfig(mt5=MT5Config.preset(
      "tiny", num_encoder_layers=2, num_decoder_layers=1)))
  lp, n = 10, 37
  abstract = jax.eval_shape(model.init, jax.random.key(0), np.zeros((1, 4), np.int32),
                            np.zeros((1, 1, lp), np.int32), np.zeros((1, 3), np.int32))
  mesh = mesh_lib.create_mesh(mesh_lib.MeshConfig(data=4, model=2))
  rules = rules_lib.logical_axis_rules("2d", mesh.axis_names)
  shardings = nn.logical_to_mesh_sharding(nn.get_partition_spec(abstract), mesh, rules)
  rng = np.random.default_rng(0)
  host_params = jax.tree.map(
      lambda s: (rng.standard_normal(s.shape) / np.sqrt(s.shape[0])).astype(s.dtype),
      nn.unbox(abstract))
  params = jax.device_put(host_params, shardings)["params"]
  assert any(len(x.sharding.device_set) == 8 and not x.sharding.is_fully_replicated
             for x in jax.tree.leaves(params))  # really partitioned over the mesh

  tokens = rng.integers(2, 500, size=(n, lp)).astype(np.int32)
  lengths = rng.integers(3, lp + 1, size=n)
  tokens[np.arange(lp)[None] >= lengths[:, None]] = 0
  tokens[np.arange(n), lengths - 1] = 1  # EOS
  fn = model_encoders.passage_encode_fn(UnifiedModel(model), rules)
  encode.encode_corpus(fn, [(np.arange(n) + 100, tokens)], str(tmp_path), params=params,
                       fingerprint={"model": "tiny"}, global_batch_size=16, mesh=mesh,
                       dtype="float16", rows_per_shard=20, progress=False)
  rows, got = shards.load_embeddings(str(tmp_path), np.float32)
  np.testing.assert_array_equal(rows, np.arange(n) + 100)
  reference = jax.jit(lambda p, t: model.apply({"params": p}, t,
                                              method=UnifiedRetrieverReader.encode_passages))
  want = reference(host_params["params"], tokens)
  assert got.shape == (n, model.config.mt5.d_model)
  np.testing.assert_allclose(got, np.asarray(want), rtol=5e-3, atol=5e-3)
