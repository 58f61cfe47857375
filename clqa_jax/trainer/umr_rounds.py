"""UMR's rounds (reference/peer-methods.md section 4): retrieve -> re-rank -> distil, N times.

Round r (1-based) under ``work_dir/round_<r>/``:
  1. retrieve: the top-N (``TrainFeed.k``) passages of every training question, by BM25 (round
     1 with ``initial_retriever='bm25'``) or by the dense retriever of the round's starting
     checkpoint (exact search over the re-encoded corpus, as the refresh does) ->
     ``retrieval/process_<i>/`` (a RetrievalStore);
  2. re-rank: ``index.rerank`` with the query-likelihood teacher -> ``reranked/process_<i>/``;
     the score cache ``work_dir/score_cache`` is shared by every round, so a round scores only
     pairs no earlier round saw;
  3. distil: ``loop.train`` (its gin bindings: objective ``umr_kd``, optimizer, steps) in
     ``train/``, fed C of each question's N re-ranked passages per step
     (``TrainFeed.sample_passages``), starting from the previous round's checkpoint (round 1:
     ``init_checkpoint``, or a fresh init) with a fresh optimizer (spec 4.8). With a dev
     evaluation (``loop.train.eval_hook``) and ``CheckpointConfig.best_metric`` set, each
     round keeps its best checkpoint by that metric (spec 4.8: dev R@2kt) and the next round
     starts from it, not from the round's last step.
Resumable: a finished round (``round_<r>/DONE.json``) is skipped; inside a round, a written
store is not recomputed, the re-ranking resumes from its cache and training from its own
checkpoints. Single-process: the retrieval and the re-ranking run on process 0's questions.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Any

import gin
import jax
import numpy as np

from clqa_jax import fileio
from clqa_jax.checkpoints import training as checkpointing
from clqa_jax.data import paths
from clqa_jax.data.retrieval_store import RetrievalStore
from clqa_jax.data.train_feed import TrainFeed
from clqa_jax.models.model_api import UnifiedModel, check_model
from clqa_jax.trainer import loop
from clqa_jax.trainer import refresh
from clqa_jax.trainer import state_init

logger = logging.getLogger(__name__)

RETRIEVERS = ("dense", "bm25")
DONE = "DONE.json"
STORE = "process_00000"  # the per-process store layout TrainFeed reads (one process)


@gin.configurable
@dataclasses.dataclass
class UmrRounds:
  """The rounds driver (see the module docstring).

  Attributes:
    work_dir: the rounds' directory.
    feed: the training feed (task, corpus, k = N passages retrieved and re-ranked per
      question, sample_passages = C drawn per step); its ``retrieval`` is set per round.
    model: the student (``@refresh.unified_model()``).
    teacher: the query-likelihood teacher (Hugging Face mT5 directory or export).
    questions: JSONL with the text and lang of the training questions (the teacher's prompt
      and target; BM25's queries).
    rounds: number of rounds (spec 4.8: 2).
    init_checkpoint: round 1's student (an import or export); None: a fresh init.
    initial_retriever: round 1's retriever, 'dense' (the starting student) or 'bm25'.
    bm25_lang: BM25's analyzer language (the corpus's).
    teacher_vocab, teacher_dtype, teacher_batch_size: see ``index.rerank.load_teacher``.
    encode_batch_size: passages / questions per device step of the dense retrieval.
  """
  work_dir: str = gin.REQUIRED
  feed: TrainFeed = gin.REQUIRED
  model: UnifiedModel = gin.REQUIRED
  teacher: str = gin.REQUIRED
  questions: str = gin.REQUIRED
  rounds: int = 2
  init_checkpoint: str | None = None
  initial_retriever: str = "dense"
  bm25_lang: str = "en"
  teacher_vocab: str | None = None
  teacher_dtype: str = "float32"
  teacher_batch_size: int = 32
  encode_batch_size: int = 128

  def __post_init__(self):
    check_model(self.model, "UmrRounds.model")
    if self.rounds < 1:
      raise ValueError(f"UmrRounds.rounds must be positive, got {self.rounds}")
    if self.initial_retriever not in RETRIEVERS:
      raise ValueError(f"UmrRounds.initial_retriever={self.initial_retriever!r}; one of "
                       f"{RETRIEVERS}")
    if self.initial_retriever == "dense" and not self.init_checkpoint:
      raise ValueError("UmrRounds.initial_retriever='dense' retrieves with init_checkpoint: "
                       "set it, or use 'bm25'")
    if self.feed.sample_passages < 1:
      raise ValueError("UmrRounds.feed must draw passages from the re-ranked lists: set "
                       "TrainFeed.sample_passages (UMR: 16)")
    if jax.process_count() > 1:
      raise ValueError("UmrRounds runs on one process (its retrieval and re-ranking are not "
                       "collective)")

  def round_dir(self, r: int) -> str:
    return fileio.join(self.work_dir, f"round_{r}")

  def start_checkpoint(self, r: int) -> str | None:
    """The params round r starts from: round 1, ``init_checkpoint``; a later round, the
    previous round's kept-best step (model selection by the metric its training recorded,
    ``CheckpointConfig.best_metric``: dev R@2kt, spec 4.8), or its last step when it
    recorded none."""
    if r == 1:
      return self.init_checkpoint
    return self.selected_checkpoint(r - 1)[0]

  def selected_checkpoint(self, r: int) -> tuple[str, str | None]:
    """(round r's selected step directory, or its checkpoints directory: the latest step;
    the metric it was selected by, or None)."""
    from clqa_jax.checkpoints import export  # pylint: disable=g-import-not-at-top

    checkpoints = checkpointing.run_checkpoints_dir(fileio.join(self.round_dir(r), "train"))
    if not checkpointing.CheckpointConfig().best_metric:
      return checkpoints, None
    step, metric = export.select_step(checkpoints, "best")
    return fileio.join(checkpoints, str(step)), metric

  # -- 1. retrieve ---------------------------------------------------------------------------

  def retrieve(self, r: int) -> str:
    root = fileio.join(self.round_dir(r), "retrieval")
    store = RetrievalStore(fileio.join(root, STORE))
    if store.versions():
      return root
    started = time.time()
    if r == 1 and self.initial_retriever == "bm25":
      qids, rows, scores = self._bm25()
    else:
      qids, rows, scores = self._dense(self.start_checkpoint(r), r)
    store.write(r, qids, rows, scores=scores, k=self.feed.k,
                meta={"passage_store": self.feed.passage_store.directory, "round": r,
                      "retriever": "bm25" if r == 1 and self.initial_retriever == "bm25"
                      else "dense"})
    logger.info("round %d: retrieved the top %d of %d questions in %.1fs", r, self.feed.k,
                len(qids), time.time() - started)
    return root

  def _bm25(self) -> tuple[list[str], np.ndarray, np.ndarray]:
    from clqa_jax.data import readers  # pylint: disable=g-import-not-at-top
    from clqa_jax.index import bm25  # pylint: disable=g-import-not-at-top

    corpus = paths.resolve(self.feed.corpus)
    questions = list(readers.read_xor_jsonl(paths.resolve(self.questions),
                                            require_answers=False))
    index = bm25.Bm25Index.build(list(readers.read_passages_tsv(corpus)), self.bm25_lang)
    hits = bm25.retrieve_questions({None: index}, questions, self.feed.k, self.questions)
    store = self.feed.passage_store
    rows = np.full((len(questions), self.feed.k), -1, np.int64)
    scores = np.full((len(questions), self.feed.k), -np.inf, np.float32)
    for i, h in enumerate(hits):
      rows[i, :len(h)] = store.rows([p.pid for p, _ in h])
      scores[i, :len(h)] = [s for _, s in h]
    return [q.qid for q in questions], rows, scores

  def _dense(self, checkpoint: str | None, r: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    from clqa_jax.checkpoints import unified_params  # pylint: disable=g-import-not-at-top
    from clqa_jax.partitioning import partitioner as partitioner_lib  # pylint: disable=g-import-not-at-top

    partitioner = partitioner_lib.make_partitioner()
    abstract, shardings = state_init.abstract_params_and_shardings(
        partitioner, self.model, state_init.InitShapes())
    abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                            abstract, shardings)
    params = unified_params.load_unified_params(checkpoint, self.model.config, abstract,
                                                f"round {r}'s starting checkpoint")
    questions = refresh.collect_questions(self.feed, self.feed.question_batches(
        self.encode_batch_size, train=False))
    store = self.feed.passage_store
    work = fileio.join(self.round_dir(r), "embeddings")
    found = refresh.encode_and_search(
        self.model, params, store, questions.query_tokens, self.feed.k + 1, work,
        fingerprint={"umr_round": r, "checkpoint": checkpoint},
        encode_batch_size=self.encode_batch_size)
    fileio.rmtree(work)
    rows, scores = found.rows, found.scores
    source = store.rows(questions.source_pids, missing="pad")
    keep = rows != source[:, None]  # the question's own source passage is no retrieval
    order = np.argsort(~keep, axis=1, kind="stable")[:, :self.feed.k]
    return ([q.decode("utf-8") for q in questions.qids],
            np.take_along_axis(rows, order, axis=1), np.take_along_axis(scores, order, axis=1))

  # -- 2. re-rank ----------------------------------------------------------------------------

  def rerank(self, r: int, retrieval: str, teacher: Any) -> str:
    from clqa_jax.index import rerank  # pylint: disable=g-import-not-at-top

    out = fileio.join(self.round_dir(r), "reranked")
    result = rerank.rerank(retrieval, out, teacher, self._questions(),
                           cache_dir=fileio.join(self.work_dir, "score_cache"),
                           passage_store=self.feed.passage_store)
    logger.info("round %d: %d pairs re-ranked, %d newly scored", r, result.pairs, result.scored)
    return out

  def _questions(self):
    from clqa_jax.index import rerank  # pylint: disable=g-import-not-at-top
    return rerank.read_questions(paths.resolve(self.questions))

  # -- 3. distil -----------------------------------------------------------------------------

  def distil(self, r: int, reranked: str) -> loop.TrainResult:
    feed = dataclasses.replace(self.feed, retrieval=reranked)
    checkpoint = dataclasses.replace(checkpointing.CheckpointConfig(),
                                     init_checkpoint=self.start_checkpoint(r))
    return loop.train(model_dir=fileio.join(self.round_dir(r), "train"), model=self.model,
                      batches=feed, checkpoint=checkpoint)

  # -- all rounds ----------------------------------------------------------------------------

  def run(self) -> list[dict[str, Any]]:
    """Runs (or finishes) every round; returns each round's DONE record."""
    from clqa_jax.index import rerank  # pylint: disable=g-import-not-at-top

    records, teacher = [], None
    for r in range(1, self.rounds + 1):
      done = fileio.join(self.round_dir(r), DONE)
      if fileio.exists(done):
        logger.info("round %d is done (%s): skipped", r, done)
        records.append(fileio.read_json(done))
        continue
      retrieval = self.retrieve(r)
      if teacher is None:
        teacher = rerank.load_teacher(self.teacher, vocab_path=self.teacher_vocab,
                                      dtype=self.teacher_dtype,
                                      batch_size=self.teacher_batch_size)
      calls_before = teacher.calls
      reranked = self.rerank(r, retrieval, teacher)
      result = self.distil(r, reranked)
      if result.status != "completed":
        logger.warning("round %d: training %s at step %d; rerun to resume", r, result.status,
                       result.step)
        return records
      selected, selected_by = self.selected_checkpoint(r)
      record = {"round": r, "step": result.step, "checkpoints": result.checkpoint_dir,
                "start": self.start_checkpoint(r), "selected": selected,
                "selected_by": selected_by, "teacher_calls": teacher.calls - calls_before,
                "metrics": result.last_metrics}
      fileio.write_json(done, record)
      records.append(record)
    return records


@gin.configurable
def umr_rounds(driver: UmrRounds = gin.REQUIRED) -> list[dict[str, Any]]:
  """``clqa rounds``'s entry point: ``umr_rounds.driver = @UmrRounds()``."""
  return driver.run()
