"""The gin-configurable data root and vocabulary path, resolved lazily at use time.

Tasks are registered at import time, before gin is parsed and possibly before the data exists;
every data path is therefore a function of these two settings, evaluated when a dataset is read.
"""
from __future__ import annotations

import os

import gin

from clqa_jax import fileio

DATA_DIR_ENV = "CLQA_DATA_DIR"
VOCAB_ENV = "CLQA_VOCAB"


@gin.configurable
def data_root(path: str | None = None) -> str:
  """The data root of the contract (passages/, stage1/, stage2/, xor/, mkqa/, nq/, tfds/).

  Args:
    path: explicit root; default: the environment variable CLQA_DATA_DIR.
  """
  root = path or os.environ.get(DATA_DIR_ENV)
  if not root:
    raise FileNotFoundError(
        f"no data root: set {DATA_DIR_ENV} or bind data_root.path in gin "
        "(e.g. --gin.data_root.path=\"'/data/clqa'\")")
  return root


@gin.configurable
def vocabulary_path(path: str | None = None) -> str:
  """The SentencePiece model file (the real mT5 one for real runs).

  Args:
    path: explicit .model file; default: env CLQA_VOCAB, else <data_root>/vocab/spm.model.
  """
  resolved = path or os.environ.get(VOCAB_ENV)
  if not resolved:
    resolved = fileio.join(data_root(), "vocab", "spm.model")
  if not fileio.exists(resolved):
    raise FileNotFoundError(
        f"SentencePiece model {resolved!r} not found: set {VOCAB_ENV}, bind vocabulary_path.path, "
        "or train a small one with `clqa vocab train --input ... --out ...`")
  return resolved


def data_path(*parts: str) -> str:
  return fileio.join(data_root(), *parts)


def resolve(path: str) -> str:
  """``path`` itself when absolute or remote (gs://), else that path under the data root."""
  return path if os.path.isabs(path) or fileio.is_remote(path) else data_path(path)
