"""Exact top-k on device with the corpus sharded over the mesh: the in-training refresh path.

The corpus [N, D] is padded to S * Ns rows and sharded over the mesh axes ``corpus_axes``
(S shards). Each device scores the replicated queries against its shard chunk by chunk
(lax.scan, so memory is queries x chunk_rows), keeps a running top-k with ``lax.top_k``, and
the S * k candidates are merged into the global top-k. Candidates are ordered by
(descending score, ascending corpus position) everywhere, and the corpus is held in row-id
order, so results equal ``exact.exact_topk`` exactly, ties included, when the float32 scores
agree.
"""
from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from clqa_jax.index import base

_POS_PAD = np.iinfo(np.int32).max


def default_mesh() -> Mesh:
  """A 1-D mesh over every device (all hosts) with the axis named "corpus"."""
  return Mesh(np.asarray(jax.devices()), ("corpus",))


def local_mesh() -> Mesh:
  """A 1-D "corpus" mesh over this process's devices only: a searcher on it holds only the
  rows this host gives it (``host_search.HostShardSearcher``)."""
  return Mesh(np.asarray(jax.local_devices()), ("corpus",))


def _storage_dtype(dtype: np.dtype) -> np.dtype:
  """Keeps fp16/bf16 corpora in 2 bytes on device; anything else becomes float32."""
  if dtype == np.float16 or dtype.name == "bfloat16":
    return dtype
  return np.dtype(np.float32)


