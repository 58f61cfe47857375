"""``clqa import``: external checkpoints -> exported checkpoints (the format of ``clqa export``).

  clqa import hf_mt5 --src DIR --out EXPORT_DIR [--scan_layers] [--vocab spm.model] [--overwrite]
  clqa import hf_mt5 --src DIR --out EXPORT_DIR --unified [--retriever_layer R]
  clqa import class  --src DIR --out EXPORT_DIR [--retriever_layer R] [--scan_layers]

``hf_mt5`` reads a Hugging Face mT5 directory (config.json + model.safetensors or
pytorch_model.bin), as ``MT5`` params or, with ``--unified``, as the start of a
``UnifiedRetrieverReader`` whose retriever head is freshly initialised (and listed); ``class``
reads the official CLASS layout (the same plus the retriever head at encoder block R). The
output is an exported checkpoint (manifest.json, model_config.json, params/, vocab/): read it
with ``clqa_jax.checkpoints.load_exported`` or point ``clqa eval``, ``Teacher.checkpoint`` or
``CheckpointConfig.init_checkpoint`` at it. The vocabulary is ``--vocab``, else the source's
spiece.model, else the configured default (CLQA_VOCAB / the data root).
"""
from __future__ import annotations

import argparse
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("source", choices=("hf_mt5", "class"),
                      help="hf_mt5: a Hugging Face mT5 directory; class: an official CLASS one")
  parser.add_argument("--src", required=True, help="source checkpoint directory")
  parser.add_argument("--out", required=True, help="the export directory to write (must not "
                                                    "exist)")
  parser.add_argument("--retriever_layer", type=int, default=None,
                      help="class / --unified: the retriever layer R (default: encoder "
                           "layers // 2)")
  parser.add_argument("--unified", action="store_true",
                      help="hf_mt5: import as a unified retriever-reader (new retriever head)")
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
  from clqa_jax.checkpoints import exported
  from clqa_jax.checkpoints import hf_mt5
  from clqa_jax.checkpoints import import_hf
  from clqa_jax.checkpoints.param_mapping import CheckpointMappingError

  if args.source == "hf_mt5" and not args.unified and args.retriever_layer is not None:
    print("clqa import: --retriever_layer needs 'class' or --unified", file=sys.stderr)
    return 2
  start = time.time()
  try:
    manifest, initialised = import_hf.import_checkpoint(
        args.source, args.src, args.out, unified=args.unified,
        retriever_layer=args.retriever_layer, seed=args.seed, scan_layers=args.scan_layers,
        vocab_path=args.vocab, dtype=args.dtype, overwrite=args.overwrite)
  except (CheckpointMappingError, hf_mt5.CheckpointFormatError, exported.ExportFormatError,
          FileNotFoundError, FileExistsError, ValueError) as e:
    print(f"clqa import {args.source}: {e}", file=sys.stderr)
    return 1
  for path in initialised:
    print(f"initialised (not in the source): {path}")
  print(f"imported {manifest['param_count']:,} parameters from {args.src} into {args.out} "
        f"in {time.time() - start:.1f}s")
  return 0
