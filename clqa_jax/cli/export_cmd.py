"""``clqa export``: a training checkpoint -> an exported checkpoint (or a Hugging Face directory).

  clqa export --checkpoint_dir MODEL_DIR [--step latest|best|N] --out EXPORT_DIR \\
      [--dtype float32|bfloat16] [--vocab spm.model] [--overwrite]
  clqa export --checkpoint_dir EXPORT_DIR --format hf --out HF_DIR

Paths may be local or gs://. The model config is the run's ``model_config.json`` (written by
``clqa train``), or ``--model_config``. ``--format clqa`` (default) writes what ``clqa
eval/index/infer`` read: params (orbax), the model config JSON, the run's operative gin, the
vocabulary and a format version (``clqa_jax.checkpoints.exported``). ``--format hf`` writes
config.json + model.safetensors that transformers' MT5ForConditionalGeneration loads, with the
retriever head under the official CLASS tensor names (``clqa import class`` reads it back).
"""
from __future__ import annotations

import argparse
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.description = __doc__
  parser.formatter_class = argparse.RawDescriptionHelpFormatter
  parser.add_argument("--checkpoint_dir", required=True,
                      help="a training run directory (MODEL_DIR), its checkpoints/ or one step "
                           "directory; or an exported checkpoint (clqa export / clqa import)")
  parser.add_argument("--out", required=True, help="the directory to write (must not exist)")
  parser.add_argument("--step", default="latest",
                      help="'latest', 'best' (by the metric the run's CheckpointConfig."
                           "best_metric recorded, or --best_metric) or a step number "
                           "(default: latest)")
  parser.add_argument("--format", choices=("clqa", "hf"), default="clqa",
                      help="clqa: exported checkpoint; hf: Hugging Face mT5 + CLASS head")
  parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                      help="parameter dtype on disk (default: float32)")
  parser.add_argument("--vocab", default=None,
                      help="SentencePiece model to ship (default: the run's "
                           "vocabulary_path.path binding, else CLQA_VOCAB / the data root)")
  parser.add_argument("--model_config", default=None,
                      help="UnifiedConfig JSON, when the run directory has no "
                           "model_config.json")
  parser.add_argument("--best_metric", default=None,
                      help="metric for --step best (default: the run's "
                           "CheckpointConfig.best_metric)")
  parser.add_argument("--best_mode", choices=("max", "min"), default=None,
                      help="whether larger or smaller --best_metric is better (default: the "
                           "run's, else max)")
  parser.add_argument("--no_retriever_head", action="store_true",
                      help="hf only: write the plain mT5 backbone without the CLASS head")
  parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def run(args: argparse.Namespace) -> int:
  from clqa_jax.checkpoints import export
  from clqa_jax.checkpoints import hf_export
  from clqa_jax.cli import outputs
  from clqa_jax.cli import validate
  from clqa_jax.cli.errors import UsageError

  validate.input_path("--checkpoint_dir", args.checkpoint_dir)
  for flag, path in (("--vocab", args.vocab), ("--model_config", args.model_config)):
    if path:
      validate.input_file(flag, path)
  if args.step not in ("latest", "best") and not args.step.isdigit():
    raise UsageError(f"--step must be 'latest', 'best' or a step number, got {args.step!r}")
  outputs.check_writable("--out", args.out)
  start = time.time()
  if args.format == "clqa":
    manifest = export.export_checkpoint(
        args.checkpoint_dir, args.out, step=args.step, dtype=args.dtype,
        vocab_path=args.vocab, model_config=args.model_config,
        best_metric=args.best_metric, best_mode=args.best_mode, overwrite=args.overwrite)
    src = manifest["source"]
    print(f"exported {manifest['param_count']:,} parameters ({args.dtype}) of {src['path']} "
          f"step {src['step']} to {args.out} in {time.time() - start:.1f}s")
    return 0
  source = export.resolve_source(args.checkpoint_dir, args.step,
                                 best_metric=args.best_metric, best_mode=args.best_mode)
  config = export.resolve_model_config(source, args.model_config)
  params = export.restore_params(source, config)
  vocab = None
  try:
    vocab = export.resolve_vocabulary(source, args.vocab)
  except FileNotFoundError:
    pass  # the tokenizer file is optional for a Hugging Face directory
  out = hf_export.export_hf(config, params, args.out, dtype=args.dtype,
                            include_retriever=not args.no_retriever_head, vocab_path=vocab,
                            overwrite=args.overwrite)
  head = "" if args.no_retriever_head else " with the CLASS retriever head"
  print(f"wrote a Hugging Face mT5 directory{head} to {out} in {time.time() - start:.1f}s")
  return 0
