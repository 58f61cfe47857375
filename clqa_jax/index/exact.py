"""Exact maximum-inner-product top-k in numpy: the reference every other searcher is tested on.

The corpus is scored in chunks of rows (and queries in batches) so memory stays at
query_batch x chunk_rows floats whatever N is; each chunk's top-k is merged into a running
top-k. Scores are float32 (fp16/bf16 corpora are upcast per chunk); ties go to the lower
row id.
"""
from __future__ import annotations

import numpy as np

from clqa_jax.index import base
from clqa_jax.index import merge


def chunk_topk(scores: np.ndarray, rows: np.ndarray,
               k: int) -> tuple[np.ndarray, np.ndarray]:
  """Top-k of one chunk: scores [Q, C], rows [C] -> (scores [Q, k'], rows [Q, k']), k' = min(k, C).

  Not sorted; the set is exact, including which tied rows are kept (the lower row ids).
  """
  num_q, c = scores.shape
  if k >= c:
    return scores, np.broadcast_to(rows, (num_q, c))
  idx = np.argpartition(-scores, k - 1, axis=1)[:, :k]
  top = np.take_along_axis(scores, idx, axis=1)
  kth = top.min(axis=1)
  # argpartition picks arbitrarily among values equal to the k-th: redo those queries.
  tied = np.nonzero((scores >= kth[:, None]).sum(axis=1) > k)[0]
  for q in tied:
    cand = np.nonzero(scores[q] >= kth[q])[0]
    order = np.lexsort((rows[cand], -scores[q, cand]))[:k]
    idx[q] = cand[order]
    top[q] = scores[q, idx[q]]
  return top, rows[idx]


def scores_topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
  """Exact top-k of precomputed scores [Q, N] over rows 0..N-1, k <= N.

  Returns (scores float32 [Q, k], rows int64 [Q, k]) by descending score, ties by lower row id
  (the same rule as ``exact_topk``).
  """
  scores = np.asarray(scores, np.float32) + np.float32(0.0)  # -0.0 == 0.0 in every sort
  if scores.ndim != 2 or not 1 <= k <= scores.shape[1]:
    raise base.IndexInputError(f"scores_topk: need scores [Q, N] and 1 <= k <= N, got "
                               f"{scores.shape} and k={k}")
  rows = np.arange(scores.shape[1], dtype=np.int64)
  return merge.select_topk(*chunk_topk(scores, rows, k), k)


def exact_topk(queries: np.ndarray, embeddings: np.ndarray, k: int,
               row_ids: np.ndarray | None = None, *, chunk_rows: int = 32768,
               query_batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
  """Exact top-k by dot product.

  Args:
    queries: [Q, D] float.
    embeddings: corpus [N, D] (float32/fp16/bf16; a memory map works: it is read by chunks).
    k: results per query, 1 <= k <= N.
    row_ids: int [N] row id of each embedding (default 0..N-1).
    chunk_rows: corpus rows scored at once.
    query_batch_size: queries scored at once.

  Returns:
    (scores float32 [Q, k], rows int64 [Q, k]) by descending score, ties by lower row id.
  """
  row_ids = base.check_corpus(embeddings, row_ids)
  n, d = embeddings.shape
  queries = base.check_queries(queries, d, k, n)
  if chunk_rows < 1 or query_batch_size < 1:
    raise base.IndexInputError("chunk_rows and query_batch_size must be positive")
  out_scores, out_rows = [], []
  for q0 in range(0, queries.shape[0], query_batch_size):
    q = queries[q0:q0 + query_batch_size]
    best_s = np.full((q.shape[0], 0), -np.inf, np.float32)
    best_r = np.full((q.shape[0], 0), merge.PAD_ROW, np.int64)
    for c0 in range(0, n, chunk_rows):
      chunk = np.asarray(embeddings[c0:c0 + chunk_rows]).astype(np.float32)
      # + 0.0 turns -0.0 into 0.0 so that equal scores compare equal in every sort.
      s = q @ chunk.T + np.float32(0.0)
      cs, cr = chunk_topk(s, row_ids[c0:c0 + chunk_rows], k)
      best_s, best_r = merge.select_topk(
          np.concatenate([best_s, cs], axis=1), np.concatenate([best_r, cr], axis=1),
          min(k, best_s.shape[1] + cs.shape[1]))
    out_scores.append(best_s)
    out_rows.append(best_r)
  return np.concatenate(out_scores), np.concatenate(out_rows)


class ExactSearcher:
  """Exact numpy search over an in-memory or memory-mapped corpus [N, D]."""

  def __init__(self, embeddings: np.ndarray, row_ids: np.ndarray | None = None, *,
               chunk_rows: int = 32768, query_batch_size: int = 1024):
    self._row_ids = base.check_corpus(embeddings, row_ids)
    if np.unique(self._row_ids).size != self._row_ids.size:
      raise base.IndexInputError("row_ids contain duplicates")
    self._embeddings = embeddings
    self._chunk_rows = chunk_rows
    self._query_batch_size = query_batch_size

  @property
  def num_rows(self) -> int:
    return self._embeddings.shape[0]

  @property
  def dim(self) -> int:
    return self._embeddings.shape[1]

  def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """queries [Q, D] -> (scores float32 [Q, k], rows int64 [Q, k])."""
    return exact_topk(queries, self._embeddings, k, self._row_ids, chunk_rows=self._chunk_rows,
                      query_batch_size=self._query_batch_size)
