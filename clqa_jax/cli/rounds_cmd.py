"""``clqa rounds``: a gin-configured, resumable round-based driver (UMR: retrieve -> re-rank ->
distil, trainer/umr_rounds.py).

    clqa rounds --gin_file=experiments/mini_umr.gin --gin.UMR_WORK_DIR="'/tmp/umr'" \\
        --gin.TEACHER_CHECKPOINT="'/models/tiny-mt5'"

A finished round is skipped on rerun; an interrupted one resumes (its stores, score cache and
checkpoints). Each round's training writes its operative config to
UMR_WORK_DIR/round_<r>/train/config.gin.
"""
from __future__ import annotations

import argparse

from clqa_jax import gin_utils
from clqa_jax.cli import gin_flags
from clqa_jax.cli.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
  gin_flags.add_gin_arguments(parser)


def run(args: argparse.Namespace) -> int:
  if not args.gin_file:
    raise UsageError("give at least one --gin_file (e.g. experiments/mini_umr.gin)")
  from clqa_jax.trainer import register_configurables  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  from clqa_jax.trainer import umr_rounds  # pylint: disable=g-import-not-at-top

  gin_utils.parse_gin(args.gin_file, args.gin_bindings or [])
  records = umr_rounds.umr_rounds()
  for record in records:
    print(f"clqa rounds: round {record['round']} done at step {record['step']} "
          f"({record['teacher_calls']} teacher calls); checkpoints in {record['checkpoints']}")
  return 0
