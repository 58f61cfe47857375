"""``clqa xpaq``: LEXA's XPAQ filter, the PAQ questions nearest to the XOR questions.

  clqa xpaq --export EXPORT_DIR --candidates paq.jsonl \\
      --xor_questions xor/xor_train_retrieve_eng_span.jsonl --out xpaq.jsonl [--keep 400000]

Every candidate (PAQ-format JSONL: {"question", "answer", ...}, English) and every XOR question
is embedded with the export's query encoder; a candidate scores its maximum dot product over
the XOR questions, and the --keep best are written to --out (atomically), best first, as their
own JSON objects plus "xpaq_score" (reference/peer-methods.md 3.4, 3.8).
"""
from __future__ import annotations

import argparse

from clqa_jax.cli.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.description = __doc__
  parser.formatter_class = argparse.RawDescriptionHelpFormatter
  parser.add_argument("--export", required=True, help="exported checkpoint (clqa export)")
  parser.add_argument("--candidates", required=True,
                      help="PAQ-format JSONL of candidate questions (optionally .gz)")
  parser.add_argument("--xor_questions", required=True,
                      help="XOR-TyDi JSONL whose questions (and lang) the candidates are scored "
                           "against")
  parser.add_argument("--out", required=True, help="the kept candidates' JSONL")
  parser.add_argument("--keep", type=int, default=400_000, help="candidates kept")
  parser.add_argument("--chunk_size", type=int, default=65536,
                      help="candidates embedded and scored at a time")
  parser.add_argument("--batch_size", type=int, default=256, help="questions per device call")


def run(args: argparse.Namespace) -> int:
  for name in ("keep", "chunk_size", "batch_size"):
    if getattr(args, name) < 1:
      raise UsageError(f"--{name} must be positive, got {getattr(args, name)}")
  import dataclasses  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top

  from clqa_jax import fileio  # pylint: disable=g-import-not-at-top
  from clqa_jax.checkpoints import exported  # pylint: disable=g-import-not-at-top
  from clqa_jax.data import readers  # pylint: disable=g-import-not-at-top
  from clqa_jax.data import spm_train  # pylint: disable=g-import-not-at-top
  from clqa_jax.index import xpaq  # pylint: disable=g-import-not-at-top
  from clqa_jax.partitioning import partitioner as partitioner_lib  # pylint: disable=g-import-not-at-top
  from clqa_jax.serving import questions as questions_lib  # pylint: disable=g-import-not-at-top
  from clqa_jax.serving.inference import ModelRunner  # pylint: disable=g-import-not-at-top

  xor = list(readers.read_xor_jsonl(args.xor_questions, require_answers=False))
  runner = ModelRunner.from_export(args.export, partitioner=partitioner_lib.make_partitioner(),
                                   query_batch_size=args.batch_size, progress=False)
  sp = spm_train.load_processor(fileio.join(args.export, exported.VOCAB_FILE))
  report = xpaq.select_xpaq(runner.encode_queries,
                            lambda qs: questions_lib.tokenize_queries(sp, qs),
                            args.candidates, xor, args.out, keep=args.keep,
                            chunk_size=args.chunk_size)
  print(json.dumps(dataclasses.asdict(report), indent=2))
  return 0
