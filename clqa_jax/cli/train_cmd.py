"""``clqa train``: gin-configured training (stage 1 CLR-PT, stage 2 MLQA-PT, fine-tuning).

    clqa train --gin_file=models/<model>.gin --gin_file=runs/mlqa_pt.gin \\
        --gin.MODEL_DIR="'/tmp/run'" --gin.TRAIN_STEPS=2000

The operative config is written to MODEL_DIR/config.gin. Exit status: 0 completed, 3
preempted (SIGTERM; saved, resume by running the same command), 4 non-finite loss (nothing
saved after the last good checkpoint).
"""
from __future__ import annotations

import argparse
import logging
import sys

from clqa_jax import gin_utils
from clqa_jax.cli import gin_flags

EXIT_PREEMPTED = 3
EXIT_NON_FINITE = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
  gin_flags.add_gin_arguments(parser)
  parser.add_argument("--log_level", default="INFO",
                      choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                      help="Python logging level.")


def run(args: argparse.Namespace) -> int:
  logging.basicConfig(level=getattr(logging, args.log_level),
                      format="%(asctime)s %(levelname)s %(name)s: %(message)s")
  if not args.gin_file:
    print("clqa train: give at least one --gin_file (e.g. runs/mlqa_pt.gin with a model file)",
          file=sys.stderr)
    return 2
  # Registers the configurables the run files name.
  from clqa_jax.trainer import loop  # pylint: disable=g-import-not-at-top
  from clqa_jax.trainer import register_configurables  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import

  gin_utils.parse_gin(args.gin_file, args.gin_bindings or [])
  try:
    result = loop.train()
  except loop.NonFiniteLossError as e:
    print(f"clqa train: {e}", file=sys.stderr)
    return EXIT_NON_FINITE
  print(f"clqa train: {result.status} at step {result.step}; checkpoints in "
        f"{result.checkpoint_dir}")
  return EXIT_PREEMPTED if result.status == "preempted" else 0
