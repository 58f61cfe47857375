"""Passage refresh during training (CLASS's "asynchronous passage update", spec 4.2).

At step 0 and every N steps (not at the last; ``hooks.should_refresh``) the loop calls
``PassageRefresh(step, params)``, which, with the current params:
  1. re-encodes the whole corpus (``index.encode_corpus``: batch sharded over the mesh's data
     axes, streamed to embedding shards, resumable);
  2. encodes the questions of the next window: those the next N steps consume (peeked from the
     feed's question stream), or every question of the split (``window='all'``, fine-tuning);
  3. retrieves the exact top-(K+1) on device (``index.DeviceSearcher``: corpus sharded over the
     devices, per-shard top-k, global merge);
  4. drops each question's source passage, keeps K, and publishes a new ``RetrievalStore``
     version named by the step (atomic renames), which the feed's batches read from then on.
The version is the step; the loop stores it in every checkpoint and, on resume, ``restore``
pins the feed to it again. The data side is ``data/train_feed.py`` (the same gin singleton is
the loop's ``batches`` and this hook's ``feed``).

Each process retrieves for its own questions and keeps its own store
(``<retrieval>/process_<i>``); the device computations are global, so every process runs the
same number of search steps (query counts are padded to the largest process's).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Iterator

import gin
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding

from clqa_jax import fileio
from clqa_jax.index import device_search
from clqa_jax.index import encode as encode_lib
from clqa_jax.index import model_encoders
from clqa_jax.index import shards as shards_lib
from clqa_jax.models.model_api import UnifiedModel, check_model

logger = logging.getLogger(__name__)

WINDOWS = ("next", "all")


@gin.configurable
def unified_model(config: Any = gin.REQUIRED) -> UnifiedModel:
  """``MODEL = @refresh.unified_model()``: the ``UnifiedModel`` of a gin UnifiedConfig
  (flax modules are not gin-configurable themselves)."""
  return UnifiedModel.from_config(config)


def params_mesh(params: Any) -> Mesh:
  """The mesh the (training) params live on; all devices on a "data" axis otherwise."""
  for leaf in jax.tree.leaves(params):
    sharding = getattr(leaf, "sharding", None)
    if isinstance(sharding, NamedSharding):
      return sharding.mesh
  return Mesh(np.asarray(jax.devices()), ("data",))


def _data_axes(mesh: Mesh) -> tuple[str, ...]:
  axes = tuple(a for a in ("replica", "data") if a in mesh.axis_names)
  return axes or (mesh.axis_names[0],)


def _max_over_processes(value: int) -> int:
  if jax.process_count() == 1:
    return value
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return int(np.max(multihost_utils.process_allgather(np.asarray(value, np.int64))))


def _corpus_chunks(tokens: np.ndarray, start: int, stop: int,
                   chunk: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  for lo in range(start, stop, chunk):
    hi = min(lo + chunk, stop)
    yield np.arange(lo, hi, dtype=np.int64), np.asarray(tokens[lo:hi])


def _own_rows(directory: str) -> tuple[np.ndarray, np.ndarray]:
  """This process's encoded rows (row ids [n], embeddings [n, D]) ordered by row id."""
  manifests = shards_lib.list_process_manifests(directory, jax.process_index())
  parts = [shards_lib.load_shard(directory, manifests[i], mmap=False) for i in sorted(manifests)]
  rows = np.concatenate([r for r, _ in parts])
  emb = np.concatenate([e for _, e in parts]).astype(np.float32)
  order = np.argsort(rows, kind="stable")
  return rows[order], emb[order]


def _barrier(name: str) -> None:
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


@dataclasses.dataclass
class SearchResult:
  """Exact top-k of some questions over a corpus: scores float32 / rows int64 [Q, k]."""
  scores: np.ndarray
  rows: np.ndarray
  corpus_seconds: float   # encoding the corpus (the cost that grows with it)


