"""The dev evaluation the training loop runs every ``eval_every_steps`` (its ``eval_hook``).

With the current params, on every process:
  1. retrieval: the dev questions' exact top-``top_k`` passages of the corpus (all of it, or
     its first ``max_passages`` rows), encoded and searched on device exactly as the passage
     refresh does (``refresh.encode_and_search``) -> R@kt (``eval.xor_retrieve``);
  2. reading: greedy FiD answers over each question's top ``reader_k`` passages
     (``serving.inference.ModelRunner`` on the run's own partitioner) -> XOR-Full F1/EM/BLEU
     (answers in the question's language) or, for XOR-Retrieve, XOR-EnglishSpan F1/EM.
The result is ``{"r@2kt": .., "r@5kt": .., "f1": .., "em": .., ...}`` (x100, macro over the
languages) plus the same per language (``"f1/ja"``); the loop writes them to TensorBoard as
``eval/<name>`` and keeps the best checkpoint by ``CheckpointConfig.best_metric`` (e.g.
``'eval/f1'``). Every process computes the same numbers (the checkpoint manager's keep-best
decisions must agree on every process); only process 0 logs and shows progress.

  loop.train.eval_hook = @eval_hook.DevEvaluation()
  eval_hook.DevEvaluation:
    model = %MODEL
    task = 'xor-full'
    data_file = 'xor/xor_dev_full_v1_1.jsonl'
    corpus = 'passages/all_w100.tsv'
    work_dir = %MODEL_DIR
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Sequence

import gin
import jax
import numpy as np

from clqa_jax import fileio
from clqa_jax.data import passage_store
from clqa_jax.data import paths
from clqa_jax.data import spm_train
from clqa_jax.data import train_feed
from clqa_jax.models.model_api import UnifiedModel, check_model
from clqa_jax.serving import questions as questions_lib
from clqa_jax.serving import runner as runner_lib
from clqa_jax.serving.inference import ModelRunner
from clqa_jax.trainer import refresh

logger = logging.getLogger(__name__)

TASKS = ("xor-retrieve", "xor-full")
WORK_SUBDIR = "dev_eval"


def _barrier(name: str) -> None:
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


def _remove_everywhere(path: str) -> None:
  """Process 0 removes ``path`` once every process is past it."""
  _barrier(f"dev_eval_remove:{path}")
  if jax.process_index() == 0 and fileio.exists(path):
    fileio.rmtree(path)
  _barrier(f"dev_eval_removed:{path}")


def metric_values(tables: Sequence[Any]) -> dict[str, float]:
  """{"r@2kt": macro, "r@2kt/ja": per language, ...} of ``eval.table.LanguageTable``s
  (metric names lower-cased)."""
  out: dict[str, float] = {}
  for table in tables:
    for metric in table.metrics:
      name = metric.lower()
      out[name] = float(table.macro[metric])
      for lang, scores in table.scores.items():
        out[f"{name}/{lang}"] = float(scores[metric])
  return out


@gin.configurable
@dataclasses.dataclass
class DevEvaluation:
  """The loop's ``eval_hook``: ``(step, params) -> {metric: value}`` (see the module docstring).

  Attributes:
    model: the ``UnifiedModel`` being trained (gin: ``%MODEL``).
    task: 'xor-retrieve' (XOR-Retrieve dev, English corpus: R@kt, XOR-EnglishSpan F1/EM) or
      'xor-full' (XOR-Full dev, multilingual corpus: R@kt with the answers in the question's
      language, F1/EM/BLEU).
    data_file: the dev JSONL (relative paths are under the data root).
    corpus: the passage TSV searched (relative paths are under the data root).
    work_dir: a directory every process can reach (e.g. ``%MODEL_DIR``); the embeddings go
      to ``<work_dir>/dev_eval/step_<N>`` and are removed after each evaluation.
    max_passages: search only the corpus's first ``max_passages`` rows (None: all of it).
    max_questions: evaluate only the first ``max_questions`` dev questions (None: all).
    langs: only these languages (None: all in the file).
    top_k: passages retrieved per question (R@kt reads as many as its k*1000 tokens need).
    ks: report R@{k}kt for these k.
    reader_k: passages read per question (at most ``top_k``); 0: no reading.
    max_answer_length: greedy decoding length.
    reader_batch_size: questions per reading step (all devices).
    encode_batch_size, dtype, search_chunk_rows: as ``refresh.PassageRefresh``.
    passage_store_dir: the corpus's PassageStore (default under ``<data_root>/stores``, shared
      with the training feed when it reads the same corpus).
    num_workers: processes tokenising passages for R@kt.
    progress: progress bars (process 0).
  """
  model: UnifiedModel = gin.REQUIRED
  task: str = gin.REQUIRED
  data_file: str = gin.REQUIRED
  corpus: str = gin.REQUIRED
  work_dir: str = gin.REQUIRED
  max_passages: int | None = None
  max_questions: int | None = None
  langs: tuple[str, ...] | None = None
  top_k: int = 100
  ks: tuple[int, ...] = (2, 5)
  reader_k: int = 100
  max_answer_length: int = 50
  reader_batch_size: int = 8
  encode_batch_size: int = 128
  dtype: str = "float16"
  search_chunk_rows: int = 16384
  passage_store_dir: str | None = None
  num_workers: int = 1
  progress: bool = True

  def __post_init__(self):
    check_model(self.model, "DevEvaluation.model")
    if self.task not in TASKS:
      raise ValueError(f"DevEvaluation.task must be one of {TASKS}, got {self.task!r}")
    for name in ("top_k", "max_answer_length", "reader_batch_size", "encode_batch_size",
                 "num_workers"):
      if getattr(self, name) < 1:
        raise ValueError(f"DevEvaluation.{name} must be positive, got {getattr(self, name)}")
    if not 0 <= self.reader_k <= self.top_k:
      raise ValueError(f"DevEvaluation.reader_k={self.reader_k} must be in [0, top_k="
                       f"{self.top_k}]")
    for name in ("max_passages", "max_questions"):
      if getattr(self, name) is not None and getattr(self, name) < 1:
        raise ValueError(f"DevEvaluation.{name} must be positive or None, got "
                         f"{getattr(self, name)}")
    self._partitioner = None
    self._runner = None
    self._texts: dict[int, Any] = {}
    # Set by ``setup``: the vocabulary, the dev questions and their query tokens [N, Lq], the
    # corpus's TSV path and PassageStore.
    self.sp = self.questions = self.query_tokens = self.corpus_path = self.store = None
    self.last_rows: np.ndarray | None = None   # the latest evaluation's retrieved rows [N, k]

  # -- the loop's protocol ---------------------------------------------------------------

  def setup(self, partitioner: Any) -> None:
    """Reads the dev questions and opens the corpus's PassageStore (built by process 0 on
    first use); ``partitioner`` is the run's, so reading runs on the params as they are."""
    self._partitioner = partitioner
    self.sp = spm_train.load_processor(paths.vocabulary_path())
    self.questions = questions_lib.load_questions(
        paths.resolve(self.data_file), self.task, self.langs, self.max_questions)
    self.query_tokens = questions_lib.tokenize_queries(self.sp, self.questions)
    self.corpus_path = paths.resolve(self.corpus)
    self.store = train_feed.open_passage_store(self.corpus, self.passage_store_dir)
    if jax.process_index() == 0:
      logger.info("dev evaluation: %d %s questions of %s over %d passages of %s",
                  len(self.questions), self.task, self.data_file, self.num_passages,
                  self.corpus_path)

  @property
  def num_passages(self) -> int:
    n = len(self.store)
    return n if self.max_passages is None else min(n, self.max_passages)

  def __call__(self, step: int, params: Any) -> dict[str, float]:
    if self._partitioner is None:
      raise RuntimeError("DevEvaluation.setup(partitioner) must run before the first "
                         "evaluation (loop.train calls it)")
    started = time.time()
    lead = jax.process_index() == 0
    work = fileio.join(self.work_dir, WORK_SUBDIR, f"step_{step:010d}")
    _remove_everywhere(work)   # left by an interrupted evaluation of this step
    found = refresh.encode_and_search(
        self.model, params, self.store, self.query_tokens, self.top_k, work,
        fingerprint={"dev_eval_step": int(step)}, num_rows=self.num_passages,
        encode_batch_size=self.encode_batch_size, dtype=self.dtype,
        search_chunk_rows=self.search_chunk_rows, progress=self.progress)
    _remove_everywhere(work)
    rows = found.rows
    self.last_rows = rows
    tables = [runner_lib.retrieval_table(self.task, self.questions, rows, self._passages(rows),
                                         self.ks, self.num_workers, self.progress and lead)]
    if self.reader_k:
      runner = self._runner_on(params)
      try:
        tokens = runner.generate(self.query_tokens,
                                 self.store.tokens(rows[:, :self.reader_k].astype(np.int32)),
                                 self.max_answer_length)
      finally:
        runner.place_params(None)   # the loop's next step replaces these params
      mt5 = self.model.config.mt5
      texts = questions_lib.decode_answers(self.sp, tokens, mt5.eos_id, mt5.pad_id)
      answers = {q.key: a for q, a in zip(self.questions, texts)}
      tables.append(runner_lib.reading_table(self.task, self.questions, answers))
    metrics = metric_values(tables)
    if lead:
      macro = {k: round(v, 2) for k, v in metrics.items() if "/" not in k}
      logger.info("dev evaluation at step %d (%d questions, %d passages) in %.1fs: %s", step,
                  len(self.questions), self.num_passages, time.time() - started, macro)
    return metrics

  # -- helpers -------------------------------------------------------------------------------

  def _passages(self, rows: np.ndarray) -> dict[int, Any]:
    """{row: Passage} of the retrieved rows (texts read from the TSV once, then cached)."""
    missing = set(np.unique(rows[rows >= 0]).tolist()) - set(self._texts)
    if missing:
      self._texts.update(passage_store.read_passages(self.store, missing, self.corpus_path))
    return self._texts

  def _runner_on(self, params: Any):
    """The reading ``ModelRunner`` (built once: its compiled decoding is reused) on ``params``."""
    if self._runner is None:
      self._runner = ModelRunner(self.model.config, params, partitioner=self._partitioner,
                                 reader_batch_size=self.reader_batch_size,
                                 progress=self.progress)
    else:
      self._runner.place_params(params)
    return self._runner
