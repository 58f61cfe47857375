"""Side by side: CLASS and the peer methods on the embedded mini corpus, one table.

    python benchmarks/methods.py --out /tmp/methods                     # every method, 200 steps
    python benchmarks/methods.py --out /tmp/m --steps 20 --methods class,self_training,bm25
    python benchmarks/methods.py --out /tmp/m --umr_teacher /models/tiny-mt5 --per_language

Every learned method trains ``--steps`` optimizer steps (a rounds method: ``--steps`` // rounds
per round) at the same batch size from the same untrained parameters (the demo's "untrained"
run: one step at learning rate 0), with its own gin experiment file (``GIN_METHODS``: one line
per method, keyed by the file; a file that does not exist is skipped with a note). Each model
is exported and evaluated by the demo's evaluation (``demo.evaluate``: `clqa index` + `clqa
eval` code, the same dev sets, retrieval depth and reader k): XOR-Retrieve dev R@2kt/R@5kt and
gold-article recall R@1/R@5 over the English corpus, XOR-Full dev F1/EM/BLEU for the methods that
train a reader. ``bm25`` (the demo's lexical baseline) and ``fusion`` (rank averaging of the
BM25 and CLASS runs, ``index.fusion``) are retrieval only. The table (``demo_results``) marks
each learned method "beats start": its macro R@5 above the untrained row's (and, with a reader,
its macro F1 above it too), next to how many different passages it ranks first over the dev
questions ("distinct first": a collapsed retriever ranks the same few first for every question
and still scores a fair R@5 on this corpus). Writes OUT/methods.json (the rows) and
OUT/methods.png; a finished method (OUT/methods/<name>.json) is skipped on rerun, an
interrupted training resumes.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from clqa_jax import demo  # noqa: E402
from clqa_jax import demo_results  # noqa: E402
from clqa_jax import fileio  # noqa: E402
from clqa_jax.miniwiki import teacher_questions  # noqa: E402

TRAIN, ROUNDS = "train", "rounds"


@dataclasses.dataclass(frozen=True)
class Method:
  """A learned method: its row name, how its gin file runs (``loop.train`` or the rounds
  driver), whether it trains the reader (its row gets F1/EM/BLEU) and what the file needs."""
  name: str
  runs: str = TRAIN
  reader: bool = False
  bindings: tuple[str, ...] = ()
  needs_umr_teacher: bool = False
  # `clqa synth` settings of a stage the method's data needs beyond `synth all` (run once)
  synth_stage: tuple[str, tuple[tuple[str, Any], ...]] | None = None


# gin experiment file -> method; adding a method is one line.
GIN_METHODS: dict[str, Method] = {
    "experiments/mini_finetune.gin": Method("class", reader=True),
    "experiments/mini_umr.gin": Method("umr", ROUNDS, needs_umr_teacher=True),
    "experiments/mini_lexa.gin": Method("lexa"),
    "experiments/mini_fidkd.gin": Method("fidkd"),
    "experiments/mini_capstone_forward.gin": Method("capstone_forward", reader=True),
    "experiments/mini_attention_offset.gin": Method("attention_offset", reader=True),
    "experiments/mini_self_training.gin": Method("self_training", ROUNDS),
    "experiments/mini_mixcse.gin": Method("mixcse"),
    "experiments/mini_dpr.gin": Method("dpr"),
    "experiments/mini_capstone_jsd.gin": Method(
        "capstone_jsd", reader=True,
        synth_stage=("translate", (("translate_input", "stage2/xor_full.*.jsonl-*"),
                                   ("translate_fields", ("question", "answers"))))),
    "experiments/mini_span_corruption.gin": Method("span_corruption", reader=True),
    "experiments/mini_entity_augment.gin": Method(
        "entity_augment", reader=True,
        synth_stage=("entity_augment", (("translate_input", "stage2/xor_full.*.jsonl-*"),))),
}
UNTRAINED, BM25, FUSION = "untrained", demo.BASELINE, "fusion"
FUSED = ("bm25", "class")  # the runs fusion combines
ROUNDS_COUNT = 2
BEATS_START = "beats start"
FIRST_RANKED = "distinct first"


def _print(msg: str) -> None:
  print(msg, flush=True)


def gin_path(gin_file: str) -> str:
  from clqa_jax import gin_utils  # pylint: disable=g-import-not-at-top
  return os.path.join(gin_utils.gin_config_dir(), gin_file)


def available_methods() -> dict[str, tuple[str, Method]]:
  """name -> (gin file, Method) of the learned methods whose gin file exists; a note for each
  one that does not."""
  out = {}
  for gin_file, method in GIN_METHODS.items():
    if os.path.exists(gin_path(gin_file)):
      out[method.name] = (gin_file, method)
    else:
      _print(f"note: {gin_file} not present: method {method.name} skipped")
  return out


def method_names(available: dict[str, Any]) -> list[str]:
  """Every runnable row name, in table order (untrained first)."""
  return [UNTRAINED, BM25, *available, FUSION]


class Runner:
  """Runs, evaluates and records each method under ``cfg.out`` (see the module docstring)."""

  def __init__(self, cfg: demo.DemoConfig, steps: int, umr_teacher: str | None):
    self.cfg, self.steps, self.umr_teacher = cfg, steps, umr_teacher
    self.records = fileio.join(cfg.out, "methods")

  def record(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``fn``'s record of method ``name``, or the one a finished earlier run wrote (refused when
    it was made with another --steps)."""
    path = fileio.join(self.records, f"{name}.json")
    if fileio.exists(path):
      done = fileio.read_json(path)
      if done["steps"] != self.steps and name not in (UNTRAINED, BM25):
        raise ValueError(f"{path}: {name} finished with --steps {done['steps']}, not "
                         f"{self.steps}; use another --out")
      _print(f"[{name}] already complete: skipped")
      return done
    _print(f"[{name}] running ...")
    started = time.time()
    info = dict(fn())
    info.update(steps=self.steps, seconds=time.time() - started)
    fileio.write_json(path, info)
    _print(f"[{name}] done in {info['seconds']:.1f}s")
    return info

  def forget_without_reader(self, name: str, need_reader: bool) -> None:
    """Drops method ``name``'s record when it has no reader evaluation and one is needed now
    (its training is kept: only the evaluation runs again)."""
    path = fileio.join(self.records, f"{name}.json")
    if need_reader and fileio.exists(path) and not any(
        t["task"] == "xor-full" for t in fileio.read_json(path)["tables"]):
      _print(f"[{name}] evaluated without its reader earlier: evaluating again")
      fileio.remove(path)

  def bindings(self, name: str, steps: int) -> list[str]:
    run_dir = self.cfg.run_dir(name)
    return [f"data_root.path = '{self.cfg.data}'", f"MODEL_DIR = '{run_dir}'",
            f"TRAIN_STEPS = {steps}", f"BATCH_SIZE = {self.cfg.batch_size}",
            f"SAVE_EVERY = {max(steps // 2, 1)}", "EVAL_EVERY = 0", "BEST_METRIC = None",
            f"RETRIEVAL_DIR = '{fileio.join(run_dir, 'retrieval')}'",
            f"REFRESH_EVERY = {self.cfg.refresh_every}"]

  def synth(self, stage: str, settings: tuple[tuple[str, Any], ...]) -> None:
    """Runs `clqa synth <stage>` (synth/mini.gin plus ``settings``) over the data unless done."""
    from clqa_jax import gin_utils  # pylint: disable=g-import-not-at-top
    from clqa_jax.synth import config as config_lib  # pylint: disable=g-import-not-at-top
    from clqa_jax.synth import stages  # pylint: disable=g-import-not-at-top

    with gin_utils.scoped_config():
      gin_utils.parse_gin(["synth/mini.gin"], [], finalize=False)
      cfg = config_lib.SynthConfig(output_dir=self.cfg.data, **dict(settings))
      stages.RUNNERS[stage](cfg)  # a complete stage with the same settings is reused

  def train(self, name: str, gin_file: str, method: Method, init: str) -> str:
    """Trains a method from ``init``; returns its last checkpoints directory."""
    from clqa_jax import gin_utils  # pylint: disable=g-import-not-at-top
    from clqa_jax.trainer import loop  # pylint: disable=g-import-not-at-top
    from clqa_jax.trainer import register_configurables  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    from clqa_jax.trainer import umr_rounds  # pylint: disable=g-import-not-at-top

    if method.synth_stage is not None:
      self.synth(*method.synth_stage)
    steps = max(self.steps // ROUNDS_COUNT, 1) if method.runs == ROUNDS else self.steps
    bindings = [*self.bindings(name, steps), f"INIT_CHECKPOINT = '{init}'", *method.bindings]
    if method.runs == ROUNDS:
      work = self.cfg.run_dir(name)
      bindings += [f"UMR_WORK_DIR = '{work}'", f"SELF_TRAINING_DIR = '{work}'",
                   f"UMR_ROUNDS = {ROUNDS_COUNT}", f"SELF_TRAINING_ROUNDS = {ROUNDS_COUNT}"]
      if method.needs_umr_teacher:
        bindings.append(f"TEACHER_CHECKPOINT = '{self.umr_teacher}'")
    with gin_utils.scoped_config():
      gin_utils.parse_gin([gin_file, *self.cfg.gin_files], [*bindings, *self.cfg.gin_bindings])
      if method.runs == ROUNDS:
        records = umr_rounds.umr_rounds()
        if len(records) != ROUNDS_COUNT:
          raise RuntimeError(f"{name}: {len(records)} of {ROUNDS_COUNT} rounds finished")
        return records[-1]["checkpoints"]
      result = loop.train()
    if result.status != "completed":
      raise RuntimeError(f"{name}: training ended {result.status} at step {result.step}")
    return result.checkpoint_dir

  def evaluate(self, name: str, checkpoints: str, reader: bool) -> dict[str, Any]:
    """Export + ``demo.evaluate`` of a run's last checkpoint (reading too with ``reader``)."""
    from clqa_jax.checkpoints import export as export_lib  # pylint: disable=g-import-not-at-top

    work_dir = fileio.join(self.cfg.out, "stages", name)
    fileio.rmtree(work_dir)  # an interrupted attempt's index belongs to its own export
    export_dir = fileio.join(work_dir, "export")
    export_lib.export_checkpoint(checkpoints, export_dir, overwrite=True,
                                 vocab_path=fileio.join(self.cfg.data, "vocab", "spm.model"))
    return {"checkpoints": checkpoints, **demo.evaluate(self.cfg, export_dir, work_dir,
                                                        read=reader)}

  def fusion(self) -> dict[str, Any]:
    """Rank averaging of the BM25 and CLASS XOR-Retrieve dev predictions, then the same
    retrieval metrics."""
    from clqa_jax.data import readers  # pylint: disable=g-import-not-at-top
    from clqa_jax.eval import xor_retrieve  # pylint: disable=g-import-not-at-top
    from clqa_jax.index import fusion  # pylint: disable=g-import-not-at-top

    paths = [fileio.join(self.cfg.out, "stages", BM25, "xor_retrieve_predictions.json"),
             fileio.join(self.cfg.out, "stages", "class", "eval", "xor-retrieve",
                         "xor_retrieve_predictions.json")]
    runs = [xor_retrieve.read_retrieve_predictions(p, with_passage_ids=True) for p in paths]
    fused = fusion.fuse_runs(runs, paths, "rank_average", top_k=self.cfg.retrieval_depth)
    questions = list(readers.read_xor_jsonl(
        fileio.join(self.cfg.data, "xor", demo.EVALUATIONS[0][2])))
    tables = [xor_retrieve.evaluate_xor_retrieve(fused, questions),
              demo.passage_recall_table(self.cfg, fused)]
    return {"tables": [t.to_dict() for t in tables], "fused": paths}


def row_of(name: str, record: dict[str, Any], with_reader: bool) -> dict[str, Any]:
  """The result-table row of a method's evaluation (reader metrics only ``with_reader``)."""
  from clqa_jax.eval.table import LanguageTable  # pylint: disable=g-import-not-at-top

  by_task = {t.task: t for t in map(LanguageTable.from_dict, record["tables"])}
  reader = by_task.get("xor-full") if with_reader else None
  passages = by_task["xor-retrieve-passages"]
  row = demo_results.stage_row(name, [by_task["xor-retrieve"], passages], reader)
  # A collapsed retriever ranks the same few passages first for every question and can still
  # score a fair R@5 here (eval/passage_recall.py): the count shows it.
  row[FIRST_RANKED] = passages.info.get("distinct_top1_passages", "?")
  return row


def beats_start(row: dict[str, Any], start: dict[str, Any]) -> str:
  """"yes" when the row's macro R@5 is above the untrained row's (and its macro F1, when it has
  a reader), else "no"."""
  macro = demo_results.MACRO
  better = row["retrieval"][macro]["R@5"] > start["retrieval"][macro]["R@5"]
  if row["reader"] is not None:
    better = better and row["reader"][macro]["F1"] > start["reader"][macro]["F1"]
  return "yes" if better else "no"


def run(out: str, steps: int, methods: list[str] | None = None, *, umr_teacher: str | None = None,
        per_language: bool = False, jax_cache: str | None = ""
        ) -> list[dict[str, Any]]:
  """Runs (or resumes) the methods; prints and writes the table; returns its rows.
  ``jax_cache``: the persistent compilation cache ("": OUT/jax_cache; None: JAX's setting)."""
  import jax  # pylint: disable=g-import-not-at-top

  available = available_methods()
  known = method_names(available)
  chosen = [n for n in known if methods is None or n in methods]
  unknown = sorted(set(methods or ()) - set(known) - {UNTRAINED})
  if unknown:
    raise ValueError(f"--methods: unknown or absent {unknown}; choose from {known}")
  if FUSION in chosen and not set(FUSED) <= set(chosen):
    raise ValueError(f"--methods: {FUSION} fuses {' and '.join(FUSED)}: name them too")
  if "umr" in chosen and not umr_teacher:
    _print("note: umr needs --umr_teacher (a Hugging Face mT5 directory): skipped")
    chosen.remove("umr")
  if UNTRAINED not in chosen:
    chosen.insert(0, UNTRAINED)
  cfg = demo.DemoConfig(out=out, min_r5_gain=None)
  fileio.makedirs(out)
  if jax_cache is not None:
    jax.config.update("jax_compilation_cache_dir", jax_cache or fileio.join(out, "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  if not fileio.exists(fileio.join(cfg.data, "vocab", "spm.model")):
    _print(f"[data] synth + vocab -> {cfg.data}")
    demo.prepare_data(cfg.data)  # writes the teacher's queries too
  else:
    # The untrained run's task reads them; a data root made by an older clqa may lack them.
    teacher_questions.write_teacher_queries(cfg.data)
  runner = Runner(cfg, steps, umr_teacher)

  def untrained() -> dict[str, Any]:
    run_info = demo._train(cfg, "experiments/mini_teacher_en.gin", UNTRAINED, 1,  # pylint: disable=protected-access
                           ["LEARNING_RATE = 0.0"])
    if run_info["metrics"].get("update_norm", 0.0) != 0.0:
      raise RuntimeError(f"the untrained run changed its parameters: {run_info['metrics']}")
    return runner.evaluate(UNTRAINED, run_info["checkpoints"], reader=need_reader)

  # The untrained reader is read only when a chosen method trains one.
  need_reader = any(available[n][1].reader for n in chosen if n in available)
  runner.forget_without_reader(UNTRAINED, need_reader)
  records = {UNTRAINED: runner.record(UNTRAINED, untrained)}
  init = records[UNTRAINED]["checkpoints"]
  rows = [row_of(UNTRAINED, records[UNTRAINED], with_reader=need_reader)]
  for name in chosen[1:]:
    if name == BM25:
      record = runner.record(BM25, lambda: demo.bm25_baseline(cfg))
    elif name == FUSION:
      record = runner.record(FUSION, runner.fusion)
    else:
      gin_file, method = available[name]
      record = runner.record(name, lambda: runner.evaluate(
          name, runner.train(name, gin_file, method, init), method.reader))
    learned = name in available
    row = row_of(name, record, with_reader=learned and available[name][1].reader)
    row[BEATS_START] = beats_start(row, rows[0]) if learned else "-"
    rows.append(row)
  rows[0][BEATS_START] = "-"

  demo_results.write_results(fileio.join(out, "methods.json"), rows)
  demo_results.write_chart(fileio.join(out, "methods.png"), rows,
                           title=f"clqa methods: mini XOR-TyDi dev, {steps} steps each")
  _print("")
  _print(f"Macro averages over the languages (x100), {steps} training steps per learned method "
         f"from the untrained start. Retrieval: XOR-Retrieve dev over the English corpus (R@kt: "
         f"answer in the first k*1000 tokens; R@k: gold article in the top k passages). Reader: "
         f"XOR-Full dev (FiD, top {cfg.num_passages} passages), for methods that train one.")
  _print(demo_results.format_macro_table(rows, label="method",
                                         extra_columns=(FIRST_RANKED, BEATS_START)))
  if per_language:
    for group, metrics in (("retrieval", demo_results.RETRIEVAL_METRICS),
                           ("reader", demo_results.READER_METRICS)):
      for metric in metrics:
        _print("")
        _print(demo_results.format_language_table(rows, group, metric))
  _print(f"\nwritten: {fileio.join(out, 'methods.json')}, {fileio.join(out, 'methods.png')}")
  return rows


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
  p.add_argument("--out", required=True, help="output directory (resumable)")
  p.add_argument("--steps", type=int, default=200, help="training steps of every method")
  p.add_argument("--methods", default=None,
                 help="comma-separated rows to run (default: every present method); "
                      f"'{UNTRAINED}' always runs")
  p.add_argument("--umr_teacher", default=None,
                 help="the UMR query-likelihood teacher (Hugging Face mT5 dir or export)")
  p.add_argument("--per_language", action="store_true", help="also print per-language tables")
  return p.parse_args(argv)


def main(argv=None) -> int:
  logging.basicConfig(level=logging.WARNING)
  args = parse_args(argv)
  if args.steps < 1:
    raise SystemExit("--steps must be positive")
  methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
  run(args.out, args.steps, methods, umr_teacher=args.umr_teacher,
      per_language=args.per_language)
  return 0


if __name__ == "__main__":
  sys.exit(main())
