"""UMR's re-ranking job: retrieved top-N lists -> the same lists scored by a query-likelihood
teacher (``losses.query_likelihood``) and sorted by that score.

Input: a ``RetrievalStore`` root (its LATEST version), or a directory of per-process stores
(``process_<i>/``, as the refresh writes them). Output: the same layout under ``out``, one
version per input version (same step), rows sorted by s_LM (best first) with s_LM as the
stored scores, so ``TrainFeed(retrieval=out, sample_passages=C)`` feeds ``umr_kd``.

Resumable and sharded: scores go to a ``ScoreCache`` keyed by (qid, pid) in chunks as they
are computed, so an interrupted job, or a later round over new lists, scores only pairs it has
not seen. ``num_shards`` > 1 splits the questions over workers (question i goes to shard
i % num_shards), which only fill the cache; a run with one shard then writes the stores
(scoring nothing that the shards scored).
"""
from __future__ import annotations

import dataclasses
import logging
import re
from typing import Mapping

import numpy as np
import tqdm

from clqa_jax import fileio
from clqa_jax.data import readers
from clqa_jax.data.passage_store import PassageStore, read_passages
from clqa_jax.data.retrieval_store import RetrievalStore, RetrievalVersion
from clqa_jax.index.score_cache import Pair, ScoreCache
from clqa_jax.losses.query_likelihood import QueryLikelihoodTeacher, ScoringItem

logger = logging.getLogger(__name__)

_PROCESS_RE = re.compile(r"^process_\d{5}$")
CHUNK_PAIRS = 4096  # pairs scored between two cache writes


@dataclasses.dataclass(frozen=True)
class QuestionText:
  question: str
  lang: str


@dataclasses.dataclass
class RerankResult:
  """What one job did: pairs in the lists, pairs it scored, stores it wrote (or found)."""
  pairs: int = 0
  scored: int = 0
  written: list[str] = dataclasses.field(default_factory=list)
  existing: list[str] = dataclasses.field(default_factory=list)


def load_teacher(path: str, *, vocab_path: str | None = None, dtype: str = "float32",
                 batch_size: int = 32) -> QueryLikelihoodTeacher:
  """The query-likelihood teacher of a Hugging Face mT5 directory (config.json + weights;
  vocabulary: its ``spiece.model`` or ``vocab_path``) or of an exported checkpoint (``clqa
  import hf_mt5`` / ``clqa export``). ``dtype`` is the activation dtype."""
  from clqa_jax.checkpoints import exported  # pylint: disable=g-import-not-at-top
  from clqa_jax.checkpoints import hf_mt5  # pylint: disable=g-import-not-at-top
  from clqa_jax.checkpoints.import_hf import HF_VOCAB_FILE  # pylint: disable=g-import-not-at-top

  if fileio.exists(fileio.join(path, "config.json")):
    config, params = hf_mt5.load_hf_mt5(path)
    own = fileio.join(path, HF_VOCAB_FILE)
    vocab = vocab_path or (own if fileio.exists(own) else None)
    if vocab is None:
      raise FileNotFoundError(f"{path}: no {HF_VOCAB_FILE}; pass the teacher's vocabulary")
  else:
    config, params, vocab, _ = exported.load_exported(path, require_unified=False)
    vocab = vocab_path or vocab
  return QueryLikelihoodTeacher(config, params, vocab, batch_size=batch_size, dtype=dtype,
                                identity={"checkpoint": fileio.abspath(path), "dtype": dtype})


def read_questions(path: str) -> dict[str, QuestionText]:
  """qid -> (question, lang) of an XOR-TyDi style JSONL file (answers not needed)."""
  return {q.qid: QuestionText(q.question, q.lang)
          for q in readers.read_xor_jsonl(path, require_answers=False)}


def input_stores(retrieval: str) -> list[tuple[str, RetrievalStore]]:
  """(relative name, store) of a store root ("") or of its ``process_<i>`` children."""
  if fileio.exists(fileio.join(retrieval, "LATEST")):
    return [("", RetrievalStore(retrieval))]
  names = sorted(n for n in fileio.listdir(retrieval) if _PROCESS_RE.match(n)) if (
      fileio.isdir(retrieval)) else []
  if not names:
    raise FileNotFoundError(f"{retrieval}: neither a retrieval store (no LATEST) nor a "
                            "directory of process_<i> stores")
  return [(n, RetrievalStore(fileio.join(retrieval, n))) for n in names]


def _passage_store(version: RetrievalVersion, passage_store: PassageStore | None) -> PassageStore:
  if passage_store is not None:
    return passage_store
  directory = version.meta.get("passage_store")
  if not directory:
    raise ValueError(f"{version.directory}/meta.json: field passage_store is missing; pass the "
                     "passage store explicitly")
  return PassageStore(directory)


