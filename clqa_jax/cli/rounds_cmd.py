"""``clqa rounds``: a gin-configured, resumable round-based driver (trainer/umr_rounds.py): UMR
(retrieve -> re-rank -> distil) or the capstone's self-training (gold passages, then hard
negatives mined with the previous round's model).

    clqa rounds --gin_file=experiments/mini_umr.gin --gin.UMR_WORK_DIR="'/tmp/umr'" \\
        --gin.TEACHER_CHECKPOINT="'/models/tiny-mt5'"
    clqa rounds --gin_file=experiments/mini_self_training.gin \\
        --gin.SELF_TRAINING_DIR="'/tmp/self_training'"

A finished round is skipped on rerun; an interrupted one resumes (its stores, score cache and
checkpoints). Each round's training writes its operative config to
<work dir>/round_<r>/train/config.gin.
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
    calls = f" ({record['teacher_calls']} teacher calls)" if "teacher_calls" in record else ""
    print(f"clqa rounds: {record.get('mode', 'umr')} round {record['round']} done at step "
          f"{record['step']}{calls}; checkpoints in {record['checkpoints']}")
  return 0
