"""``clqa eval``: evaluate an exported checkpoint with the official metric semantics.

  clqa eval --export EXPORT_DIR --index INDEX_DIR --task xor-retrieve --out RESULTS_DIR \\
      --data_file xor_dev_retrieve_eng_span_v1_1.jsonl [--mode both] [--search exact|scann]
  clqa eval ... --task xor-full --data_file xor_dev_full_v1_1.jsonl     (multilingual index)
  clqa eval ... --task mkqa --data_file mkqa.jsonl --langs ja ko        (raw MKQA JSONL)

retrieve: questions -> embed_queries -> search the index -> top-k (100) -> R@2kt/R@5kt/R@100kt.
read:     FiD over the top --reader_k (100) passages -> greedy (max 50 tokens) -> XOR-Full
          F1/EM/BLEU, XOR-EnglishSpan F1/EM (xor-retrieve files) or MKQA F1/EM/BLEU.
both:     the two (default).
RESULTS_DIR gets metrics.json / metrics.md / metrics.<task>.png, xor_retrieve_predictions.json
(the official script's input: id, lang, ctxs), {id: answer} predictions
(xor_full_/xor_engspan_predictions.json, or mkqa_predictions.json as {lang: {id: answer}})
and eval_run.json. Build the index first with `clqa index`, or give --corpus to build it into
--index. Gin: EvalConfig.* (every flag below), ScannConfig.*, partitioning files.
"""
from __future__ import annotations

import argparse
import dataclasses

from clqa_jax import gin_utils
from clqa_jax.cli import gin_flags
from clqa_jax.cli import outputs

# flag -> EvalConfig field; a flag left unset keeps the gin/default value.
_FIELDS = ("task", "mode", "search", "top_k", "reader_k", "max_answer_length",
           "query_batch_size", "reader_batch_size", "ks", "langs", "limit", "mia_segmentation",
           "num_workers")


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.description = __doc__
  parser.formatter_class = argparse.RawDescriptionHelpFormatter
  parser.add_argument("--export", required=True, help="exported checkpoint (clqa export)")
  parser.add_argument("--index", required=True, help="passage index directory (clqa index)")
  parser.add_argument("--data_file", required=True,
                      help="XOR-Retrieve / XOR-Full JSONL, or raw MKQA JSONL with --task mkqa")
  parser.add_argument("--out", required=True, help="results directory")
  parser.add_argument("--corpus", default=None,
                      help="passage TSV: build --index from it first when it is not built")
  parser.add_argument("--task", choices=("xor-retrieve", "xor-full", "mkqa"), default=None,
                      help="what --data_file is (default: xor-retrieve)")
  parser.add_argument("--mode", choices=("retrieve", "read", "both"), default=None,
                      help="retrieval metrics, reading metrics, or both (default: both)")
  parser.add_argument("--search", choices=("exact", "device", "scann"), default=None,
                      help="exact numpy, exact on-device, or ScaNN search (default: exact)")
  parser.add_argument("--top_k", type=int, default=None, help="retrieval depth (default: 100)")
  parser.add_argument("--reader_k", type=int, default=None,
                      help="passages the reader reads (default: 100)")
  parser.add_argument("--max_answer_length", type=int, default=None,
                      help="greedy decoding length (default: 50)")
  parser.add_argument("--query_batch_size", type=int, default=None,
                      help="questions per encoding step (default: 64)")
  parser.add_argument("--reader_batch_size", type=int, default=None,
                      help="questions per reading step (default: 8)")
  parser.add_argument("--ks", type=int, nargs="+", default=None,
                      help="R@{k}kt for these k (default: 2 5 100)")
  parser.add_argument("--langs", nargs="+", default=None, help="only these languages")
  parser.add_argument("--limit", type=int, default=None, help="only the first N questions")
  parser.add_argument("--mia_segmentation", action="store_true", default=None,
                      help="MKQA: also segment zh/th/km before F1/EM")
  parser.add_argument("--num_workers", type=int, default=None,
                      help="processes tokenising passages for R@kt (default: 1)")
  parser.add_argument("--overwrite", action="store_true", help="replace existing results")
  gin_flags.add_gin_arguments(parser)


def eval_config(args: argparse.Namespace):
  """EvalConfig from gin (already parsed) with the flags that were given on top."""
  from clqa_jax.serving.runner import EvalConfig

  config = EvalConfig()
  changes = {}
  for name in _FIELDS:
    value = getattr(args, name, None)
    if value is not None:
      changes[name] = tuple(value) if isinstance(value, list) else value
  return dataclasses.replace(config, **changes)


def check_arguments(args: argparse.Namespace) -> None:
  """The flag values eval rejects before loading anything."""
  from clqa_jax.cli import validate
  validate.positive(args, ("top_k", "reader_k", "max_answer_length", "query_batch_size",
                           "reader_batch_size", "limit", "num_workers"))
  validate.positive_list(args, "ks")
  validate.languages("--langs", args.langs, mkqa=args.task == "mkqa")
  validate.input_path("--export", args.export)
  validate.input_file("--data_file", args.data_file)
  if args.corpus:
    validate.input_file("--corpus", args.corpus)
  outputs.check_writable("--out", args.out)


def run(args: argparse.Namespace) -> int:
  check_arguments(args)
  from clqa_jax import fileio
  from clqa_jax.serving import corpus_index
  from clqa_jax.eval import report
  from clqa_jax.serving import runner as runner_lib
  from clqa_jax.serving.inference import ModelRunner
  from clqa_jax.index import scann_index
  from clqa_jax.partitioning import partitioner as partitioner_lib

  gin_utils.parse_gin(args.gin_file, args.gin_bindings or [], finalize=False)
  config = eval_config(args)
  runner = ModelRunner.from_export(args.export, partitioner=partitioner_lib.make_partitioner(),
                                   query_batch_size=config.query_batch_size,
                                   reader_batch_size=config.reader_batch_size)
  if not fileio.exists(fileio.join(args.index, corpus_index.INDEX_JSON)):
    if not args.corpus:
      raise corpus_index.IndexMismatchError(
          f"{args.index} is not a finished index: build it with `clqa index` or pass --corpus")
    corpus_index.build_index(args.export, args.corpus, args.index, runner=runner,
                             searcher="scann" if config.search == "scann" else "exact",
                             scann_config=scann_index.ScannConfig())
  result = runner_lib.evaluate(args.export, args.index, args.data_file, args.out, config,
                               runner=runner, overwrite=args.overwrite)
  for table in result.tables:
    print(report.format_text(table))
  print("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items()))
  for path in result.paths:
    print(f"wrote {path}")
  return 0