def encode_and_search(model: UnifiedModel, params: Any, store: Any, query_tokens: np.ndarray,
                      k: int, work_dir: str, *, fingerprint: dict[str, Any],
                      num_rows: int | None = None, encode_batch_size: int = 128,
                      dtype: str = "float16", search_chunk_rows: int = 16384,
                      progress: bool = True) -> SearchResult:
  """This process's questions' exact top-k passages of ``store`` under ``params``.

  1. rows [0, num_rows) of the PassageStore (default all) are encoded into embedding shards
     under ``work_dir/passages`` (batch sharded over the params mesh's data axes, each process
     its contiguous part of the rows; resumable, fingerprinted);
  2. query_tokens int32 [Q, Lq] (this process's questions) under ``work_dir/queries``;
  3. exact search on device (``DeviceSearcher``: corpus sharded over the devices). Every
     process runs the same number of search steps (query counts padded to the largest).
  Embeddings are stored as ``dtype``; scores are float32 dot products of the stored values.
  ``work_dir`` is left in place (the caller removes it).
  """
  started = time.time()
  mesh = params_mesh(params)
  axes = _data_axes(mesh)
  data_size = int(np.prod([mesh.shape[a] for a in axes]))
  batch = -(-encode_batch_size // data_size) * data_size
  n = len(store) if num_rows is None else min(int(num_rows), len(store))
  if n < 1:
    raise ValueError(f"encode_and_search: no passages to search in {store.directory}")
  fingerprint = {**fingerprint, "corpus": store.manifest["corpus_fingerprint"],
                 "vocab_sha256": store.manifest["vocab_sha256"], "corpus_rows": n}

  # 1. The corpus, split between processes by contiguous rows.
  p, num_p = jax.process_index(), jax.process_count()
  lo, hi = p * n // num_p, (p + 1) * n // num_p
  passage_dir = fileio.join(work_dir, "passages")
  encode_lib.encode_corpus(
      model_encoders.passage_encode_fn(model), _corpus_chunks(store.tokens_array, lo, hi),
      passage_dir, params=params, fingerprint=fingerprint, global_batch_size=batch, mesh=mesh,
      data_axes=axes, dtype=dtype, total_rows=hi - lo, progress=progress)
  corpus_seconds = time.time() - started

  # 2. This process's questions.
  query_dir = fileio.join(work_dir, "queries")
  nq = int(query_tokens.shape[0])
  encode_lib.encode_corpus(
      model_encoders.query_encode_fn(model),
      [(np.arange(nq, dtype=np.int64), np.asarray(query_tokens))], query_dir, params=params,
      fingerprint={**fingerprint, "questions": nq}, global_batch_size=batch, mesh=mesh,
      data_axes=axes, dtype=dtype, rows_per_shard=max(nq, 1), progress=False)
  _, query_vectors = _own_rows(query_dir)
  _barrier(f"encode_and_search:{work_dir}")   # every process's shards are written

  # 3. Exact top-k over the sharded corpus.
  row_ids, corpus = shards_lib.EmbeddingShards(passage_dir).load()
  searcher = device_search.DeviceSearcher(corpus, row_ids, mesh=mesh,
                                          chunk_rows=search_chunk_rows)
  padded = _max_over_processes(nq)
  queries = np.zeros((padded, query_vectors.shape[1]), np.float32)
  queries[:nq] = query_vectors
  scores, rows = searcher.search(queries, min(k, n))
  return SearchResult(scores[:nq], rows[:nq], corpus_seconds)


@dataclasses.dataclass
class WindowQuestions:
  """The questions a refresh retrieves for (deduplicated by qid)."""
  qids: np.ndarray          # bytes [Q]
  source_pids: list[str]    # [Q] ("" for none)
  query_tokens: np.ndarray  # int32 [Q, Lq]


def collect_questions(feed: Any, batches) -> WindowQuestions:
  """Concatenates question batches, keeping the first occurrence of every qid."""
  qids, sources, tokens = [], [], []
  seen: set[bytes] = set()
  for batch in batches:
    q_tokens = feed.query_tokens(batch)
    for i, qid in enumerate(batch["qid"]):
      qid = bytes(qid)
      if qid in seen:
        continue
      seen.add(qid)
      qids.append(qid)
      src = batch["source_pid"][i]
      sources.append(src.decode("utf-8") if isinstance(src, bytes) else str(src))
      tokens.append(q_tokens[i])
  if not qids:
    raise ValueError(f"no questions to refresh for in {feed.task_name!r}")
  return WindowQuestions(np.array(qids, dtype=object), sources, np.stack(tokens))


@gin.configurable
@dataclasses.dataclass
class PassageRefresh:
  """The loop's ``refresh_hook``: ``(step, params) -> RetrievalStore version`` (= step).

  Attributes:
    feed: the run's ``train_feed.TrainFeed`` (the gin singleton also bound to train.batches);
      its ``retrieval`` is the RetrievalStore directory this hook writes.
    model: the ``UnifiedModel`` being trained (its ``embed_passages`` / ``embed_queries``).
    every: the loop's ``refresh_every_steps``: the window is the questions of that many steps.
    window: 'next' (the next window of the training stream: synthetic pre-training) or 'all'
      (every question of the split: fine-tuning sets).
    work_dir: scratch for the embeddings (default ``<retrieval>/embeddings``).
    encode_batch_size: passages/queries per device step over all devices (rounded up to a
      multiple of the data-parallel size).
    dtype: embedding storage dtype ('float16' or 'bfloat16'); scores are computed in float32
      from the stored values.
    search_chunk_rows: corpus rows each device scores at once.
    keep_embeddings: keep each refresh's embeddings (default: deleted once the store is
      written).
    progress: progress bars while encoding.
  """
  feed: Any = gin.REQUIRED
  model: UnifiedModel = gin.REQUIRED
  every: int = gin.REQUIRED
  window: str = "next"
  work_dir: str | None = None
  encode_batch_size: int = 128
  dtype: str = "float16"
  search_chunk_rows: int = 16384
  keep_embeddings: bool = False
  progress: bool = True

  def __post_init__(self):
    check_model(self.model, "PassageRefresh.model")
    if self.window not in WINDOWS:
      raise ValueError(f"PassageRefresh.window={self.window!r}; one of {WINDOWS}")
    if self.every < 1:
      raise ValueError(f"PassageRefresh.every must be positive, got {self.every}")

  # -- the loop's protocol ---------------------------------------------------------------

  def restore(self, version: int) -> None:
    """Pins the feed to the store version a resumed checkpoint was trained with."""
    source = self._source()
    try:
      source.use_version(version)
    except FileNotFoundError as e:
      raise FileNotFoundError(
          f"the checkpoint was trained with retrieval version {version}, which is no longer in "
          f"{self.feed.retrieval_store.root} (raise TrainFeed.keep_versions)") from e
    logger.info("retrieval store pinned to version %d", version)

  def __call__(self, step: int, params: Any) -> int:
    started = time.time()
    source = self._source()
    if self.window == "next":
      questions = collect_questions(self.feed, source.peek(self.every))
    else:
      questions = collect_questions(self.feed, self.feed.question_batches(
          source.batch_size, shard_index=source.shard_index, num_shards=source.num_shards,
          train=False))
    store = self.feed.passage_store
    k = self.feed.k
    work = fileio.join(self.work_dir or fileio.join(self.feed.retrieval_store.root,
                                                    "embeddings"), f"step_{step:010d}")
    n = len(store)
    nq = len(questions.qids)
    # Exact top-(K+1): one more than K, room for the source passage.
    found = encode_and_search(
        self.model, params, store, questions.query_tokens, min(k + 1, n), work,
        fingerprint={"refresh_step": int(step)}, encode_batch_size=self.encode_batch_size,
        dtype=self.dtype, search_chunk_rows=self.search_chunk_rows, progress=self.progress)
    scores, rows = found.scores, found.rows

    # Source passage out, K kept, a new version published and pinned.
    source_rows = store.rows(questions.source_pids, missing="pad")
    retrieval = self.feed.retrieval_store
    stale = fileio.join(retrieval.root, f"step_{step:010d}")
    if fileio.exists(stale):
      # Written by an interrupted run that did not checkpoint past it: recompute.
      logger.warning("replacing %s left by an interrupted run", stale)
      fileio.rmtree(stale)
    retrieval.write(step, list(questions.qids), rows, source_rows=source_rows, scores=scores,
                    k=k, meta={"window": self.window, "questions": nq, "corpus_rows": n,
                               "passage_store": store.directory})
    source.use_version(step)
    if not self.keep_embeddings:
      fileio.rmtree(work)
    logger.info("refresh at step %d: %d passages encoded in %.1fs, %d questions retrieved "
                "(top %d), %.1fs in all", step, n, found.corpus_seconds, nq, k,
                time.time() - started)
    return int(step)

  def _source(self):
    source = getattr(self.feed, "source", None)
    if source is None:
      raise RuntimeError("PassageRefresh: the feed has no batch source yet; bind the same "
                         "TrainFeed singleton to train.batches and PassageRefresh.feed")
    return source
