"""Two processes x 4 CPU devices run the refresh's retrieval with per-host corpus shards: each
host encodes and holds only its half of the corpus, and the merged result equals exact numpy
search over the whole corpus in this one process (same passages, same order, ties to the lower
row across the hosts' shards, the source passage excluded)."""
import importlib.util
import io
import os
import sys

import jax
import numpy as np

from clqa_jax.data.retrieval_store import exclude_and_truncate
from clqa_jax.index import exact

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "fixtures", "refresh"))
import refresh_case as case  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _launcher():
  spec = importlib.util.spec_from_file_location(
      "local_multihost", os.path.join(REPO, "launch", "local_multihost.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _fp16(x):
  return np.asarray(x).astype(np.float16).astype(np.float32)


def test_two_host_refresh_equals_single_process_exact_search(tmp_path):
  log = io.StringIO()
  worker = os.path.join(REPO, "tests", "fixtures", "refresh", "multihost_worker.py")
  status = _launcher().launch([sys.executable, worker, "--out", str(tmp_path / "out")],
                              num_processes=2, devices_per_process=4, timeout_s=240, cwd=REPO,
                              sink=log)
  assert status == 0, log.getvalue()[-6000:]
  results = [np.load(tmp_path / "out" / f"result_{p}.npz") for p in (0, 1)]

  # The single-process reference: the whole corpus stored as float16, exact numpy search.
  model = case.model()
  params = case.params(model)
  passages = _fp16(jax.jit(model.embed_passages)(params, case.corpus_tokens()))
  dim = passages.shape[1]
  half = case.NUM_PASSAGES // 2
  cross_host_ties = 0
  for pid, r in enumerate(results):
    queries = _fp16(jax.jit(model.embed_queries)(params, case.query_tokens(pid)))
    want_s, want_r = exact.exact_topk(queries, passages, case.K + 1)
    np.testing.assert_array_equal(r["cand_rows"], want_r)
    # An embedding encoded in another batch layout can round to a neighbouring float16.
    np.testing.assert_allclose(r["cand_scores"], want_s, rtol=1e-4)
    want_kept, _ = exclude_and_truncate(want_r, r["sources"], case.K)
    np.testing.assert_array_equal(r["kept"], want_kept)
    odd = r["sources"] >= 0
    assert odd.any() and (want_r[odd] == r["sources"][odd, None]).any(axis=1).all()
    assert not (r["kept"] == r["sources"][:, None]).any()
    # Equal scores from both hosts' shards occur, and the lower row (host 0's) comes first.
    for rows, scores in zip(want_r, want_s):
      for j in range(case.K):
        if scores[j] == scores[j + 1] and (rows[j] < half) != (rows[j + 1] < half):
          assert rows[j] < rows[j + 1]
          cross_host_ties += 1

    # What this host held: its half of the corpus, memory-mapped, and on its 4 devices
    # its half padded to 4 x 12 rows of float16.
    assert tuple(r["host_range"]) == (pid * half, (pid + 1) * half)
    assert tuple(r["host_shape"]) == (half, dim) and bool(r["mapped"])
    assert tuple(r["device_shape"]) == (48, dim)
    assert int(r["device_bytes"]) == 48 * dim * 2

    corpus, int_queries = case.int_corpus()
    mine = int_queries[pid][:5 + 4 * pid]
    int_s, int_r = exact.exact_topk(mine, corpus, case.INT_K)
    np.testing.assert_array_equal(r["int_rows"], int_r)
    np.testing.assert_array_equal(r["int_scores"], int_s)
    held = case.INT_SPLIT if pid == 0 else case.INT_ROWS - case.INT_SPLIT
    assert tuple(r["int_held"]) == (held, case.INT_DIM)
    # 4 devices x (2 chunks of 5 or 8 rows): the padding stays under one row per chunk.
    assert int(r["int_device_rows"]) == {40: 40, 60: 64}[held]
  assert cross_host_ties > 0
