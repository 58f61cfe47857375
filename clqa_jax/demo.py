"""``clqa demo``: the whole pipeline on the embedded mini corpus with the tiny model.

  synth     clqa synth all (synth/mini.gin) -> OUT/data/{passages,stage1,stage2,xor}
  vocab     a 1000-piece SentencePiece model -> OUT/data/vocab/spm.model
  teacher   the stage-1 teacher: English cloze queries, stage-2 loss (experiments/mini_teacher_en)
  stage1    CLR-PT distilling the frozen teacher (experiments/mini_clr_pt)
  stage2    MLQA-PT, XOR-Retrieve variant, with passage refresh (experiments/mini_mlqa_pt)
  export    clqa export of the stage-2 checkpoint -> OUT/export
  eval      `clqa index` of both corpora -> OUT/index/{psgs_w100,all_w100}, then `clqa eval`:
            XOR-Retrieve dev R@2kt/R@5kt + XOR-EnglishSpan F1/EM (English corpus)
            and XOR-Full dev F1/EM/BLEU (multilingual corpus), FiD greedy decoding -> OUT/eval

Every step records OUT/steps/<step>.json when it completes, with the settings that define it
(``STEP_SETTINGS``); a rerun skips completed steps (and the training runs resume from their own
checkpoints when a step was interrupted), and refuses to start when a completed step was made
with other settings: its results would be shown as those of the new ones. Programs are
compiled once into OUT/jax_cache. ``prepare_data`` (synth + vocab) is also what the
integration tests build their data root with.
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

logger = logging.getLogger(__name__)

VOCAB_SIZE = 1000  # fits the tiny model's 1024 embeddings (gin/experiments/mini_common.gin)


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
  return {"synth_seconds": synth_s, "vocab_seconds": time.time() - started - synth_s,
          "vocab": vocab}


XOR_LANGUAGES = formats.XOR_LANGUAGES
STEPS = ("synth", "vocab", "teacher", "stage1", "stage2", "export", "eval")


@dataclasses.dataclass
class DemoConfig:
  """What ``clqa demo`` runs (the defaults take a few minutes on 2 CPU cores).

  Attributes:
    out: the output directory (data/, runs/, export/, eval/, steps/, jax_cache/).
    teacher_steps, stage1_steps, stage2_steps: training steps of each run.
    refresh_every: stage-2 passage refresh interval (steps).
    batch_size: questions (stage 1: pairs) per step.
    num_passages: passages per question in training and reading.
    retrieval_depth: passages retrieved per question for R@kt.
    max_answer_tokens: greedy decoding length of the answers.
    gin_files, gin_bindings: parsed after each training run's experiment file (overrides).
    jax_cache: persistent compilation cache ("": OUT/jax_cache; None: JAX's own setting).
  """
  out: str
  teacher_steps: int = 40
  stage1_steps: int = 40
  stage2_steps: int = 40
  refresh_every: int = 20
  batch_size: int = 8
  num_passages: int = 4
  retrieval_depth: int = 100
  max_answer_tokens: int = 16
  gin_files: tuple[str, ...] = ()
  gin_bindings: tuple[str, ...] = ()
  jax_cache: str | None = ""

  @property
  def data(self) -> str:
    return fileio.join(self.out, "data")

  def run_dir(self, name: str) -> str:
    return fileio.join(self.out, "runs", name)


# The DemoConfig fields that define each step's result (recorded in OUT/steps/<step>.json).
# A training step depends on the earlier ones through their checkpoints; a rerun refuses any
# changed field of a completed step, so each step lists only its own.
STEP_SETTINGS: dict[str, tuple[str, ...]] = {
    "synth": (),
    "vocab": (),
    "teacher": ("teacher_steps", "batch_size", "num_passages", "gin_files", "gin_bindings"),
    "stage1": ("stage1_steps", "batch_size", "num_passages", "retrieval_depth",
               "max_answer_tokens", "gin_files", "gin_bindings"),
    "stage2": ("stage2_steps", "refresh_every", "batch_size", "num_passages", "retrieval_depth",
               "max_answer_tokens", "gin_files", "gin_bindings"),
    "export": (),
    "eval": ("num_passages", "retrieval_depth", "max_answer_tokens"),
}
# The DemoConfig fields that change where or how fast, not what, a step computes.
NOT_STEP_SETTINGS = ("out", "jax_cache")


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


def evaluate(cfg: DemoConfig, languages=XOR_LANGUAGES) -> dict[str, Any]:
  """The exported model on the mini dev sets, through the code of `clqa index` and `clqa eval`:
  XOR-Retrieve (English corpus: R@kt, and XOR-EnglishSpan F1/EM of the English answers) and
  XOR-Full (multilingual corpus: F1/EM/BLEU), FiD over the top ``num_passages`` passages."""
  from clqa_jax.serving import corpus_index  # pylint: disable=g-import-not-at-top
  from clqa_jax.serving import runner as runner_lib  # pylint: disable=g-import-not-at-top
  from clqa_jax.serving.inference import ModelRunner  # pylint: disable=g-import-not-at-top

  export_dir = fileio.join(cfg.out, "export")
  model_runner = ModelRunner.from_export(export_dir, progress=False)
  tables, paths = [], []
  for task, corpus, data_file in EVALUATIONS:
    index_dir = fileio.join(cfg.out, "index", os.path.splitext(corpus)[0])
    corpus_index.build_index(export_dir, fileio.join(cfg.data, "passages", corpus), index_dir,
                             runner=model_runner, progress=False)
    config = runner_lib.EvalConfig(task=task, top_k=cfg.retrieval_depth,
                                   reader_k=cfg.num_passages,
                                   max_answer_length=cfg.max_answer_tokens,
                                   langs=tuple(languages))
    result = runner_lib.evaluate(export_dir, index_dir, fileio.join(cfg.data, "xor", data_file),
                                 fileio.join(cfg.out, "eval", task), config,
                                 runner=model_runner, overwrite=True, progress=False)
    tables += result.tables
    paths += result.paths
  return {"tables": [t.to_dict() for t in tables], "reports": paths}


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
  """Runs (or resumes) every step; prints progress, the result table and where outputs are."""
  import jax  # pylint: disable=g-import-not-at-top

  started = time.time()
  check_step_settings(cfg)
  fileio.makedirs(cfg.out)
  if cfg.jax_cache is not None:
    jax.config.update("jax_compilation_cache_dir", cfg.jax_cache or fileio.join(cfg.out,
                                                                                "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  _step(cfg, "synth", lambda: {"stages": {k: v for k, v in run_synth(cfg.data).items()}})
  _step(cfg, "vocab", lambda: {"vocab": train_vocabulary(cfg.data)})
  teacher = _step(cfg, "teacher", lambda: _train(
      cfg, "experiments/mini_teacher_en.gin", "teacher", cfg.teacher_steps, []))
  # The students' dev evaluation (experiments/dev_eval.gin) reads as the final evaluation does.
  dev_eval = [f"DevEvaluation.top_k = {cfg.retrieval_depth}",
              f"DevEvaluation.max_answer_length = {cfg.max_answer_tokens}",
              "DevEvaluation.progress = False"]
  stage1 = _step(cfg, "stage1", lambda: _train(
      cfg, "experiments/mini_clr_pt.gin", "stage1", cfg.stage1_steps,
      [f"TEACHER_CHECKPOINT = '{teacher['checkpoints']}'", *dev_eval]))
  stage2 = _step(cfg, "stage2", lambda: _train(
      cfg, "experiments/mini_mlqa_pt.gin", "stage2", cfg.stage2_steps,
      [f"INIT_CHECKPOINT = '{stage1['checkpoints']}'", f"REFRESH_EVERY = {cfg.refresh_every}",
       f"RETRIEVAL_DIR = '{fileio.join(cfg.run_dir('stage2'), 'retrieval')}'", *dev_eval]))

  def export():
    from clqa_jax.checkpoints import export as export_lib  # pylint: disable=g-import-not-at-top
    out = fileio.join(cfg.out, "export")
    manifest = export_lib.export_checkpoint(stage2["checkpoints"], out, overwrite=True,
                                            vocab_path=fileio.join(cfg.data, "vocab",
                                                                   "spm.model"))
    return {"export": out, "manifest": manifest}

  _step(cfg, "export", export)
  result = _step(cfg, "eval", lambda: evaluate(cfg))
  from clqa_jax.eval import report  # pylint: disable=g-import-not-at-top
  from clqa_jax.eval.table import LanguageTable  # pylint: disable=g-import-not-at-top
  tables = [LanguageTable.from_dict(t) for t in result["tables"]]
  _print("")
  for t in tables:
    _print(report.format_text(t))
    _print("")
  total = time.time() - started
  _print(f"outputs in {cfg.out}: data/ (synthetic data, vocab), runs/{{teacher,stage1,stage2}} "
         f"(checkpoints, TensorBoard, config.gin), export/, index/, eval/ ({', '.join(os.path.relpath(p, fileio.join(cfg.out, 'eval')) for p in result['reports'])})")
  _print("(the mini corpus is tiny: 96 English passages, so R@5kt spans about half of the "
         "English corpus; the figures show the pipeline works end to end, not model quality)")
  _print(f"total runtime {total:.1f}s (this invocation; completed steps were skipped)")
  return {"tables": tables, "seconds": total, "reports": result["reports"]}
