"""``clqa inspect NAME``: per-language rates, example counts, token lengths and decoded samples."""
from __future__ import annotations

import argparse

from clqa_jax import gin_utils
from clqa_jax.cli import gin_flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("name", help="a registered task or mixture, e.g. clqa.mlqa_pt.xor_full")
  parser.add_argument("--split", default="train", help="the split to read")
  parser.add_argument("--num_samples", type=int, default=3, help="decoded samples per task")
  parser.add_argument("--max_examples", type=int, default=2000,
                      help="examples per task read for the length statistics")
  parser.add_argument("--languages", default=None,
                      help="comma-separated languages: inspect only these tasks of a mixture")
  parser.add_argument("--passage_store", default=None,
                      help="also print the passage length statistics of this PassageStore")
  gin_flags.add_gin_arguments(parser)


def run(args: argparse.Namespace) -> int:
  from clqa_jax.cli import validate
  validate.positive(args, ("max_examples",))
  if args.num_samples < 0:
    raise validate.UsageError(f"--num_samples must be 0 or more, got {args.num_samples}")
  if args.languages:
    validate.languages("--languages", args.languages.split(","))
  if args.passage_store:
    validate.input_path("--passage_store", args.passage_store)
  # Registering first also defines the gin configurables (data_root, vocabulary_path, alpha).
  from clqa_jax import tasks  # noqa: F401  pylint: disable=unused-import
  from clqa_jax.data import inspection

  gin_utils.parse_gin(args.gin_file, args.gin_bindings)

  reports = inspection.inspect(args.name, args.split, max_examples=args.max_examples,
                               num_samples=args.num_samples,
                               languages=args.languages.split(",") if args.languages else None)
  print(inspection.format_reports(args.name, args.split, reports))
  if args.passage_store:
    from clqa_jax.data.passage_store import PassageStore

    m = PassageStore.open(args.passage_store).manifest
    s = m["lengths"]
    print(f"\npassages {m['corpus_path']}: {m['count']} passages, tokens p50 {s['p50']:.0f} "
          f"p95 {s['p95']:.0f} max {s['max']}, {100 * s['truncated_fraction']:.1f}% truncated at "
          f"{m['max_length']} tokens")
  return 0
