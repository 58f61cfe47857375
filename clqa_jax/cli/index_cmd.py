"""``clqa index``: encode a passage corpus with an exported checkpoint and build its index.

  clqa index --export EXPORT_DIR --corpus psgs_w100.tsv --out INDEX_DIR \\
      [--searcher exact|scann] [--passage_store DIR] [--batch_size 256] [--skip_errors]

Steps (each resumable: rerun the same command after an interruption):
  1. the PassageStore (token ids of every passage, "title: {t} context: {p}" + EOS, 200
     tokens) is built with the export's vocabulary, or reused when it matches;
  2. every passage is encoded with the export's UnifiedModel.embed_passages (lower encoder half + head),
     partitioned over the devices, into fingerprinted embedding shards (finished shards are
     skipped on a rerun);
  3. with --searcher scann a ScaNN index (tree + AH + reorder) is built and saved, and its
     recall@100 against exact search is recorded; exact search needs nothing more.
INDEX_DIR/index.json is written last. Gin: ScannConfig.* (ScaNN parameters), the
partitioning files (gin/partitioning/*.gin) for the device layout.
"""
from __future__ import annotations

import argparse
import json
import time

from clqa_jax import gin_utils
from clqa_jax.cli import gin_flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.description = __doc__
  parser.formatter_class = argparse.RawDescriptionHelpFormatter
  parser.add_argument("--export", required=True, help="exported checkpoint (clqa export)")
  parser.add_argument("--corpus", required=True, help="passage TSV (id, text, title)")
  parser.add_argument("--out", required=True, help="index directory (created or resumed)")
  parser.add_argument("--searcher", choices=("exact", "scann"), default="exact",
                      help="exact: keep the embeddings for exact search; scann: also build and "
                           "save a ScaNN index (default: exact)")
  parser.add_argument("--passage_store", default=None,
                      help="PassageStore directory to use or build (default: OUT/passages)")
  parser.add_argument("--batch_size", type=int, default=256,
                      help="passages per device step over all devices (default: 256)")
  parser.add_argument("--rows_per_shard", type=int, default=1 << 16,
                      help="passages per embedding shard, the unit of resumption (default: 65536)")
  parser.add_argument("--embedding_dtype", choices=("bfloat16", "float16"), default="bfloat16",
                      help="embedding dtype on disk (default: bfloat16)")
  parser.add_argument("--skip_errors", action="store_true",
                      help="skip malformed TSV rows (counted in the store manifest)")
  gin_flags.add_gin_arguments(parser)


def check_arguments(args: argparse.Namespace) -> None:
  """The flag values index rejects before loading anything."""
  from clqa_jax.cli import outputs
  from clqa_jax.cli import validate
  validate.positive(args, ("batch_size", "rows_per_shard"))
  validate.input_path("--export", args.export)
  validate.input_file("--corpus", args.corpus)
  outputs.check_writable("--out", args.out)
  if args.passage_store:
    outputs.check_writable("--passage_store", args.passage_store)


def run(args: argparse.Namespace) -> int:
  check_arguments(args)
  from clqa_jax.serving import corpus_index
  from clqa_jax.serving.inference import ModelRunner
  from clqa_jax.index import scann_index  # noqa: F401  (registers ScannConfig with gin)
  from clqa_jax.partitioning import partitioner as partitioner_lib

  start = time.time()
  gin_utils.parse_gin(args.gin_file, args.gin_bindings or [], finalize=False)
  runner = ModelRunner.from_export(args.export, partitioner=partitioner_lib.make_partitioner(),
                                   query_batch_size=args.batch_size)
  manifest = corpus_index.build_index(
      args.export, args.corpus, args.out, runner=runner,
      passage_store_dir=args.passage_store, searcher=args.searcher,
      batch_size=runner.query_batch_size, rows_per_shard=args.rows_per_shard,
      embedding_dtype=args.embedding_dtype, skip_errors=args.skip_errors,
      scann_config=scann_index.ScannConfig())
  print(json.dumps({k: manifest[k] for k in ("num_passages", "dim", "searcher")
                    if k in manifest} | ({"scann_recall_at_100": manifest["scann_recall_at_100"]}
                                         if "scann_recall_at_100" in manifest else {})))
  print(f"index of {manifest['num_passages']:,} passages in {args.out} "
        f"({time.time() - start:.1f}s)")
  return 0
