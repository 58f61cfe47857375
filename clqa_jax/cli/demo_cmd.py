"""``clqa demo``: the whole pipeline on the embedded mini corpus (what ``make demo`` runs).

    clqa demo --out /tmp/clqa_demo

synth -> vocabulary -> English teacher -> stage 1 (CLR-PT) -> stage 2 (MLQA-PT with passage
refresh) -> fine-tuning -> export -> XOR-Retrieve / XOR-Full dev evaluation of the untrained
model, a BM25 baseline and every stage; prints the result table (also OUT/results.json) and a
NOT LEARNED line for each way the final model fails to beat the untrained one
(demo_results.learning_failures); with --require_learning those make it exit 1.
Each step is skipped when a previous run completed it (OUT/steps/<step>.json). A step's record
holds the settings that define it (--steps, --batch_size, --num_passages, --refresh_every, the
gin files and bindings, ...); a rerun with other settings than a completed step's is refused
before anything runs: use a new --out, or remove OUT to run every step again.
"""
from __future__ import annotations

import argparse

from clqa_jax.cli import gin_flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.description = __doc__
  parser.formatter_class = argparse.RawDescriptionHelpFormatter
  parser.add_argument("--out", required=True, help="output directory (resumable)")
  parser.add_argument("--steps", type=int, default=None,
                      help="training steps of every run (default: DemoConfig's)")
  parser.add_argument("--refresh_every", type=int, default=None, help="stage-2 refresh interval")
  parser.add_argument("--batch_size", type=int, default=None, help="questions per step")
  parser.add_argument("--num_passages", type=int, default=None, help="passages per question")
  parser.add_argument("--require_learning", action="store_true",
                      help="exit 1 unless the final model beats the untrained one by 20 points "
                           "of macro passage R@5 with F1 > 0 in every language (without it, "
                           "each failure is printed as a NOT LEARNED line)")
  gin_flags.add_gin_arguments(parser)


def run(args: argparse.Namespace) -> int:
  from clqa_jax.cli import outputs
  from clqa_jax.cli import validate
  validate.positive(args, ("steps", "refresh_every", "batch_size", "num_passages"))
  outputs.check_writable("--out", args.out)
  from clqa_jax import demo  # pylint: disable=g-import-not-at-top

  # --gin_file / --gin.X=Y apply to every training run (after its experiment file).
  overrides = {"gin_files": tuple(args.gin_file), "gin_bindings": tuple(args.gin_bindings)}
  if args.steps is not None:
    overrides.update(teacher_steps=args.steps, stage1_steps=args.steps, stage2_steps=args.steps,
                     finetune_steps=args.steps)
  for name in ("refresh_every", "batch_size", "num_passages"):
    if getattr(args, name) is not None:
      overrides[name] = getattr(args, name)
  result = demo.run_demo(demo.DemoConfig(out=args.out, **overrides))
  return 1 if result["failures"] and args.require_learning else 0
