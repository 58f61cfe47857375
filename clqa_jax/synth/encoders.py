"""Multilingual sentence encoders for parallel-sentence mining (pluggable).

An encoder maps sentence records (dicts with "sentence", "lang" and "anchors", each anchor with
"target_en", the English title of the linked article or null) to embeddings `[N, D]`.

- `LinkedEntityEncoder`: a bag of the English entities a sentence links to (its anchors mapped
  through interlanguage links) plus the numbers it mentions (digits of any script mapped to ASCII),
  hashed into D dimensions. Wikipedia's own link structure is the alignment signal; it needs no
  model and runs anywhere.
- `CheckpointQueryEncoder`: a unified retriever-reader checkpoint's query encoder
  (`UnifiedModel.embed_queries`), the default for real runs.
"""
from __future__ import annotations

import hashlib
import re
from typing import Any, Callable, Protocol

import numpy as np

from clqa_jax import fileio
from clqa_jax.data import formats
from clqa_jax.synth import scripts

_NUMBER = re.compile(r"\d{2,}")


class SentenceEncoder(Protocol):
  def encode(self, sentences: list[dict[str, Any]]) -> np.ndarray:
    """Embeddings `[N, D]` of N sentence records."""


def _bucket(feature: str, dim: int) -> int:
  return int.from_bytes(hashlib.md5(feature.encode("utf-8")).digest()[:4], "little") % dim


class LinkedEntityEncoder:
  """Hashed bag of linked English entities and numbers (see module docstring)."""

  def __init__(self, dim: int = 4096, number_weight: float = 1.0):
    self.dim = dim
    self.number_weight = number_weight

  def features(self, record: dict[str, Any]) -> dict[str, float]:
    feats: dict[str, float] = {}
    for a in record.get("anchors", ()):
      if a.get("target_en"):
        feats["e:" + a["target_en"]] = 1.0
    for num in _NUMBER.findall(scripts.normalize_digits(record["sentence"])):
      feats["n:" + num] = self.number_weight
    return feats

  def encode(self, sentences: list[dict[str, Any]]) -> np.ndarray:
    out = np.zeros((len(sentences), self.dim), np.float32)
    for i, record in enumerate(sentences):
      for f, w in self.features(record).items():
        out[i, _bucket(f, self.dim)] += w
    return out


class CheckpointQueryEncoder:
  """Embeds sentence text with a model's query encoder, batched.

  `encode_fn(query_tokens [B, Lq]) -> [B, D]` is the jitted `UnifiedModel.embed_queries`
  of loaded params; `tokenize(texts) -> int32 [B, Lq]` formats "question: {q}" without EOS
  (the contract's query features). `from_params` builds both from the model API.
  """

  def __init__(self, encode_fn: Callable[[np.ndarray], np.ndarray],
               tokenize: Callable[[list[str]], np.ndarray], batch_size: int = 64):
    self.encode_fn = encode_fn
    self.tokenize = tokenize
    self.batch_size = batch_size

  @classmethod
  def from_params(cls, config: Any, params: Any, vocab_path: str, max_len: int = 50,
                  batch_size: int = 64) -> "CheckpointQueryEncoder":
    import jax
    import sentencepiece as spm
    from clqa_jax.models import UnifiedModel  # the model API (DESIGN.md §4)

    embed_queries = jax.jit(UnifiedModel.from_config(config).embed_queries)
    sp = spm.SentencePieceProcessor(model_proto=fileio.read_bytes(vocab_path))  # local or gs://

    def encode_fn(tokens):
      return embed_queries(params, tokens)

    def tokenize(texts: list[str]) -> np.ndarray:
      out = np.zeros((len(texts), max_len), np.int32)
      for i, t in enumerate(texts):
        ids = sp.encode(formats.question_text(t))[:max_len]
        out[i, :len(ids)] = ids
      return out

    return cls(lambda t: np.asarray(encode_fn(t)), tokenize, batch_size)

  def encode(self, sentences: list[dict[str, Any]]) -> np.ndarray:
    texts = [r["sentence"] for r in sentences]
    chunks = [self.encode_fn(self.tokenize(texts[i:i + self.batch_size]))
              for i in range(0, len(texts), self.batch_size)]
    return np.concatenate(chunks, 0).astype(np.float32) if chunks else np.zeros((0, 1), np.float32)
