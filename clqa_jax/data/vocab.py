"""The lazily resolved task vocabulary (a SentencePiece model; small ones are trained by
``spm_train``).

The real runs use the mT5 SentencePiece model (pad 0, EOS 1, UNK 2, 250,112 pieces). Tests and
the demo train a small model with the same special ids and ``byte_fallback`` so every string can
be encoded.
"""
from __future__ import annotations

import seqio

from clqa_jax import fileio
from clqa_jax.data import paths


class LazySentencePieceVocabulary(seqio.SentencePieceVocabulary):
  """A ``seqio.SentencePieceVocabulary`` whose model path is resolved at first use.

  Tasks are registered at import time; the path comes from gin (``vocabulary_path.path``) or
  the environment, which are only known later. The path is re-resolved on every model access so
  a changed binding takes effect (loading is memoised per path by seqio).
  """

  def __init__(self, path: str | None = None):
    self._explicit_path = path
    super().__init__(sentencepiece_model_file=path or "")

  def _resolve(self) -> str:
    return self._explicit_path or paths.vocabulary_path()

  def _model_context(self):
    path = self._resolve()
    if path != getattr(self, "_resolved_from", None):
      # seqio reads the file with TensorFlow's gfile; ours is read through fileio (a remote
      # model is copied to local disk once, for as long as this vocabulary lives).
      self._sentencepiece_model_file = fileio.pinned_local_copy(path, self)
      self._resolved_from = path
      self._model = None
    return super()._model_context()

  @property
  def sentencepiece_model_file(self) -> str:
    return self._resolve()

  def __eq__(self, other):
    # Same object or same resolution rule; comparing resolved paths would force data access
    # during mixture construction.
    return (isinstance(other, LazySentencePieceVocabulary)
            and self._explicit_path == other._explicit_path and self._extra_ids == other._extra_ids)

  def __hash__(self):
    return hash((self._explicit_path, self._extra_ids))


_TASK_VOCABULARY = LazySentencePieceVocabulary()


def task_vocabulary() -> LazySentencePieceVocabulary:
  """The shared vocabulary of every registered task (resolved via ``paths.vocabulary_path``)."""
  return _TASK_VOCABULARY


