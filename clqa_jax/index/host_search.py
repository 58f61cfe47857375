"""Exact search over a corpus split between hosts: each process holds only its own rows.

Each process places its rows (e.g. its memory-mapped fp16/bf16 shard files) on its own devices
(a ``DeviceSearcher`` on ``device_search.local_mesh()``), so no host ever holds the whole
corpus. A search is collective: the processes' queries are all-gathered, each host takes the
top-k candidates of every query over its rows, and ``merge.merge_across_hosts`` merges all
hosts' candidates by (descending score, lower row id); each process keeps its own queries'
results. The result equals ``exact.exact_topk`` over the whole corpus, ties included, when the
float32 scores agree.

Every process must call ``search`` the same number of times (each with its own query count,
which may differ between processes).
"""
from __future__ import annotations

import jax
import numpy as np

from clqa_jax.index import base
from clqa_jax.index import device_search
from clqa_jax.index import merge
from clqa_jax.index import shards as shards_lib


def _allgather(value: np.ndarray) -> np.ndarray:
  """[...] on every process -> [P, ...] (process order) on every process."""
  if jax.process_count() == 1:
    return value[None]
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return np.asarray(multihost_utils.process_allgather(value))


class HostShardSearcher:
  """This process's rows of a corpus on its own devices; ``search`` covers every host's rows."""

  def __init__(self, embeddings: np.ndarray, row_ids: np.ndarray, *, chunk_rows: int = 16384,
               query_batch_size: int = 256, query_block: int = 4096):
    """Places this host's rows on its devices (collective: every process constructs one).

    Args:
      embeddings: this host's rows [n, D] (float32/fp16/bf16; a memory map or
        ``shards.StackedRows`` is read device by device, never copied whole).
      row_ids: int [n] global row id of each row (disjoint between hosts).
      chunk_rows: rows each device scores at once.
      query_batch_size: queries per device call.
      query_block: queries per process gathered and merged at once (bounds host memory at
        P * query_block * (D + 2 * P * k) values).
    """
    if query_block < 1:
      raise base.IndexInputError(f"query_block must be positive, got {query_block}")
    self._local = device_search.DeviceSearcher(
        embeddings, row_ids, mesh=device_search.local_mesh(), chunk_rows=chunk_rows,
        query_batch_size=query_batch_size)
    self._embeddings = embeddings
    self._query_block = query_block
    sizes = _allgather(np.asarray(embeddings.shape, np.int64))  # [P, 2]
    if len(set(sizes[:, 1].tolist())) != 1:
      raise base.IndexInputError(f"the hosts' corpus rows have different dimensions: "
                                 f"{sizes[:, 1].tolist()} (process order)")
    self._host_rows = sizes[:, 0]
    self._dim = int(sizes[0, 1])

  @classmethod
  def from_shards(cls, directory: str, **kwargs) -> "HostShardSearcher":
    """The searcher over this process's finished shards in ``directory`` (memory-mapped)."""
    row_ids, embeddings = shards_lib.load_process_shards(directory, jax.process_index())
    return cls(embeddings, row_ids, **kwargs)

  @property
  def num_rows(self) -> int:
    """Rows over all hosts."""
    return int(self._host_rows.sum())

  @property
  def host_rows(self) -> np.ndarray:
    """int64 [P]: the rows each process holds."""
    return self._host_rows.copy()

  @property
  def dim(self) -> int:
    return self._dim

  @property
  def embeddings(self) -> np.ndarray:
    """This host's rows [n, D] as given (the host-memory side)."""
    return self._embeddings

  @property
  def device_corpus(self) -> jax.Array:
    """This host's rows as placed on its devices ([S * rows_per_shard, D], padded)."""
    return self._local.corpus

  def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """This process's queries [Q, D] -> (scores float32 [Q, k], rows int64 [Q, k]), exact
    over every host's rows (collective)."""
    queries = base.check_queries(queries, self._dim, k, self.num_rows)
    num_q, proc = queries.shape[0], jax.process_index()
    most = int(_allgather(np.asarray(num_q, np.int64)).max())
    k_local = min(k, self._local.num_rows)
    out_s = np.empty((num_q, k), np.float32)
    out_r = np.empty((num_q, k), np.int64)
    for q0 in range(0, most, self._query_block):
      block = min(self._query_block, most - q0)
      mine = np.zeros((block, self._dim), np.float32)  # zero rows pad the shorter processes
      real = max(0, min(block, num_q - q0))
      mine[:real] = queries[q0:q0 + real]
      every = _allgather(mine).reshape(-1, self._dim)  # [P * block, D]
      scores = np.full((every.shape[0], k), -np.inf, np.float32)
      rows = np.full((every.shape[0], k), merge.PAD_ROW, np.int64)
      scores[:, :k_local], rows[:, :k_local] = self._local.search(every, k_local)
      scores, rows = merge.merge_across_hosts(scores, rows, k)
      own = slice(proc * block, proc * block + real)
      out_s[q0:q0 + real], out_r[q0:q0 + real] = scores[own], rows[own]
    return out_s, out_r
