"""``clqa vocab train``: a small SentencePiece model (mT5 special ids, byte fallback)."""
from __future__ import annotations

import argparse
import hashlib

from clqa_jax.cli import outputs
from clqa_jax.cli.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
  from clqa_jax.cli import help_format
  sub = parser.add_subparsers(dest="action", required=True, help="what to do")
  train = sub.add_parser("train", help="train a SentencePiece model on plain-text files",
                         formatter_class=help_format.DefaultsHelpFormatter)
  train.add_argument("--input", action="append", required=True,
                     help="plain-text file, one sentence per line (repeatable)")
  train.add_argument("--vocab_size", type=int, default=1000, help="pieces in the vocabulary")
  train.add_argument("--out", required=True, help="output .model path (.vocab written beside it)")
  train.add_argument("--model_type", default="unigram", choices=["unigram", "bpe"],
                     help="SentencePiece model type")
  train.add_argument("--soft_vocab_limit", action="store_true",
                     help="allow fewer pieces than --vocab_size on a tiny corpus")
  train.add_argument("--force", action="store_true", help="overwrite an existing --out")


def run(args: argparse.Namespace) -> int:
  import sentencepiece as spm

  from clqa_jax import fileio
  from clqa_jax.data import spm_train

  if fileio.exists(args.out) and not args.force:
    raise UsageError(f"--out {args.out} exists; pass --force to overwrite")
  if args.vocab_size <= 0:
    raise UsageError(f"--vocab_size must be positive, got {args.vocab_size}")
  for path in args.input:
    if not fileio.exists(path):
      raise UsageError(f"--input {path}: no such file")
  outputs.check_writable("--out", args.out, is_file=True)
  try:
    path = spm_train.train_sentencepiece(args.input, args.vocab_size, args.out,
                                         model_type=args.model_type,
                                         hard_vocab_limit=not args.soft_vocab_limit)
  except RuntimeError as e:  # SentencePiece's trainer: e.g. a vocabulary too large for the text
    raise UsageError(f"SentencePiece training: {' '.join(str(e).split())}") from e
  model = fileio.read_bytes(path)
  sp = spm.SentencePieceProcessor(model_proto=model)
  digest = hashlib.sha256(model).hexdigest()
  print(f"wrote {path}: {sp.vocab_size()} pieces (pad {sp.pad_id()}, eos {sp.eos_id()}, "
        f"unk {sp.unk_id()}), sha256 {digest[:16]}")
  return 0
