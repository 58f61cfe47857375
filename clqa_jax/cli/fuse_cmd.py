"""``clqa fuse``: fuse retrieval prediction files into one (EnsembleRank, or RRF).

  clqa fuse RUN1.json RUN2.json ... --out PRED.json [--method rank_average|rrf] [--k 60]

Each RUN is a retrieval prediction file with ``pids`` (``clqa eval``'s
xor_retrieve_predictions.json, ``clqa bm25``'s output); all must cover the same questions.
rank_average: mean 1-based rank, a run lacking a passage counting len(its list) + 1, ascending;
rrf: sum of 1 / (k + rank), descending; ties to the ascending passage id (``index.fusion``).
PRED.json has the same format, so ``clqa metrics xor-retrieve`` scores it unchanged.
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.description = __doc__
  parser.formatter_class = argparse.RawDescriptionHelpFormatter
  parser.add_argument("runs", nargs="+", metavar="RUN", help="retrieval prediction files")
  parser.add_argument("--out", required=True, help="fused retrieval prediction JSON to write")
  parser.add_argument("--method", choices=("rank_average", "rrf"), default="rank_average",
                      help="rank_average (EnsembleRank, default) or rrf")
  parser.add_argument("--k", type=int, default=60, help="the RRF constant k (rrf only)")
  parser.add_argument("--top_k", type=int, default=100,
                      help="passages kept per question (the source's reader kept 15)")
  parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def run(args: argparse.Namespace) -> int:
  from clqa_jax import fileio
  from clqa_jax.data.errors import DataFormatError
  from clqa_jax.eval import prediction_files
  from clqa_jax.eval import xor_retrieve
  from clqa_jax.index import fusion
  try:
    if len(args.runs) < 2:
      raise ValueError(f"need at least two runs to fuse, got {len(args.runs)}")
    if args.top_k < 1 or args.k < 0:
      raise ValueError(f"need --top_k >= 1 and --k >= 0, got {args.top_k} and {args.k}")
    if fileio.exists(args.out) and not args.overwrite:
      raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it")
    runs = [xor_retrieve.read_retrieve_predictions(path, with_passage_ids=True)
            for path in args.runs]
    fused = fusion.fuse_runs(runs, args.runs, args.method, args.k, args.top_k)
    prediction_files.write_retrieve_predictions(args.out, fused, overwrite=args.overwrite)
  except DataFormatError:
    raise  # reported by cli.errors
  except (FileExistsError, ValueError) as e:
    print(f"clqa fuse: error: {e}", file=sys.stderr)
    return 2
  print(f"fused {len(args.runs)} runs ({args.method}) over {len(fused)} questions; "
        f"wrote {args.out}")
  return 0
