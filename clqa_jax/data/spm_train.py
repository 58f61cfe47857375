"""SentencePiece model files: loading any, training small mT5-style ones (no TensorFlow import).

SentencePiece reads and writes local filenames only: models are loaded from their bytes
(read through ``fileio``, so ``gs://`` works), training reads local copies of its inputs and
writes to a local temporary directory before copying the model into place.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Iterable

from clqa_jax import fileio

PAD_ID, EOS_ID, UNK_ID = 0, 1, 2


def load_processor(path: str):
  """A ``sentencepiece.SentencePieceProcessor`` for the ``.model`` file at ``path``."""
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top

  return spm.SentencePieceProcessor(model_proto=fileio.read_bytes(path))


def train_sentencepiece(input_files: Iterable[str], vocab_size: int, out_path: str, *,
                        character_coverage: float = 0.9995, model_type: str = "unigram",
                        input_sentence_size: int = 2_000_000,
                        seed_sentencepiece_size: int = 200_000,
                        num_threads: int = 2, hard_vocab_limit: bool = True) -> str:
  """Trains a small mT5-style SentencePiece model (pad 0, EOS 1, UNK 2, byte fallback).

  Args:
    input_files: plain-text files, one sentence per line.
    vocab_size: number of pieces; must exceed the number of distinct characters (+ 256 bytes).
    out_path: the ``.model`` file to write (``.vocab`` is written beside it); written atomically.
    hard_vocab_limit: False lets a tiny corpus yield fewer pieces than ``vocab_size``.

  Returns:
    out_path.
  """
  import sentencepiece as spm

  files = list(input_files)
  for f in files:
    if not fileio.exists(f):
      raise FileNotFoundError(f"vocab training input {f!r} not found")
  if not out_path.endswith(".model"):
    raise ValueError(f"--out must end in .model, got {out_path!r}")
  with contextlib.ExitStack() as stack:
    local_inputs = [stack.enter_context(fileio.local_copy(f)) for f in files]
    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="clqa-spm-"))
    prefix = os.path.join(tmp, "spm")
    spm.SentencePieceTrainer.train(
        input=",".join(local_inputs), model_prefix=prefix, vocab_size=vocab_size,
        model_type=model_type, character_coverage=character_coverage, byte_fallback=True,
        pad_id=PAD_ID, eos_id=EOS_ID, unk_id=UNK_ID, bos_id=-1,
        pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
        input_sentence_size=input_sentence_size, shuffle_input_sentence=True,
        seed_sentencepiece_size=seed_sentencepiece_size, num_threads=num_threads,
        split_digits=True, remove_extra_whitespaces=True, hard_vocab_limit=hard_vocab_limit,
        minloglevel=2)
    fileio.copy(prefix + ".vocab", out_path[:-len(".model")] + ".vocab")
    fileio.copy(prefix + ".model", out_path)
  return out_path
