"""``clqa train``: gin-configured training (stage 1 CLR-PT, stage 2 MLQA-PT, fine-tuning).

    clqa train --gin_file=models/<model>.gin --gin_file=runs/mlqa_pt.gin \\
        --gin.MODEL_DIR="'/tmp/run'" --gin.TRAIN_STEPS=2000

The operative config is written to MODEL_DIR/config.gin. Exit status: 0 completed, 2 an input
error (among them MODEL_DIR in use by another run: MODEL_DIR/run.lock, see ``--break_lock``),
3 preempted (SIGTERM; saved, resume by running the same command), 4 non-finite loss (nothing
saved after the last good checkpoint).
"""
from __future__ import annotations

import argparse
import sys

from clqa_jax import gin_utils
from clqa_jax.cli import gin_flags
from clqa_jax.cli import outputs
from clqa_jax.cli.errors import UsageError

EXIT_PREEMPTED = 3
EXIT_NON_FINITE = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
  gin_flags.add_gin_arguments(parser)
  parser.add_argument(
      "--break_lock", action="store_true",
      help="remove the lock MODEL_DIR/run.lock that a run which no longer runs (a killed job, "
           "a lost machine) left behind, then train; a lock whose process still runs on this "
           "host is never broken. A second run on a directory in use stops with exit 2")


def run(args: argparse.Namespace) -> int:
  if not args.gin_file:
    raise UsageError("give at least one --gin_file (e.g. runs/mlqa_pt.gin with a model file)")
  # Registers the configurables the run files name.
  from clqa_jax.trainer import loop  # pylint: disable=g-import-not-at-top
  from clqa_jax.trainer import register_configurables  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import

  gin_utils.parse_gin(args.gin_file, args.gin_bindings or [])
  outputs.check_writable("MODEL_DIR", _model_dir())
  try:
    result = loop.train(break_lock=args.break_lock)
  except loop.NonFiniteLossError as e:
    print(f"clqa train: {e}", file=sys.stderr)
    return EXIT_NON_FINITE
  print(f"clqa train: {result.status} at step {result.step}; checkpoints in "
        f"{result.checkpoint_dir}")
  return EXIT_PREEMPTED if result.status == "preempted" else 0


def _model_dir() -> str:
  """The run directory the parsed gin binds (the MODEL_DIR macro)."""
  import gin  # pylint: disable=g-import-not-at-top
  try:
    model_dir = gin.query_parameter("MODEL_DIR/macro.value")
  except ValueError as e:
    raise UsageError("bind MODEL_DIR, e.g. --gin.MODEL_DIR=\"'/tmp/run'\"") from e
  if not isinstance(model_dir, str) or not model_dir:
    raise UsageError(f"MODEL_DIR must be a non-empty path string, got {model_dir!r}")
  return model_dir
