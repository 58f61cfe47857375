"""``clqa eval``: an exported checkpoint on XOR-Retrieve / XOR-Full / MKQA, end to end.

  retrieval: questions -> encode_queries -> index search (exact, device or ScaNN) -> top-k
             (100) -> R@2kt / R@5kt / R@100kt (``xor_retrieve``, the official semantics);
  reading:   FiD over the top ``reader_k`` passages -> greedy decoding (max 50 tokens) ->
             XOR-Full F1/EM/BLEU (answers in the question's language), XOR-EnglishSpan F1/EM
             (XOR-Retrieve files: English answers) or MKQA F1/EM/BLEU.
Writes, into the output directory:
  metrics.json / metrics.md / metrics.<task>.png     per-language tables and bar charts
  xor_retrieve_predictions.json   [{"id", "lang", "ctxs": [text, ...], "pids": [...]}]
                                  (eval_xor_retrieve.py's input)
  xor_full_predictions.json / xor_engspan_predictions.json   {id: answer}
  mkqa_predictions.json           {lang: {id: answer}} (MKQA ids repeat across languages)
  eval_run.json                   the configuration, the inputs and the timings
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Sequence

import gin
import numpy as np

from clqa_jax import fileio
from clqa_jax.data.records import Passage, Question
from clqa_jax.serving import questions as questions_lib

logger = logging.getLogger(__name__)

MODES = ("retrieve", "read", "both")
# Every file ``evaluate`` may write (PNG names depend on the tables), so that a rerun with
# overwrite leaves no result of the previous run behind.
OUTPUT_FILES = ("metrics.json", "metrics.md", "xor_retrieve_predictions.json",
                "xor_full_predictions.json", "xor_engspan_predictions.json",
                "mkqa_predictions.json", "eval_run.json")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """What ``evaluate`` runs.

  Attributes:
    task: "xor-retrieve" (English passages, English answers: R@kt + XOR-EnglishSpan),
      "xor-full" (multilingual passages, answers in the question's language: F1/EM/BLEU) or
      "mkqa" (raw MKQA JSONL, converted as the official script; F1/EM/BLEU).
    mode: "retrieve", "read" or "both".
    search: "exact" (numpy), "device" (sharded exact) or "scann".
    top_k: retrieval depth (the spec's 100; capped at the corpus size).
    reader_k: passages the reader reads (the spec's 100; at most top_k).
    max_answer_length: greedy decoding length (the spec's 50).
    query_batch_size: questions per query-encoding step (all devices).
    reader_batch_size: questions per reading step (all devices).
    ks: R@{k}kt for these k.
    langs: only these languages (default: all in the file).
    limit: only the first ``limit`` questions (quick checks).
    mia_segmentation: MKQA: also segment zh/th/km before F1/EM.
    num_workers: processes tokenising passages for R@kt.
  """
  task: str = "xor-retrieve"
  mode: str = "both"
  search: str = "exact"
  top_k: int = 100
  reader_k: int = 100
  max_answer_length: int = 50
  query_batch_size: int = 64
  reader_batch_size: int = 8
  ks: tuple[int, ...] = (2, 5, 100)
  langs: tuple[str, ...] | None = None
  limit: int | None = None
  mia_segmentation: bool = False
  num_workers: int = 1

  def __post_init__(self):
    if self.task not in questions_lib.TASKS:
      raise ValueError(f"EvalConfig.task must be one of {questions_lib.TASKS}, got "
                       f"{self.task!r}")
    if self.mode not in MODES:
      raise ValueError(f"EvalConfig.mode must be one of {MODES}, got {self.mode!r}")
    for name in ("top_k", "reader_k", "max_answer_length", "query_batch_size",
                 "reader_batch_size", "num_workers"):
      if getattr(self, name) < 1:
        raise ValueError(f"EvalConfig.{name} must be positive, got {getattr(self, name)}")
    if self.reader_k > self.top_k:
      raise ValueError(f"EvalConfig.reader_k={self.reader_k} exceeds top_k={self.top_k}")


@dataclasses.dataclass
class Retrieval:
  """Ranked passages per question: rows/scores [N, k] (row -1 / -inf where fewer exist)."""
  rows: np.ndarray
  scores: np.ndarray


@dataclasses.dataclass
class EvalResult:
  tables: list
  paths: list[str]
  retrieval: Retrieval | None
  answers: dict[str, str] | None      # by Question.key
  timings: dict[str, float]


def retrieve(runner, index, query_tokens: np.ndarray, k: int, search: str = "exact",
             searcher=None) -> Retrieval:
  """Encodes queries [N, Lq] and returns each one's top-k passages of ``index``."""
  k = min(k, len(index))
  vectors = runner.encode_queries(query_tokens)
  searcher = searcher or index.searcher(search)
  scores, rows = searcher.search(vectors, k)
  return Retrieval(rows=np.asarray(rows, np.int64), scores=np.asarray(scores, np.float32))


def read(runner, index, query_tokens: np.ndarray, rows: np.ndarray,
         max_answer_length: int = 50) -> np.ndarray:
  """Greedy FiD answers [N, T] over the passages ``rows`` [N, K] (-1: padding passage)."""
  passage_tokens = index.store.tokens(rows.astype(np.int32))          # [N, K, Lp]
  return runner.generate(query_tokens, passage_tokens, max_answer_length)


def retrieval_table(task: str, qs: Sequence[Question], rows: np.ndarray,
                    passages: dict[int, Passage], ks: Sequence[int], num_workers: int = 1,
                    progress: bool = False):
  """R@kt (``xor_retrieve``) of the ranked passage rows [N, k] (-1: none) of questions ``qs``,
  with the gold answers of ``task``; ``passages`` holds every row's Passage."""
  from clqa_jax.eval import xor_retrieve

  predictions = [xor_retrieve.RetrievalPrediction(
      q.key, q.lang, [passages[int(r)].text for r in row if r >= 0]) for q, row in zip(qs, rows)]
  table = xor_retrieve.evaluate_xor_retrieve(predictions, questions_lib.gold_questions(qs), ks,
                                             num_workers, progress=progress)
  if task != "xor-retrieve":
    table.task = f"{task}-retrieval"
    table.info["answers"] = f"{task} gold answers (in the question's language)"
  return table


def reading_table(task: str, qs: Sequence[Question], answers: dict[str, str],
                  mia_segmentation: bool = False):
  """The reading metrics of ``task`` for answers {Question.key: answer}: XOR-Full F1/EM/BLEU,
  XOR-EnglishSpan F1/EM (xor-retrieve) or MKQA F1/EM/BLEU."""
  from clqa_jax.eval import mkqa
  from clqa_jax.eval import xor_engspan
  from clqa_jax.eval import xor_full

  gold = questions_lib.gold_questions(qs)
  if task == "xor-full":
    return xor_full.evaluate_xor_full(gold, answers)
  if task == "xor-retrieve":
    return xor_engspan.evaluate_xor_engspan(gold, answers)
  converted: dict[str, list[Question]] = {}
  predictions: dict[str, dict[str, str]] = {}
  for q in qs:
    converted.setdefault(q.lang, []).append(q)
    predictions.setdefault(q.lang, {})[q.qid] = answers[q.key]
  return mkqa.evaluate_mkqa(converted, predictions, mia_segmentation)


def _write_predictions(out_dir: str, config: EvalConfig, qs, rows, passages, answers,
                       overwrite: bool) -> list[str]:
  from clqa_jax.eval import prediction_files
  from clqa_jax.eval import report

  paths = []
  if rows is not None:
    # The official input (id, lang, ranked passage texts) plus the ranked pids, which the
    # script ignores. Written directly: MKQA ids repeat across languages.
    path = fileio.join(out_dir, "xor_retrieve_predictions.json")
    data = [{"id": q.qid, "lang": q.lang,
             "ctxs": [passages[int(r)].text for r in row if r >= 0],
             "pids": [passages[int(r)].pid for r in row if r >= 0]} for q, row in zip(qs, rows)]
    report.atomic_write_bytes(path, json.dumps(data, ensure_ascii=False).encode("utf-8"),
                              overwrite)
    paths.append(path)
  if answers is not None:
    if config.task == "mkqa":
      by_lang: dict[str, dict[str, str]] = {}
      for q in qs:
        by_lang.setdefault(q.lang, {})[q.qid] = answers[q.key]
      path = fileio.join(out_dir, "mkqa_predictions.json")
      report.atomic_write_bytes(path, json.dumps(by_lang, ensure_ascii=False, indent=1).encode(
          "utf-8"), overwrite)
    else:
      name = "xor_full" if config.task == "xor-full" else "xor_engspan"
      path = fileio.join(out_dir, f"{name}_predictions.json")
      prediction_files.write_answer_predictions(path, {q.qid: answers[q.key] for q in qs},
                                                overwrite)
    paths.append(path)
  return paths


def evaluate(export_dir: str, index_dir: str, data_file: str, out_dir: str,
             config: EvalConfig = EvalConfig(), *, runner=None, overwrite: bool = False,
             progress: bool = True) -> EvalResult:
  """Evaluates an exported checkpoint (see the module docstring).

  Args:
    export_dir: the exported checkpoint (``clqa export``).
    index_dir: its passage index (``clqa index``; built for the same export).
    data_file: XOR-Retrieve / XOR-Full JSONL, or raw MKQA JSONL (``config.task``).
    out_dir: where the tables and prediction files go.
    config: what to run.
    runner: a ModelRunner for the export (built here when None).
    overwrite: replace existing output files.
  """
  import jax

  from clqa_jax.checkpoints import exported
  from clqa_jax.data import spm_train
  from clqa_jax.serving import corpus_index
  from clqa_jax.eval import report
  from clqa_jax.serving.inference import ModelRunner

  timings: dict[str, float] = {}
  t0 = time.time()
  metrics_path = fileio.join(out_dir, "metrics.json")
  if fileio.exists(metrics_path) and not overwrite:
    raise FileExistsError(f"{metrics_path} exists; pass --overwrite to replace the results")
  manifest = exported.read_manifest(export_dir)
  vocab_path = fileio.join(export_dir, exported.VOCAB_FILE)
  if runner is None:
    runner = ModelRunner.from_export(export_dir, query_batch_size=config.query_batch_size,
                                     reader_batch_size=config.reader_batch_size,
                                     progress=progress)
  model_config = runner.config
  index = corpus_index.CorpusIndex(index_dir, export_dir)
  sp = spm_train.load_processor(vocab_path)
  qs = questions_lib.load_questions(data_file, config.task, config.langs, config.limit)
  query_tokens = questions_lib.tokenize_queries(sp, qs)
  timings["load"] = time.time() - t0
  depth = config.top_k if config.mode != "read" else config.reader_k
  t = time.time()
  retrieval = retrieve(runner, index, query_tokens, depth, config.search)
  timings["retrieve"] = time.time() - t
  logger.info("retrieved top-%d for %d questions in %.1fs", retrieval.rows.shape[1], len(qs),
              timings["retrieve"])
  tables, passages, answers = [], None, None
  if config.mode in ("retrieve", "both"):
    t = time.time()
    passages = index.passages(np.unique(retrieval.rows[retrieval.rows >= 0]))
    tables.append(retrieval_table(config.task, qs, retrieval.rows, passages, config.ks,
                                  config.num_workers, progress and jax.process_index() == 0))
    timings["retrieval_metrics"] = time.time() - t
  if config.mode in ("read", "both"):
    t = time.time()
    k = min(config.reader_k, retrieval.rows.shape[1])
    tokens = read(runner, index, query_tokens, retrieval.rows[:, :k], config.max_answer_length)
    texts = questions_lib.decode_answers(sp, tokens, model_config.mt5.eos_id,
                                         model_config.mt5.pad_id)
    answers = {q.key: a for q, a in zip(qs, texts)}
    timings["read"] = time.time() - t
    tables.append(reading_table(config.task, qs, answers, config.mia_segmentation))
  paths: list[str] = []
  if jax.process_index() == 0:
    fileio.makedirs(out_dir)
    if overwrite:
      for name in OUTPUT_FILES + tuple(
          fileio.basename(p) for p in fileio.glob(fileio.join(out_dir, "metrics.*.png"))):
        fileio.remove(fileio.join(out_dir, name), missing_ok=True)
    paths += _write_predictions(out_dir, config, qs,
                                retrieval.rows if passages is not None else None, passages,
                                answers, overwrite)
    for table in tables:
      table.info["checkpoint"] = manifest.get("source", {})
    paths += report.write_reports(fileio.join(out_dir, "metrics"), tables, overwrite)
    timings["total"] = time.time() - t0
    run_path = fileio.join(out_dir, "eval_run.json")
    run = {"export": fileio.abspath(export_dir), "index": fileio.abspath(index_dir),
           "data_file": fileio.abspath(data_file), "questions": len(qs),
           "config": dataclasses.asdict(config), "timings_seconds": timings,
           "searcher": config.search, "retrieved": int(retrieval.rows.shape[1])}
    report.atomic_write_bytes(run_path, json.dumps(run, indent=1).encode("utf-8"), True)
    paths.append(run_path)
  return EvalResult(tables, paths, retrieval, answers, timings)


def answer(runner, index, sp, qs: Sequence[Question], *, top_k: int = 100,
           reader_k: int = 100, search: str = "exact", max_answer_length: int = 50,
           searcher=None):
  """(answers [N], Retrieval) for questions: the ``clqa infer`` path."""
  query_tokens = questions_lib.tokenize_queries(sp, qs)
  retrieval = retrieve(runner, index, query_tokens, max(top_k, reader_k), search, searcher)
  k = min(reader_k, retrieval.rows.shape[1])
  tokens = read(runner, index, query_tokens, retrieval.rows[:, :k], max_answer_length)
  c = runner.config.mt5
  return questions_lib.decode_answers(sp, tokens, c.eos_id, c.pad_id), retrieval
