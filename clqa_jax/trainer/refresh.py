"""Passage refresh during training (CLASS's "asynchronous passage update", spec 4.2).

At step 0 and every N steps (not at the last; ``hooks.should_refresh``) the loop calls
``PassageRefresh(step, params)``, which, with the current params:
  1. re-encodes the whole corpus (``index.encode_corpus``: batch sharded over the mesh's data
     axes, streamed to embedding shards, resumable);
  2. encodes the questions of the next window: those the next N steps consume (peeked from the
     feed's question stream), or every question of the split (``window='all'``, fine-tuning);
  3. retrieves the exact top-(K+1) (``index.host_search.HostShardSearcher``): each host holds
     only the embeddings it encoded (memory-mapped fp16/bf16 shard files), searches every
     process's questions over them on its own devices, and the hosts' candidates are
     all-gathered and merged (``index.merge``), ties to the lower row;
  4. drops each question's source passage, keeps K, and publishes a new ``RetrievalStore``
     version named by the step (atomic renames), which the feed's batches read from then on.
The version is the step; the loop stores it in every checkpoint and, on resume, ``restore``
pins the feed to it again. Each refresh also reports how many different passages it ranks
first (``first_ranked_spread``; TensorBoard ``refresh/*``) and warns when that is a small
fraction of the most it could: a retriever distilled from a reader relevance that does not
point at the answer passages (``losses.terms.reader_to_retriever_distillation``) collapses,
every question's vector pointing the same way, and ranks the same few passages first for every
question. The data side is ``data/train_feed.py`` (the same gin singleton is the loop's
``batches`` and this hook's ``feed``).

Each process encodes and holds the contiguous rows ``host_corpus_range`` gives it (1/P of the
corpus: 18M passages x 1024 x 2 bytes over 4 hosts is 9.2 GB per host), retrieves for its own
questions and keeps its own store (``<retrieval>/process_<i>``); encoding and search are
collective, so every process runs the same number of steps.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Any, Iterator

import gin
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding

from clqa_jax import fileio
from clqa_jax.index import encode as encode_lib
from clqa_jax.index import host_search
from clqa_jax.index import model_encoders
from clqa_jax.index import shards as shards_lib
from clqa_jax.models.model_api import UnifiedModel, check_model

logger = logging.getLogger(__name__)

WINDOWS = ("next", "all")
# A refresh that ranks fewer distinct passages first than this fraction of the most it could
# (min(questions, corpus rows)), over at least COLLAPSE_MIN_QUESTIONS questions, logs a
# collapse warning.
COLLAPSE_FRACTION = 0.05
COLLAPSE_MIN_QUESTIONS = 40


def collapse_floor(questions: int, corpus_rows: int) -> int:
  """The fewest distinct first-ranked passages of a retriever that has not collapsed, ranking
  ``questions`` over ``corpus_rows`` passages: COLLAPSE_FRACTION of the most there can be."""
  return math.ceil(COLLAPSE_FRACTION * min(questions, corpus_rows))


def first_ranked_spread(first_rows_Q: np.ndarray, corpus_rows: int) -> dict[str, float]:
  """What a refresh's first-ranked passages say about the retriever: ``refresh/
  distinct_first``, how many different passages are ranked first, and ``refresh/
  distinct_first_fraction``, that over the most there can be, min(questions ranked, corpus
  rows) (questions without any result, row -1, are not counted)."""
  ranked = np.asarray(first_rows_Q)
  ranked = ranked[ranked >= 0]
  distinct = len(np.unique(ranked))
  return {"refresh/distinct_first": float(distinct),
          "refresh/distinct_first_fraction": distinct / max(min(len(ranked), corpus_rows), 1)}


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


def _corpus_chunks(tokens: np.ndarray, start: int, stop: int,
                   chunk: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  for lo in range(start, stop, chunk):
    hi = min(lo + chunk, stop)
    yield np.arange(lo, hi, dtype=np.int64), np.asarray(tokens[lo:hi])


def _own_rows(directory: str) -> tuple[np.ndarray, np.ndarray]:
  """This process's encoded rows (row ids [n], embeddings float32 [n, D]) ordered by row id."""
  rows, emb = shards_lib.load_process_shards(directory, jax.process_index())
  order = np.argsort(rows, kind="stable")
  return rows[order], emb[order].astype(np.float32)


