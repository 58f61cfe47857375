"""ScaNN index: recall against exact search on clustered data, save/load, small corpora."""
import os

import numpy as np
import pytest
from fake_gcs import fake_gcs, object_paths  # noqa: F401  (fake_gcs is a fixture)

from clqa_jax import fileio
from clqa_jax.index import base
from clqa_jax.index import clustered
from clqa_jax.index import exact
from clqa_jax.index import merge
from clqa_jax.index import scann_index
from clqa_jax.index import searchers


@pytest.fixture(scope="module")
def corpus():
  return clustered.clustered_corpus(20_000, 64, 100, noise=0.8, seed=5)


@pytest.fixture(scope="module")
def built(corpus):
  embeddings, _ = corpus
  row_ids = np.arange(20_000, dtype=np.int64) * 7 + 3
  return searchers.build_searcher("scann", embeddings, row_ids), row_ids


def test_scann_recall_at_100(corpus, built):
  embeddings, queries = corpus
  searcher, row_ids = built
  assert searcher.params["mode"] == "tree_ah"
  assert searcher.params["num_leaves"] == 141
  assert 0.9 <= searcher.build_recall <= 1.0
  scores, rows = searcher.search(queries, 100)
  want_s, want_r = exact.exact_topk(queries, embeddings, 100, row_ids)
  assert base.recall_at_k(rows, want_r) >= 0.9
  # Scores are dot products with the returned rows, in descending order.
  index = (rows[:, :5] - 3) // 7
  np.testing.assert_allclose(scores[:, :5], np.einsum("qd,qkd->qk", queries, embeddings[index]),
                             rtol=1e-4, atol=1e-4)
  assert np.all(np.diff(scores, axis=1) <= 1e-6)
  # Searching a single leaf loses recall: the tree is real.
  _, rows_1 = searcher.search(queries, 100, leaves_to_search=1)
  assert base.recall_at_k(rows_1, want_r) < base.recall_at_k(rows, want_r)


def test_scann_save_load_identical(corpus, built, tmp_path):
  _, queries = corpus
  searcher, _ = built
  path = os.path.join(tmp_path, "index")
  searcher.save(path)
  with pytest.raises(FileExistsError):
    searcher.save(path)
  moved = os.path.join(tmp_path, "moved")
  os.replace(path, moved)  # relative asset paths: the directory can move
  loaded = searchers.load_searcher(moved)
  assert loaded.params == searcher.params and loaded.build_recall == searcher.build_recall
  want = searcher.search(queries, 100)
  got = loaded.search(queries, 100)
  np.testing.assert_array_equal(got[1], want[1])
  np.testing.assert_array_equal(got[0], want[0])
  assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]



def test_scann_save_load_gs_path(corpus, built, tmp_path, fake_gcs):
  """A gs:// index: serialized locally, uploaded (the same files as a local save), loaded
  from a local copy."""
  _, queries = corpus
  searcher, _ = built
  searcher.save(str(tmp_path / "local"))
  remote = "gs://bucket/index"
  searcher.save(remote)
  with pytest.raises(FileExistsError):
    searcher.save(remote)
  searcher.save(remote, overwrite=True)
  names = fileio.walk_files(str(tmp_path / "local"))
  assert object_paths(fake_gcs) == [f"{remote}/{n}" for n in names]
  assert fileio.read_bytes(f"{remote}/index.json") == (tmp_path / "local" / "index.json").read_bytes()
  loaded = searchers.load_searcher(remote)
  want, got = searcher.search(queries[:50], 10), loaded.search(queries[:50], 10)
  np.testing.assert_array_equal(got[1], want[1])
  np.testing.assert_array_equal(got[0], want[0])

def test_scann_small_corpus_is_exact_and_errors():
  rng = np.random.default_rng(0)
  embeddings = rng.standard_normal((300, 16)).astype(np.float32)
  searcher = scann_index.ScannSearcher.build(embeddings)
  assert searcher.params == {"mode": "brute_force"} and searcher.build_recall == 1.0
  queries = rng.standard_normal((5, 16)).astype(np.float32)
  np.testing.assert_array_equal(searcher.search(queries, 20)[1],
                                exact.exact_topk(queries, embeddings, 20)[1])
  with pytest.raises(base.IndexInputError, match="exceeds"):
    searcher.search(queries, 301)
  with pytest.raises(base.IndexInputError, match="dimension 8"):
    searcher.search(queries[:, :8], 3)
  with pytest.raises(base.IndexInputError, match="empty"):
    scann_index.ScannSearcher.build(np.zeros((0, 16), np.float32))


def test_sharded_scann_indexes_merge_to_the_global_result(corpus):
  embeddings, queries = corpus
  row_ids = np.arange(20_000, dtype=np.int64)
  # Two host shards (brute-force ScaNN below 4096 rows), merged with global row ids.
  parts = [scann_index.ScannSearcher.build(embeddings[a:b], row_ids[a:b])
           for a, b in ((0, 3000), (3000, 5000))]
  merged_s, merged_r = merge.ShardedSearcher(parts).search(queries, 50)
  want_s, want_r = exact.exact_topk(queries, embeddings[:5000], 50)
  assert base.recall_at_k(merged_r, want_r) == 1.0
  np.testing.assert_allclose(merged_s, want_s, rtol=1e-5, atol=1e-5)