def _list_pairs(version: RetrievalVersion, store: PassageStore) -> tuple[list[str], np.ndarray,
                                                                         list[list[str]]]:
  """(qids [Q], rows int [Q, K], pids per question, '' for padding)."""
  qids = version.qids()
  rows = version.lookup(qids)
  pids = [[store.pid(r) if r >= 0 else "" for r in row] for row in rows]
  return qids, rows, pids


def rerank_version(version: RetrievalVersion, out_store: RetrievalStore | None,
                   teacher: QueryLikelihoodTeacher, questions: Mapping[str, QuestionText],
                   cache: ScoreCache, *, passage_store: PassageStore | None = None,
                   num_shards: int = 1, shard_index: int = 0, progress: bool = True,
                   result: RerankResult | None = None) -> RerankResult:
  """Scores the unseen pairs of this shard's questions of ``version`` and, with ``out_store``,
  writes the scored lists as its version of the same step."""
  result = result or RerankResult()
  store = _passage_store(version, passage_store)
  qids, rows, pids = _list_pairs(version, store)
  missing_q = [q for q in qids if q not in questions]
  if missing_q:
    raise ValueError(f"{version.directory}: questions without text in the question file: "
                   f"{missing_q[:5]}")
  todo: list[tuple[Pair, int]] = []  # (pair, corpus row) to score, first occurrence only
  seen: set[Pair] = set()
  for i, qid in enumerate(qids):
    for pid, row in zip(pids[i], rows[i]):
      if not pid:
        continue
      result.pairs += 1
      pair = (qid, pid)
      if i % num_shards == shard_index and pair not in cache and pair not in seen:
        seen.add(pair)
        todo.append((pair, int(row)))
  if todo:
    corpus = store.manifest["corpus_path"]
    texts = read_passages(store, [r for _, r in todo], corpus)
    bar = tqdm.tqdm(total=len(todo), unit="pair", desc="rerank", disable=not progress,
                    smoothing=0.1)
    for lo in range(0, len(todo), CHUNK_PAIRS):
      chunk = todo[lo:lo + CHUNK_PAIRS]
      items = [ScoringItem(questions[q].question, questions[q].lang, texts[r].title,
                           texts[r].text) for (q, _), r in chunk]
      scores = teacher.score(items, on_batch=bar.update)
      cache.add([p for p, _ in chunk], scores, shard=shard_index)
      result.scored += len(chunk)
    bar.close()
  if out_store is not None:
    _write_scored(version, out_store, qids, rows, pids, cache, teacher)
    result.written.append(out_store.root)
  return result


def _write_scored(version: RetrievalVersion, out_store: RetrievalStore, qids: list[str],
                  rows: np.ndarray, pids: list[list[str]], cache: ScoreCache,
                  teacher: QueryLikelihoodTeacher) -> None:
  scores = np.full(rows.shape, -np.inf, np.float32)
  for i, qid in enumerate(qids):
    for j, pid in enumerate(pids[i]):
      if pid:
        scores[i, j] = cache.get((qid, pid))
  order = np.argsort(-scores, axis=1, kind="stable")  # best first; padding (-inf) last
  out_rows = np.take_along_axis(rows, order, axis=1)
  out_scores = np.take_along_axis(scores, order, axis=1)
  meta = {key: version.meta[key] for key in ("passage_store", "window", "corpus_rows")
          if key in version.meta}
  out_store.write(version.step, qids, out_rows, scores=out_scores, k=rows.shape[1],
                  meta={**meta, "reranked_from": version.directory, "teacher": teacher.identity})


def rerank(retrieval: str, out: str, teacher: QueryLikelihoodTeacher,
           questions: Mapping[str, QuestionText], *, cache_dir: str,
           passage_store: PassageStore | None = None, num_shards: int = 1,
           shard_index: int = 0, progress: bool = True) -> RerankResult:
  """Re-ranks every store of ``retrieval`` into ``out`` (see the module docstring).

  A store whose scored version already exists in ``out`` is left as it is (a finished job
  reruns as a no-op). With ``num_shards`` > 1 only the cache is filled.
  """
  if not 0 <= shard_index < num_shards:
    raise ValueError(f"shard_index {shard_index} outside [0, {num_shards})")
  cache = ScoreCache(cache_dir, teacher.identity)
  result = RerankResult()
  for name, store in input_stores(retrieval):
    version = store.latest()
    out_root = fileio.join(out, name) if name else out
    out_store = RetrievalStore(out_root)
    if version.step in out_store.versions():
      result.existing.append(out_root)
      continue
    rerank_version(version, out_store if num_shards == 1 else None, teacher, questions, cache,
                   passage_store=passage_store, num_shards=num_shards, shard_index=shard_index,
                   progress=progress, result=result)
  logger.info("rerank: %d pairs in the lists, %d scored now, %d cached in %s", result.pairs,
              result.scored, len(cache), cache_dir)
  return result
