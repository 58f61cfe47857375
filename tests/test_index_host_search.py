"""A host's shard files as one memory-mapped corpus (StackedRows), and the host-sharded
searcher in one process (the two-process run is tests/test_refresh_multihost.py)."""
import jax
import ml_dtypes
import numpy as np
import pytest

from clqa_jax.index import base
from clqa_jax.index import exact
from clqa_jax.index import host_search
from clqa_jax.index import shards


def _write(directory, process, parts, dtype="bfloat16", num_processes=1):
  start = 0
  for i, emb in enumerate(parts):
    rows = np.arange(start, start + len(emb), dtype=np.int64)
    shards.write_shard(str(directory), shards.ShardManifest(
        process_index=process, num_processes=num_processes, shard=i, dtype=dtype,
        dim=emb.shape[1], count=len(emb), rows_per_shard=8, fingerprint="t",
        input_sha256="x", first_row=int(rows[0]), last_row=int(rows[-1])), rows, emb)
    start += len(emb)
  shards.write_json_atomic(shards.done_path(str(directory), process), {"num_shards": len(parts)})


def test_stacked_rows_reads_slices_and_row_arrays_across_parts():
  parts = [np.arange(i, i + 2 * n, dtype=np.float32).reshape(n, 2) for i, n in
           ((0, 3), (100, 1), (200, 4))]
  whole = np.concatenate(parts)
  view = shards.StackedRows(parts)
  assert view.shape == (8, 2) and view.nbytes == whole.nbytes
  for lo, hi in ((0, 8), (2, 5), (3, 4), (4, 8), (5, 5), (7, 20)):
    np.testing.assert_array_equal(view[lo:hi], whole[lo:hi])
  assert np.shares_memory(view[4:7], parts[2])  # inside one part: no copy
  idx = np.array([7, 0, 3, 3, 5])
  np.testing.assert_array_equal(view[idx], whole[idx])
  with pytest.raises(IndexError, match="out of range"):
    view[np.array([8])]
  with pytest.raises(IndexError, match="step 1"):
    view[::2]


def test_load_process_shards_maps_only_that_process(tmp_path):
  rng = np.random.default_rng(0)
  mine = [rng.standard_normal((8, 4)).astype(np.float32), rng.standard_normal((3, 4))]
  _write(tmp_path, 1, mine, num_processes=2)
  _write(tmp_path, 0, [np.ones((5, 4), np.float32)], num_processes=2)
  rows, emb = shards.load_process_shards(str(tmp_path), 1)
  np.testing.assert_array_equal(rows, np.arange(11))
  assert emb.shape == (11, 4) and emb.dtype == ml_dtypes.bfloat16
  assert all(isinstance(p.base, np.memmap) for p in emb.parts)
  np.testing.assert_array_equal(
      emb[0:11], np.concatenate(mine).astype(ml_dtypes.bfloat16))
  with pytest.raises(shards.ShardError, match="process 2 has not finished"):
    shards.load_process_shards(str(tmp_path), 2)


def test_host_searcher_in_one_process_equals_exact_with_ties(tmp_path):
  rng = np.random.default_rng(1)
  corpus = rng.integers(-2, 3, size=(70, 6)).astype(np.float32)  # many exact ties
  _write(tmp_path, 0, [corpus[:32], corpus[32:64], corpus[64:]])
  searcher = host_search.HostShardSearcher.from_shards(str(tmp_path), chunk_rows=16,
                                                       query_block=5)
  assert searcher.num_rows == 70 and searcher.host_rows.tolist() == [70]
  assert searcher.embeddings.shape == (70, 6)
  assert searcher.device_corpus.shape[0] == jax.local_device_count() * 9  # 70 over 8 devices
  queries = rng.integers(-2, 3, size=(13, 6)).astype(np.float32)
  got_s, got_r = searcher.search(queries, 11)
  want_s, want_r = exact.exact_topk(queries, corpus, 11)
  np.testing.assert_array_equal(got_r, want_r)
  np.testing.assert_array_equal(got_s, want_s)
  with pytest.raises(base.IndexInputError, match="exceeds"):
    searcher.search(queries, 71)