def host_corpus_range(num_rows: int) -> tuple[int, int]:
  """The contiguous corpus rows [lo, hi) this process encodes, holds and searches."""
  p, num_p = jax.process_index(), jax.process_count()
  if num_rows < num_p:
    raise ValueError(f"a corpus of {num_rows} passages cannot be split over {num_p} processes")
  return p * num_rows // num_p, (p + 1) * num_rows // num_p


@dataclasses.dataclass
class Candidates:
  """The exact top candidates of this process's questions, and what this host held."""
  scores: np.ndarray        # float32 [Q, k]
  rows: np.ndarray          # int64 [Q, k] corpus rows
  host_range: tuple[int, int]         # the corpus rows [lo, hi) this host encoded and held
  host_embeddings_shape: tuple[int, int]  # this host's (memory-mapped) embeddings [hi - lo, D]
  host_embeddings_mapped: bool        # whether every part of them is a memory map
  device_corpus_shape: tuple[int, int]    # this host's rows on its devices (padded)
  device_corpus_bytes: int            # bytes of them on this host's devices
  encode_seconds: float
  search_seconds: float


def retrieve_candidates(model: UnifiedModel, params: Any, corpus_tokens: np.ndarray,
                        query_tokens: np.ndarray, k: int, work: str, *, mesh: Mesh,
                        fingerprint: dict[str, Any], encode_batch_size: int,
                        dtype: str = "float16", chunk_rows: int = 16384,
                        progress: bool = False) -> Candidates:
  """Re-encodes the corpus and retrieves the exact top-k of this process's questions.

  Collective: every process calls it with the whole corpus's tokens (a memory map; only its
  ``host_corpus_range`` is read) and its own questions.

  Args:
    model, params: the model and its current (mesh-sharded) params.
    corpus_tokens: int [N, Lp] every passage's tokens, by corpus row.
    query_tokens: int32 [Q, Lq] this process's questions.
    k: candidates per question.
    work: scratch directory for the embedding shards (``passages/``, ``queries/``).
    mesh: the params' mesh; the encode batch is sharded over its data axes.
    fingerprint: identity of the params (checked when a shard directory is resumed).
    encode_batch_size: passages/queries per device step over all devices (rounded up to a
      multiple of the data-parallel size).
    dtype: embedding storage dtype ('float16' or 'bfloat16').
    chunk_rows: corpus rows each device scores at once.
    progress: progress bar while encoding the corpus.
  """
  started = time.time()
  axes = _data_axes(mesh)
  data_size = int(np.prod([mesh.shape[a] for a in axes]))
  batch = -(-encode_batch_size // data_size) * data_size
  lo, hi = host_corpus_range(len(corpus_tokens))
  passage_dir = fileio.join(work, "passages")
  encode_lib.encode_corpus(
      model_encoders.passage_encode_fn(model), _corpus_chunks(corpus_tokens, lo, hi),
      passage_dir, params=params, fingerprint=fingerprint, global_batch_size=batch, mesh=mesh,
      data_axes=axes, dtype=dtype, total_rows=hi - lo, progress=progress)
  query_dir = fileio.join(work, "queries")
  nq = len(query_tokens)
  encode_lib.encode_corpus(
      model_encoders.query_encode_fn(model), [(np.arange(nq, dtype=np.int64), query_tokens)],
      query_dir, params=params, fingerprint={**fingerprint, "questions": nq},
      global_batch_size=batch, mesh=mesh, data_axes=axes, dtype=dtype,
      rows_per_shard=max(nq, 1), progress=False)
  _, query_vectors = _own_rows(query_dir)
  encoded = time.time()

  searcher = host_search.HostShardSearcher.from_shards(passage_dir, chunk_rows=chunk_rows)
  scores, rows = searcher.search(query_vectors, k)
  device = searcher.device_corpus
  return Candidates(
      scores=scores, rows=rows, host_range=(lo, hi),
      host_embeddings_shape=tuple(searcher.embeddings.shape),
      host_embeddings_mapped=all(isinstance(p.base, np.memmap) or isinstance(p, np.memmap)
                                 for p in searcher.embeddings.parts),
      device_corpus_shape=tuple(device.shape),
      device_corpus_bytes=sum(s.data.nbytes for s in device.addressable_shards),
      encode_seconds=encoded - started, search_seconds=time.time() - encoded)


def _barrier(name: str) -> None:
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


def encode_and_search(model: UnifiedModel, params: Any, store: Any, query_tokens: np.ndarray,
                      k: int, work_dir: str, *, fingerprint: dict[str, Any],
                      num_rows: int | None = None, encode_batch_size: int = 128,
                      dtype: str = "float16", search_chunk_rows: int = 16384,
                      progress: bool = True) -> Candidates:
  """``retrieve_candidates`` over rows [0, num_rows) of a PassageStore (default all), its
  identity (corpus, vocabulary, rows) added to ``fingerprint``: the refresh's and the dev
  evaluation's search. Collective; ``work_dir`` is left in place (the caller removes it)."""
  n = len(store) if num_rows is None else min(int(num_rows), len(store))
  if n < 1:
    raise ValueError(f"encode_and_search: no passages to search in {store.directory}")
  fingerprint = {**fingerprint, "corpus": store.manifest["corpus_fingerprint"],
                 "vocab_sha256": store.manifest["vocab_sha256"], "corpus_rows": n}
  return retrieve_candidates(
      model, params, store.tokens_array[:n], np.asarray(query_tokens), min(k, n), work_dir,
      mesh=params_mesh(params), fingerprint=fingerprint, encode_batch_size=encode_batch_size,
      dtype=dtype, chunk_rows=search_chunk_rows, progress=progress)


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
    last_metrics: set by each call (not an argument): ``first_ranked_spread`` of the version
      it published (this process's questions), which the loop writes to TensorBoard.
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
  last_metrics: dict[str, float] = dataclasses.field(default_factory=dict, init=False)

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
    # 1.-3. The corpus re-encoded (each host its own rows) and searched: top-(K+1), one more
    # than K: room for the source.
    found = encode_and_search(
        self.model, params, store, questions.query_tokens, k + 1, work,
        fingerprint={"refresh_step": int(step)}, encode_batch_size=self.encode_batch_size,
        dtype=self.dtype, search_chunk_rows=self.search_chunk_rows, progress=self.progress)
    scores, rows = found.scores, found.rows

    # 4. Source passage out, K kept, a new version published and pinned.
    source_rows = store.rows(questions.source_pids, missing="pad")
    retrieval = self.feed.retrieval_store
    stale = fileio.join(retrieval.root, f"step_{step:010d}")
    if fileio.exists(stale):
      # Written by an interrupted run that did not checkpoint past it: recompute.
      logger.warning("replacing %s left by an interrupted run", stale)
      fileio.rmtree(stale)
    version = retrieval.write(
        step, list(questions.qids), rows, source_rows=source_rows, scores=scores, k=k,
        meta={"window": self.window, "questions": nq, "corpus_rows": n,
              "passage_store": store.directory})
    first = version.first_rows()
    self.last_metrics = first_ranked_spread(first, n)
    distinct = int(self.last_metrics["refresh/distinct_first"])
    if (nq >= COLLAPSE_MIN_QUESTIONS
        and distinct < collapse_floor(int((first >= 0).sum()), n)):
      logger.warning(
          "refresh at step %d: only %d different passages are ranked first for %d questions: "
          "the retriever has collapsed (its vectors point the same way); the reader relevance "
          "it distils does not point at the answer passages (train the reader alone longer: "
          "distillation_start_steps)", step, distinct, nq)
    source.use_version(step)
    if not self.keep_embeddings:
      fileio.rmtree(work)
    lo, hi = found.host_range
    logger.info("refresh at step %d: %d passages (this host rows %d..%d, %.2f GiB mapped, "
                "%.2f GiB on its devices), %d questions (top %d); encoding %.1fs, search %.1fs, "
                "%.1fs in all", step, n, lo, hi,
                np.prod(found.host_embeddings_shape) * np.dtype(np.float16).itemsize / 2**30,
                found.device_corpus_bytes / 2**30, nq, k, found.encode_seconds,
                found.search_seconds, time.time() - started)
    return int(step)

  def _source(self):
    source = getattr(self.feed, "source", None)
    if source is None:
      raise RuntimeError("PassageRefresh: the feed has no batch source yet; bind the same "
                         "TrainFeed singleton to train.batches and PassageRefresh.feed")
    return source
