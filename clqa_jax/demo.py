"""``clqa demo``: the whole pipeline on the embedded mini corpus with the tiny model.

  synth      clqa synth all (synth/mini.gin) -> OUT/data/{passages,stage1,stage2,xor}
  vocab      a 2500-piece SentencePiece model -> OUT/data/vocab/spm.model; then the teacher's
             English queries -> OUT/data/teacher_en (miniwiki/teacher_questions)
  untrained  the initial parameters every run starts from (one step at learning rate 0)
  teacher    the stage-1 teacher: English cloze queries and questions, reader CE + DPR NLL
             (experiments/mini_teacher_en)
  stage1     CLR-PT distilling the frozen teacher (experiments/mini_clr_pt), starting from it
  stage2     MLQA-PT, XOR-Retrieve variant, with passage refresh (experiments/mini_mlqa_pt)
  finetune   XOR-Full train split (answers in the question's language, multilingual corpus)
             with passage refresh (experiments/mini_finetune_full)
  export     clqa export of the fine-tuned checkpoint -> OUT/export
  eval       `clqa index` of both corpora -> OUT/index/{psgs_w100,all_w100}, then `clqa eval`:
             XOR-Retrieve dev R@2kt/R@5kt + XOR-EnglishSpan F1/EM (English corpus)
             and XOR-Full dev F1/EM/BLEU (multilingual corpus), FiD greedy decoding -> OUT/eval,
             plus passage recall R@1/R@5 of the gold English article (eval/passage_recall)
  eval_<s>   the same for the untrained model and each earlier stage -> OUT/stages/<s>/
  bm25       the lexical baseline: BM25 over the English corpus (retrieval only)

The result table (``demo_results``: one row per model, untrained first, final last) is printed
and written as OUT/results.json and OUT/results.png. Every step records OUT/steps/<step>.json
when it completes, with the settings that define it (``STEP_SETTINGS``); a rerun skips completed
steps (and the training runs resume from their own checkpoints when a step was interrupted), and
refuses to start when a completed step was made with other settings: its results would be shown
as those of the new ones. Programs are compiled once into OUT/jax_cache. ``prepare_data``
(synth + vocab) is also what the integration tests build their data root with.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import time
from typing import Any, Callable

from clqa_jax import fileio
from clqa_jax.data import formats
from clqa_jax.data import readers
from clqa_jax.miniwiki import teacher_questions

logger = logging.getLogger(__name__)

# Near word level on the mini corpus (it supports about 2,530 pieces): a name in any script is
# one or two pieces, so the tiny model learns a name once instead of composing it from letters
# (1,000 pieces split most non-Latin names into single characters). Fits the tiny model's 2560
# embeddings (gin/experiments/mini_common.gin).
VOCAB_SIZE = 2500


def run_synth(root: str, gin_file: str = "synth/mini.gin") -> dict:
  """``clqa synth all --gin_file synth/mini.gin --out root`` in this process (gin restored)."""
  from clqa_jax import gin_utils  # pylint: disable=g-import-not-at-top
  from clqa_jax.synth import config as config_lib  # pylint: disable=g-import-not-at-top
  from clqa_jax.synth import stages  # pylint: disable=g-import-not-at-top

  logging.getLogger("apache_beam").setLevel(logging.WARNING)
  with gin_utils.scoped_config():
    gin_utils.parse_gin([gin_file], [], finalize=False)
    cfg = config_lib.SynthConfig(output_dir=root)
    return stages.run_all(cfg)


def vocabulary_text(root: str, out_path: str) -> int:
  """Writes the vocabulary training text: passage titles and texts of both corpora, then the
  synthetic questions, English cloze queries and answers. Returns the number of lines."""
  lines = 0
  with fileio.atomic_open(out_path, "w") as out:
    for name in ("passages/all_w100.tsv", "passages/psgs_w100.tsv"):
      for p in readers.read_passages_tsv(fileio.join(root, *name.split("/"))):
        out.write(f"{p.title}\n{p.text}\n")
        lines += 2
    for stage, read in (("stage1", readers.read_stage1_jsonl), ("stage2", readers.read_stage2_jsonl)):
      for path in readers.expand_shards(fileio.join(root, stage, "*.jsonl-*-of-*")):
        for record in read(path):
          for text in (record.question, getattr(record, "question_en", ""), *record.answers):
            if text:
              out.write(text + "\n")
              lines += 1
  return lines


def train_vocabulary(root: str, vocab_size: int = VOCAB_SIZE) -> str:
  """``<root>/vocab/spm.model`` (trained once; mT5 special ids, byte fallback)."""
  from clqa_jax.data import spm_train  # pylint: disable=g-import-not-at-top

  path = fileio.join(root, "vocab", "spm.model")
  if fileio.exists(path):
    return path
  with tempfile.TemporaryDirectory(prefix="clqa-vocab-text-") as tmp:
    text = os.path.join(tmp, "vocab.txt")
    vocabulary_text(root, text)
    spm_train.train_sentencepiece([text], vocab_size, path, hard_vocab_limit=False)
  return path


def prepare_data(root: str, vocab_size: int = VOCAB_SIZE) -> dict:
  """Synthetic data and vocabulary under ``root``; returns timings and the vocabulary path."""
  started = time.time()
  run_synth(root)
  synth_s = time.time() - started
  vocab = train_vocabulary(root, vocab_size)
  teacher_queries = teacher_questions.write_teacher_queries(root)
  return {"synth_seconds": synth_s, "vocab_seconds": time.time() - started - synth_s,
          "vocab": vocab, "teacher_queries": teacher_queries}


XOR_LANGUAGES = formats.XOR_LANGUAGES
# The models of the result table in row order (the lexical baseline goes after the untrained
# model); the last one is exported and evaluated as the final model.
MODEL_STAGES = ("untrained", "teacher", "stage1", "stage2", "finetune")
BASELINE = "bm25"
STEPS = ("synth", "vocab", "untrained", "eval_untrained", BASELINE, "teacher", "eval_teacher",
         "stage1", "eval_stage1", "stage2", "eval_stage2", "finetune", "export", "eval")


@dataclasses.dataclass
class DemoConfig:
  """What ``clqa demo`` runs (the defaults take about 9 minutes on 2 CPU cores).

  Attributes:
    out: the output directory (data/, runs/, export/, eval/, steps/, jax_cache/).
    teacher_steps, stage1_steps, stage2_steps, finetune_steps: training steps of each run.
    refresh_every: stage-2 and fine-tuning passage refresh interval (steps).
    batch_size: questions (stage 1: pairs) per step.
    num_passages: passages per question in training and reading.
    retrieval_depth: passages retrieved per question for R@kt.
    max_answer_tokens: greedy decoding length of the answers.
    gin_files, gin_bindings: parsed after each training run's experiment file (overrides).
    jax_cache: persistent compilation cache ("": OUT/jax_cache; None: JAX's own setting).
    min_r5_gain: the final model must beat the untrained one by this many points of macro
      passage R@5 and reach F1 > 0 in every language, or run_demo reports failures (None: no
      check, for runs too short to learn).
  """
  out: str
  teacher_steps: int = 600
  stage1_steps: int = 800
  stage2_steps: int = 200
  finetune_steps: int = 400
  refresh_every: int = 100
  batch_size: int = 8
  num_passages: int = 4
  retrieval_depth: int = 100
  max_answer_tokens: int = 12
  gin_files: tuple[str, ...] = ()
  gin_bindings: tuple[str, ...] = ()
  jax_cache: str | None = ""
  min_r5_gain: float | None = 20.0

  @property
  def data(self) -> str:
    return fileio.join(self.out, "data")

  def run_dir(self, name: str) -> str:
    return fileio.join(self.out, "runs", name)


# The DemoConfig fields that define each step's result (recorded in OUT/steps/<step>.json).
# A training step depends on the earlier ones through their checkpoints; a rerun refuses any
# changed field of a completed step, so each step lists only its own.
_EVAL_SETTINGS = ("num_passages", "retrieval_depth", "max_answer_tokens")
STEP_SETTINGS: dict[str, tuple[str, ...]] = {
    "synth": (),
    "vocab": (),
    "untrained": ("batch_size", "num_passages", "gin_files", "gin_bindings"),
    "eval_untrained": _EVAL_SETTINGS,
    BASELINE: ("retrieval_depth",),
    "teacher": ("teacher_steps", "batch_size", "num_passages", "gin_files", "gin_bindings"),
    "eval_teacher": _EVAL_SETTINGS,
    "stage1": ("stage1_steps", "batch_size", "num_passages", "retrieval_depth",
               "max_answer_tokens", "gin_files", "gin_bindings"),
    "eval_stage1": _EVAL_SETTINGS,
    "stage2": ("stage2_steps", "refresh_every", "batch_size", "num_passages", "retrieval_depth",
               "max_answer_tokens", "gin_files", "gin_bindings"),
    "eval_stage2": _EVAL_SETTINGS,
    "finetune": ("finetune_steps", "refresh_every", "batch_size", "num_passages",
                 "retrieval_depth", "max_answer_tokens", "gin_files", "gin_bindings"),
    "export": (),
    "eval": _EVAL_SETTINGS,
}
# The DemoConfig fields that change where or how fast a step runs, or what is checked after,
# not what a step computes.
NOT_STEP_SETTINGS = ("out", "jax_cache", "min_r5_gain")


def step_settings(cfg: DemoConfig, name: str) -> dict[str, Any]:
  """{field: value} of the settings that define step ``name``, as JSON stores them."""
  return json.loads(json.dumps({f: getattr(cfg, f) for f in STEP_SETTINGS[name]}))


def _step_record(cfg: DemoConfig, name: str) -> str:
  return fileio.join(cfg.out, "steps", f"{name}.json")


def check_step_settings(cfg: DemoConfig) -> None:
  """Refuses a rerun whose settings differ from those a completed step recorded
  (``synth.manifest.StageConflictError``, naming the step record and the changed settings)."""
  from clqa_jax.synth.manifest import StageConflictError  # pylint: disable=g-import-not-at-top

  changed = []  # (record, ["name old -> new", ...]) of each completed step that differs
  for name in STEPS:
    record = _step_record(cfg, name)
    if not STEP_SETTINGS[name] or not fileio.exists(record):
      continue
    recorded = fileio.read_json(record).get("settings")
    now = step_settings(cfg, name)
    if recorded is None:
      changed.append((record, ["settings not recorded (an older clqa made it)"]))
    elif recorded != now:
      changed.append((record, [f"{k} {recorded.get(k)!r} -> {now.get(k)!r}"
                               for k in sorted(set(recorded) | set(now))
                               if recorded.get(k) != now.get(k)]))
  if changed:
    record, differences = changed[0]
    later = [fileio.basename(r) for r, _ in changed[1:]]
    also = f" (also {', '.join(later)})" if later else ""
    raise StageConflictError(
        f"{record}: {', '.join(differences)}: this step finished with other settings{also}; "
        f"use a new --out, or remove {cfg.out} to run every step again")


def _print(msg: str) -> None:
  print(msg, flush=True)


def _step(cfg: DemoConfig, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
  """Runs a step unless its completion record exists; writes the record atomically."""
  record = _step_record(cfg, name)
  if fileio.exists(record):
    done = fileio.read_json(record)
    _print(f"[{name}] already complete ({done.get('seconds', 0):.0f}s earlier): skipped")
    return done
  _print(f"[{name}] running ...")
  started = time.time()
  info = dict(fn() or {})
  info["seconds"] = time.time() - started
  info["settings"] = step_settings(cfg, name)
  fileio.atomic_write(record, json.dumps(info, indent=1, ensure_ascii=False, default=str))
  _print(f"[{name}] done in {info['seconds']:.1f}s")
  return info


def _train(cfg: DemoConfig, experiment: str, name: str, steps: int,
           bindings: list[str]) -> dict[str, Any]:
  """One gin experiment run in this process (on an empty gin config, restored after)."""
  from clqa_jax import gin_utils  # pylint: disable=g-import-not-at-top
  from clqa_jax.trainer import loop  # pylint: disable=g-import-not-at-top
  from clqa_jax.trainer import register_configurables  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import

  model_dir = cfg.run_dir(name)
  with gin_utils.scoped_config():
    gin_utils.parse_gin([experiment, *cfg.gin_files], [
        f"data_root.path = '{cfg.data}'", f"MODEL_DIR = '{model_dir}'", f"TRAIN_STEPS = {steps}",
        f"BATCH_SIZE = {cfg.batch_size}", f"NUM_PASSAGES = {cfg.num_passages}",
        f"SAVE_EVERY = {max(steps // 2, 1)}", *bindings, *cfg.gin_bindings])
    result = loop.train()
  if result.status != "completed":
    raise RuntimeError(f"{name}: training ended {result.status} at step {result.step}")
  return {"model_dir": model_dir, "checkpoints": result.checkpoint_dir, "step": result.step,
          "metrics": result.last_metrics}


# (task, passage corpus, dev file) of the two evaluations, as `clqa index` + `clqa eval` run them.
EVALUATIONS = (("xor-retrieve", "psgs_w100.tsv", "xor_dev_retrieve_eng_span.jsonl"),
               ("xor-full", "all_w100.tsv", "xor_dev_full.jsonl"))


def evaluate(cfg: DemoConfig, export_dir: str, work_dir: str,
             languages=XOR_LANGUAGES, read: bool = True) -> dict[str, Any]:
  """An exported model on the mini dev sets, through the code of `clqa index` and `clqa eval`:
  XOR-Retrieve (English corpus: R@kt, passage recall and XOR-EnglishSpan F1/EM of the English
  answers) and XOR-Full (multilingual corpus: F1/EM/BLEU), FiD over the top ``num_passages``
  passages. Indexes go to ``work_dir``/index/<corpus>, reports to ``work_dir``/eval/<task>.
  ``read=False`` evaluates a retriever alone: XOR-Retrieve's retrieval metrics, no reading."""
  from clqa_jax.serving import corpus_index  # pylint: disable=g-import-not-at-top
  from clqa_jax.serving import runner as runner_lib  # pylint: disable=g-import-not-at-top
  from clqa_jax.serving.inference import ModelRunner  # pylint: disable=g-import-not-at-top

  model_runner = ModelRunner.from_export(export_dir, progress=False)
  tables, paths = [], []
  for task, corpus, data_file in EVALUATIONS if read else EVALUATIONS[:1]:
    index_dir = fileio.join(work_dir, "index", os.path.splitext(corpus)[0])
    corpus_index.build_index(export_dir, fileio.join(cfg.data, "passages", corpus), index_dir,
                             runner=model_runner, progress=False)
    config = runner_lib.EvalConfig(task=task, top_k=cfg.retrieval_depth,
                                   reader_k=cfg.num_passages,
                                   max_answer_length=cfg.max_answer_tokens,
                                   langs=tuple(languages),
                                   mode="both" if read else "retrieve")
    out_dir = fileio.join(work_dir, "eval", task)
    result = runner_lib.evaluate(export_dir, index_dir, fileio.join(cfg.data, "xor", data_file),
                                 out_dir, config, runner=model_runner, overwrite=True,
                                 progress=False)
    tables += result.tables
    paths += result.paths
    if task == "xor-retrieve":
      from clqa_jax.eval import xor_retrieve  # pylint: disable=g-import-not-at-top
      predictions = xor_retrieve.read_retrieve_predictions(
          fileio.join(out_dir, "xor_retrieve_predictions.json"), with_passage_ids=True)
      tables.append(passage_recall_table(cfg, predictions))
  return {"tables": [t.to_dict() for t in tables], "reports": paths}


def passage_recall_table(cfg: DemoConfig, predictions):
  """Passage recall R@1/R@5 of XOR-Retrieve dev ``predictions``: the gold English article
  (``gold_titles`` of the mini corpus's questions) among the first k passages."""
  from clqa_jax.eval import passage_recall  # pylint: disable=g-import-not-at-top

  titles = passage_recall.read_gold_titles(fileio.join(cfg.data, "xor", EVALUATIONS[0][2]))
  gold = passage_recall.gold_passage_ids(
      titles, readers.read_passages_tsv(fileio.join(cfg.data, "passages", EVALUATIONS[0][1])))
  return passage_recall.evaluate_passage_recall(predictions, gold, (1, 5),
                                                task="xor-retrieve-passages")


def bm25_baseline(cfg: DemoConfig, languages=XOR_LANGUAGES) -> dict[str, Any]:
  """`clqa bm25` over the English corpus for the XOR-Retrieve dev questions (what a lexical
  retriever finds for questions in other languages): R@kt and passage recall."""
  from clqa_jax.eval import prediction_files  # pylint: disable=g-import-not-at-top
  from clqa_jax.eval import xor_retrieve  # pylint: disable=g-import-not-at-top
  from clqa_jax.index import bm25  # pylint: disable=g-import-not-at-top

  _, corpus, data_file = EVALUATIONS[0]
  questions_path = fileio.join(cfg.data, "xor", data_file)
  questions = [q for q in readers.read_xor_jsonl(questions_path) if q.lang in languages]
  index = bm25.Bm25Index.build(
      list(readers.read_passages_tsv(fileio.join(cfg.data, "passages", corpus))), "en")
  hits = bm25.retrieve_questions({None: index}, questions, cfg.retrieval_depth, questions_path)
  predictions = [xor_retrieve.RetrievalPrediction(q.qid, q.lang, [p.text for p, _ in h],
                                                  [p.pid for p, _ in h])
                 for q, h in zip(questions, hits)]
  path = fileio.join(cfg.out, "stages", BASELINE, "xor_retrieve_predictions.json")
  prediction_files.write_retrieve_predictions(path, predictions, overwrite=True)
  tables = [xor_retrieve.evaluate_xor_retrieve(predictions, questions),
            passage_recall_table(cfg, predictions)]
  return {"tables": [t.to_dict() for t in tables], "reports": [path]}


def _stage_row(stage: str, tables) -> dict[str, Any]:
  """The result-table row of one evaluation's tables (no reading table: retrieval only)."""
  from clqa_jax import demo_results  # pylint: disable=g-import-not-at-top

  by_task = {t.task: t for t in tables}
  return demo_results.stage_row(stage, [by_task["xor-retrieve"], by_task["xor-retrieve-passages"]],
                                by_task.get("xor-full"))


def collapse_floor(cfg: DemoConfig, passage_recall) -> int:
  """The fewest distinct first-ranked passages over the questions of ``passage_recall`` (the
  final model's XOR-Retrieve passage-recall table) of a retriever that has not collapsed, by the
  passage refresh's rule (``refresh.collapse_floor``) over the English corpus."""
  from clqa_jax.trainer import refresh  # pylint: disable=g-import-not-at-top

  corpus = fileio.join(cfg.data, "passages", EVALUATIONS[0][1])
  passages = sum(1 for _ in readers.read_passages_tsv(corpus))
  return refresh.collapse_floor(sum(passage_recall.counts.values()), passages)


def _first_ranked_line(tables_by_row: dict[str, list[dict[str, Any]]]) -> str:
  """How many different passages each row ranks first over the dev questions (passage recall's
  ``distinct_top1_passages``): a collapsed retriever ranks the same few first for every
  question and can still reach a fair R@5 where a few articles are gold for many questions."""
  counts = []
  for name, tables in tables_by_row.items():
    info = next((t["info"] for t in tables if t["task"] == "xor-retrieve-passages"), {})
    counts.append(f"{name} {info.get('distinct_top1_passages', '?')}")
  return ("Distinct passages ranked first over the XOR-Retrieve dev questions (few: the "
          "retriever ranks the same passages first for every question): " + ", ".join(counts))


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
  """Runs (or resumes) every step; prints progress, the result table and where outputs are.

  Returns the final model's tables, the result rows, the reports, the runtime and
  ``failures`` (why the final model does not beat the untrained one; empty when it does or
  ``cfg.min_r5_gain`` is None)."""
  import jax  # pylint: disable=g-import-not-at-top

  from clqa_jax import demo_results  # pylint: disable=g-import-not-at-top
  from clqa_jax.eval.table import LanguageTable  # pylint: disable=g-import-not-at-top

  started = time.time()
  check_step_settings(cfg)
  fileio.makedirs(cfg.out)
  if cfg.jax_cache is not None:
    jax.config.update("jax_compilation_cache_dir", cfg.jax_cache or fileio.join(cfg.out,
                                                                                "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  _step(cfg, "synth", lambda: {"stages": {k: v for k, v in run_synth(cfg.data).items()}})
  _step(cfg, "vocab", lambda: {"vocab": train_vocabulary(cfg.data)})
  # The teacher's queries (the untrained and teacher runs read them), from stage 1.
  teacher_questions.write_teacher_queries(cfg.data)
  vocab = fileio.join(cfg.data, "vocab", "spm.model")

  def export(run: dict[str, Any], out: str) -> dict[str, Any]:
    from clqa_jax.checkpoints import export as export_lib  # pylint: disable=g-import-not-at-top
    manifest = export_lib.export_checkpoint(run["checkpoints"], out, overwrite=True,
                                            vocab_path=vocab)
    return {"export": out, "manifest": manifest}

  def evaluate_stage(name: str, run: dict[str, Any]) -> dict[str, Any]:
    work_dir = fileio.join(cfg.out, "stages", name)
    fileio.rmtree(work_dir)  # an interrupted attempt's index belongs to its own export
    export_dir = fileio.join(work_dir, "export")
    export(run, export_dir)
    return evaluate(cfg, export_dir, work_dir)

  evaluations: dict[str, dict[str, Any]] = {}
  # The initial parameters (seed 42, as every run's): one step at learning rate 0 writes them
  # as a checkpoint; its update norm must be 0.
  untrained = _step(cfg, "untrained", lambda: _train(
      cfg, "experiments/mini_teacher_en.gin", "untrained", 1, ["LEARNING_RATE = 0.0"]))
  if untrained["metrics"].get("update_norm", 0.0) != 0.0:
    raise RuntimeError(f"the untrained run changed its parameters: {untrained['metrics']}")
  evaluations["untrained"] = _step(cfg, "eval_untrained",
                                   lambda: evaluate_stage("untrained", untrained))
  evaluations[BASELINE] = _step(cfg, BASELINE, lambda: bm25_baseline(cfg))
  teacher = _step(cfg, "teacher", lambda: _train(
      cfg, "experiments/mini_teacher_en.gin", "teacher", cfg.teacher_steps, []))
  evaluations["teacher"] = _step(cfg, "eval_teacher", lambda: evaluate_stage("teacher", teacher))
  # Each stage's last checkpoint is evaluated by the demo itself (eval_<stage>), so the
  # students' periodic dev evaluation and keep-best (experiments/dev_eval.gin) are off.
  dev_eval = ["EVAL_EVERY = 0", "BEST_METRIC = None"]
  # The student starts from the teacher's parameters: the paper's student starts from a
  # pre-trained mT5, and the demo has no pre-trained model; the teacher is the one model here
  # that has learnt the corpus's language (English) before stage 1.
  stage1 = _step(cfg, "stage1", lambda: _train(
      cfg, "experiments/mini_clr_pt.gin", "stage1", cfg.stage1_steps,
      [f"TEACHER_CHECKPOINT = '{teacher['checkpoints']}'",
       f"INIT_CHECKPOINT = '{teacher['checkpoints']}'", *dev_eval]))
  evaluations["stage1"] = _step(cfg, "eval_stage1", lambda: evaluate_stage("stage1", stage1))
  stage2 = _step(cfg, "stage2", lambda: _train(
      cfg, "experiments/mini_mlqa_pt.gin", "stage2", cfg.stage2_steps,
      [f"INIT_CHECKPOINT = '{stage1['checkpoints']}'", f"REFRESH_EVERY = {cfg.refresh_every}",
       f"RETRIEVAL_DIR = '{fileio.join(cfg.run_dir('stage2'), 'retrieval')}'", *dev_eval]))
  evaluations["stage2"] = _step(cfg, "eval_stage2", lambda: evaluate_stage("stage2", stage2))
  finetune = _step(cfg, "finetune", lambda: _train(
      cfg, "experiments/mini_finetune_full.gin", "finetune", cfg.finetune_steps,
      [f"INIT_CHECKPOINT = '{stage2['checkpoints']}'", f"REFRESH_EVERY = {cfg.refresh_every}",
       f"RETRIEVAL_DIR = '{fileio.join(cfg.run_dir('finetune'), 'retrieval')}'", *dev_eval]))
  _step(cfg, "export", lambda: export(finetune, fileio.join(cfg.out, "export")))
  result = _step(cfg, "eval", lambda: evaluate(cfg, fileio.join(cfg.out, "export"), cfg.out))
  evaluations["finetune"] = result

  tables = [LanguageTable.from_dict(t) for t in result["tables"]]
  rows = [_stage_row(name, [LanguageTable.from_dict(t) for t in evaluations[name]["tables"]])
          for name in (MODEL_STAGES[0], BASELINE, *MODEL_STAGES[1:])]
  results_path = fileio.join(cfg.out, "results.json")
  demo_results.write_results(results_path, rows)
  demo_results.write_chart(fileio.join(cfg.out, "results.png"), rows)
  _print("")
  _print("Macro averages over the 7 languages (x100). Retrieval: XOR-Retrieve dev over the "
         "English corpus,\nR@kt = answer in the first k*1000 tokens, R@k = gold article in the "
         "top k passages.\nReader: XOR-Full dev over the multilingual corpus (FiD, top "
         f"{cfg.num_passages} passages). {BASELINE}: lexical baseline, retrieval only.")
  _print(demo_results.format_macro_table(rows))
  _print("")
  _print(demo_results.format_language_table(rows, "retrieval", "R@5"))
  _print("")
  _print(demo_results.format_language_table(rows, "reader", "F1"))
  _print("")
  _print(_first_ranked_line({name: evaluations[name]["tables"]
                             for name in (MODEL_STAGES[0], BASELINE, *MODEL_STAGES[1:])}))
  _print("")
  total = time.time() - started
  _print(f"outputs in {cfg.out}: results.json, results.png (the table above), data/ (synthetic "
         f"data, vocab), runs/{{{','.join(MODEL_STAGES)}}} (checkpoints, TensorBoard, "
         "config.gin), export/ (final model), index/, eval/ (its reports), stages/<model>/ "
         "(the other rows' exports and reports)")
  _print("(the mini corpus is tiny: 96 English passages, so R@5kt spans about half of the "
         "English corpus; the figures show whether the method learns on it, not model quality)")
  _print(f"total runtime {total:.1f}s (this invocation; completed steps were skipped)")
  failures = ([] if cfg.min_r5_gain is None
              else demo_results.learning_failures(
                  rows, cfg.min_r5_gain,
                  collapse_floor(cfg, next(t for t in tables
                                           if t.task == "xor-retrieve-passages"))))
  for failure in failures:
    _print(f"NOT LEARNED: {failure}")
  return {"tables": tables, "rows": rows, "results": results_path, "seconds": total,
          "reports": result["reports"], "failures": failures}
