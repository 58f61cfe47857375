"""``clqa vocab train``: a small SentencePiece model (mT5 special ids, byte fallback)."""
from __future__ import annotations

import argparse
import hashlib
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
  sub = parser.add_subparsers(dest="action", required=True)
  train = sub.add_parser("train", help="train a SentencePiece model on plain-text files")
  train.add_argument("--input", action="append", required=True,
                     help="plain-text file, one sentence per line (repeatable)")
  train.add_argument("--vocab_size", type=int, default=1000)
  train.add_argument("--out", required=True, help="output .model path (.vocab written beside it)")
  train.add_argument("--model_type", default="unigram", choices=["unigram", "bpe"])
  train.add_argument("--soft_vocab_limit", action="store_true",
                     help="allow fewer pieces than --vocab_size on a tiny corpus")
  train.add_argument("--force", action="store_true", help="overwrite an existing --out")


def run(args: argparse.Namespace) -> int:
  import sentencepiece as spm

  from clqa_jax import fileio
  from clqa_jax.data import spm_train

  if fileio.exists(args.out) and not args.force:
    print(f"clqa vocab: {args.out} exists; pass --force to overwrite", file=sys.stderr)
    return 1
  try:
    path = spm_train.train_sentencepiece(args.input, args.vocab_size, args.out,
                                         model_type=args.model_type,
                                         hard_vocab_limit=not args.soft_vocab_limit)
  except (FileNotFoundError, ValueError, RuntimeError) as e:
    print(f"clqa vocab: {e}", file=sys.stderr)
    return 1
  model = fileio.read_bytes(path)
  sp = spm.SentencePieceProcessor(model_proto=model)
  digest = hashlib.sha256(model).hexdigest()
  print(f"wrote {path}: {sp.vocab_size()} pieces (pad {sp.pad_id()}, eos {sp.eos_id()}, "
        f"unk {sp.unk_id()}), sha256 {digest[:16]}")
  return 0
