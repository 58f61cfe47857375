"""``clqa import``: external checkpoints -> exported checkpoints (the format of ``clqa export``).

  clqa import hf_mt5 --src DIR --out EXPORT_DIR [--scan_layers] [--vocab spm.model] [--overwrite]
  clqa import hf_mt5 --src DIR --out EXPORT_DIR --unified [--retriever_layer R]
  clqa import class  --src DIR --out EXPORT_DIR [--retriever_layer R] [--scan_layers]
  clqa import t5x    --src CHECKPOINT_DIR --out EXPORT_DIR [--unified] [--vocab spm.model]

``hf_mt5`` reads a Hugging Face mT5 directory (config.json + model.safetensors or
pytorch_model.bin), ``t5x`` a T5X mT5 checkpoint directory (local or gs://, e.g.
gs://t5-data/pretrained_models/t5x/mt5_large/checkpoint_1000000; its dimensions come from the
array shapes), as ``MT5`` params or, with ``--unified``, as the start of a
``UnifiedRetrieverReader`` whose retriever head is freshly initialised (and listed); ``class``
reads the official CLASS layout (the same plus the retriever head at encoder block R). R is
config.json's ``retriever_layer`` when present (the official code reads it from there), and a
unified import records config.json's ``retriever_head`` (the MaxSim head) in the manifest. The
output is an exported checkpoint (manifest.json, model_config.json, params/, vocab/): read it
with ``clqa_jax.checkpoints.load_exported`` or point ``clqa eval``, ``Teacher.checkpoint`` or
``CheckpointConfig.init_checkpoint`` at it. The vocabulary is ``--vocab``, else the source's
spiece.model, else the configured default (CLQA_VOCAB / the data root).
"""
from __future__ import annotations

import argparse
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
  from clqa_jax.checkpoints.import_hf import SOURCES

  parser.add_argument("source", choices=SOURCES,
                      help="hf_mt5: a Hugging Face mT5 directory; class: an official CLASS one; "
                           "t5x: a T5X mT5 checkpoint directory (checkpoint_N)")
  parser.add_argument("--src", required=True, help="source checkpoint directory")
  parser.add_argument("--out", required=True, help="the export directory to write (must not "
                                                    "exist)")
  parser.add_argument("--retriever_layer", type=int, default=None,
                      help="class / --unified: the retriever layer R when the source's "
                           "config.json has no retriever_layer (default: encoder layers // 2)")
  parser.add_argument("--unified", action="store_true",
                      help="hf_mt5 / t5x: import as a unified retriever-reader (new retriever "
                           "head)")
  parser.add_argument("--seed", type=int, default=0, help="--unified: init seed of the head")
  parser.add_argument("--scan_layers", action="store_true",
                      help="store each stack's layers stacked for scan-over-layers models")
  parser.add_argument("--vocab", default=None,
                      help="SentencePiece model to ship (default: the source's spiece.model, "
                           "else CLQA_VOCAB / the data root)")
  parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                      help="parameter dtype on disk (default: float32)")
  parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def run(args: argparse.Namespace) -> int:
  from clqa_jax.checkpoints import import_hf
  from clqa_jax.cli import outputs
  from clqa_jax.cli import validate
  from clqa_jax.cli.errors import UsageError

  if (args.source in import_hf.PLAIN_MT5_SOURCES and not args.unified
      and args.retriever_layer is not None):
    raise UsageError("--retriever_layer needs 'class' or --unified")
  if args.retriever_layer is not None and args.retriever_layer < 0:
    raise UsageError(f"--retriever_layer must be 0 or more, got {args.retriever_layer}")
  validate.input_path("--src", args.src)
  if args.vocab:
    validate.input_file("--vocab", args.vocab)
  outputs.check_writable("--out", args.out)
  start = time.time()
  manifest, initialised = import_hf.import_checkpoint(
      args.source, args.src, args.out, unified=args.unified,
      retriever_layer=args.retriever_layer, seed=args.seed, scan_layers=args.scan_layers,
      vocab_path=args.vocab, dtype=args.dtype, overwrite=args.overwrite)
  for path in initialised:
    print(f"initialised (not in the source): {path}")
  print(f"imported {manifest['param_count']:,} parameters from {args.src} into {args.out} "
        f"in {time.time() - start:.1f}s")
  return 0