class DeviceSearcher:
  """Exact search with the corpus sharded over devices; see the module docstring."""

  def __init__(self, embeddings: np.ndarray, row_ids: np.ndarray | None = None, *,
               mesh: Mesh | None = None, corpus_axes: Sequence[str] | None = None,
               chunk_rows: int = 16384, query_batch_size: int = 256):
    """Places the corpus on the devices.

    Host memory: the corpus plus a padded copy of the shards that need padding (the last one).

    Args:
      embeddings: corpus [N, D] (numpy or memory map; each host reads only the rows of its
        own devices, so in a multi-host run every host passes the same full-corpus view;
        ``host_search.HostShardSearcher`` instead gives each host only its own rows).
      row_ids: int [N] row id of each embedding (default 0..N-1).
      mesh: device mesh (default: all devices on one "corpus" axis).
      corpus_axes: mesh axes the corpus is sharded over (default: all of them).
      chunk_rows: rows each device scores at once.
      query_batch_size: queries per device call (the last batch is padded).
    """
    row_ids = base.check_corpus(embeddings, row_ids)
    if np.unique(row_ids).size != row_ids.size:
      raise base.IndexInputError("row_ids contain duplicates")
    if chunk_rows < 1 or query_batch_size < 1:
      raise base.IndexInputError("chunk_rows and query_batch_size must be positive")
    self._mesh = mesh if mesh is not None else default_mesh()
    self._axes = tuple(corpus_axes) if corpus_axes is not None else tuple(self._mesh.axis_names)
    missing = [a for a in self._axes if a not in self._mesh.axis_names]
    if missing:
      raise base.IndexInputError(f"corpus_axes {missing} are not axes of the mesh "
                                 f"{self._mesh.axis_names}")
    n, d = embeddings.shape
    self._n, self._d = n, d
    self._num_shards = math.prod(self._mesh.shape[a] for a in self._axes)
    rows_per_shard = -(-n // self._num_shards)
    # Equal chunks of at most chunk_rows covering a shard: padding stays under one row per chunk.
    num_chunks = -(-rows_per_shard // chunk_rows)
    self._chunk = -(-rows_per_shard // num_chunks)
    self._rows_per_shard = num_chunks * self._chunk
    self._query_batch_size = query_batch_size

    # Holding the corpus in row-id order makes "lower position" mean "lower row id".
    order = None if np.all(row_ids[1:] > row_ids[:-1]) else np.argsort(row_ids, kind="stable")
    self._row_ids = row_ids if order is None else row_ids[order]
    dtype = _storage_dtype(embeddings.dtype)
    total = self._num_shards * self._rows_per_shard
    if total >= _POS_PAD:
      raise base.IndexInputError(f"corpus of {n} rows is too large for int32 positions; "
                                 "split it into several searchers and merge them")

    def read_rows(index) -> np.ndarray:
      rows = index[0]
      start, stop = rows.start or 0, rows.stop if rows.stop is not None else total
      if stop <= n and order is None and embeddings.dtype == dtype:
        return np.asarray(embeddings[start:stop])  # a view: no host copy before the transfer
      out = np.zeros((stop - start, d), dtype)
      real_stop = min(stop, n)
      if real_stop > start:
        sel = slice(start, real_stop)
        part = embeddings[sel] if order is None else embeddings[order[sel]]
        out[:real_stop - start] = np.asarray(part).astype(dtype, copy=False)
      return out

    self._corpus_sharding = NamedSharding(self._mesh, P(self._axes, None))
    self._corpus = jax.make_array_from_callback((total, d), self._corpus_sharding, read_rows)
    self._replicated = NamedSharding(self._mesh, P())
    self._fns = {}

  @property
  def num_rows(self) -> int:
    return self._n

  @property
  def dim(self) -> int:
    return self._d

  @property
  def num_shards(self) -> int:
    return self._num_shards

  @property
  def corpus(self) -> jax.Array:
    """The corpus as placed on the devices: [num_shards * rows_per_shard, D], padded."""
    return self._corpus

  def _search_fn(self, k: int):
    """The jitted search for one k: (queries [B, D], corpus) -> (scores [B, k], pos [B, k])."""
    if k not in self._fns:
      self._fns[k] = self._build_search_fn(k)
    return self._fns[k]

  def _build_search_fn(self, k: int):
    n, chunk, rows_per_shard, axes = self._n, self._chunk, self._rows_per_shard, self._axes
    num_chunks = rows_per_shard // chunk
    kc = min(k, chunk)

    def merge_sorted(scores, pos, keep):
      # Sorting (-score, position) orders by descending score, then lower position.
      neg, pos = jax.lax.sort((-scores, pos), dimension=1, num_keys=2)
      return -neg[:, :keep], pos[:, :keep]

    def local_topk(queries, shard):
      # queries [B, D] (replicated); shard [rows_per_shard, D] (this device's corpus rows).
      first = jax.lax.axis_index(axes) * rows_per_shard
      chunks = shard.reshape(num_chunks, chunk, shard.shape[-1])
      b = queries.shape[0]

      def body(carry, xs):
        best_s, best_p = carry
        block, c = xs
        s = jnp.dot(queries, block.astype(jnp.float32).T,
                    precision=jax.lax.Precision.HIGHEST) + 0.0
        pos = first + c * chunk + jnp.arange(chunk, dtype=jnp.int32)
        s = jnp.where(pos[None, :] < n, s, -jnp.inf)
        top_s, top_i = jax.lax.top_k(s, kc)
        cand_s = jnp.concatenate([best_s, top_s], axis=1)
        cand_p = jnp.concatenate([best_p, pos[top_i]], axis=1)
        return merge_sorted(cand_s, cand_p, k), None

      init = (jnp.full((b, k), -jnp.inf, jnp.float32), jnp.full((b, k), _POS_PAD, jnp.int32))
      (best_s, best_p), _ = jax.lax.scan(
          body, init, (chunks, jnp.arange(num_chunks, dtype=jnp.int32)))
      return best_s[None], best_p[None]

    sharded = jax.shard_map(local_topk, mesh=self._mesh, in_specs=(P(), P(axes, None)),
                            out_specs=(P(axes), P(axes)), check_vma=False)

    def search(queries, corpus):
      all_s, all_p = sharded(queries, corpus)  # [S, B, k] each
      b = queries.shape[0]
      cand_s = jnp.transpose(all_s, (1, 0, 2)).reshape(b, -1)
      cand_p = jnp.transpose(all_p, (1, 0, 2)).reshape(b, -1)
      return merge_sorted(cand_s, cand_p, k)

    return jax.jit(search, out_shardings=(self._replicated, self._replicated))

  def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """queries [Q, D] -> (scores float32 [Q, k], rows int64 [Q, k]), exact."""
    queries = base.check_queries(queries, self._d, k, self._n)
    fn = self._search_fn(int(k))
    bsz = self._query_batch_size
    out_s, out_p = [], []
    for q0 in range(0, queries.shape[0], bsz):
      batch = queries[q0:q0 + bsz]
      padded = np.zeros((bsz, self._d), np.float32)
      padded[:batch.shape[0]] = batch
      q_dev = jax.make_array_from_callback(padded.shape, self._replicated,
                                           lambda idx, x=padded: x[idx])
      s, p = fn(q_dev, self._corpus)
      out_s.append(np.asarray(s)[:batch.shape[0]])
      out_p.append(np.asarray(p)[:batch.shape[0]])
    scores = np.concatenate(out_s)
    positions = np.concatenate(out_p)
    return scores, self._row_ids[positions]
