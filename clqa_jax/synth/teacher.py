"""Teacher retrieval for stage-1 records: top-k English passages per cloze query.

Interface: `retrieve(queries: list[str]) -> list[list[(pid, score)]]`, best first. Two real
retrievers:
- `BM25Retriever` (Robertson & Zaragoza; k1=0.9, b=0.4 as in Pyserini's defaults) over the
  English passages, selected explicitly with `retriever="bm25"`: usable without a trained model.
- `DenseRetriever`: passage and query embeddings from a unified-model checkpoint's encoders,
  exact inner-product search (the teacher of real runs).
Both rank with `clqa_jax.index.exact` (descending score, ties to the lower passage row).
The query's source passage is excluded by `retrieve_excluding`.
"""
from __future__ import annotations

import re
from typing import Callable, Protocol

import numpy as np
import scipy.sparse as sp

from clqa_jax import fileio
from clqa_jax.data import formats
from clqa_jax.index import exact

_TOKEN = re.compile(r"\w+", re.UNICODE)
MASK_TOKEN = "_X_"


class Retriever(Protocol):
  def retrieve(self, queries: list[str]) -> list[list[tuple[str, float]]]:
    ...


def tokenize(text: str) -> list[str]:
  return [t for t in _TOKEN.findall(text.replace(MASK_TOKEN, " ").lower()) if t != "x"]


class BM25Retriever:
  """Okapi BM25 over passages `(pid, title, text)`; the title is indexed with the text."""

  def __init__(self, passages: list[tuple[str, str, str]], top_k: int = 100,
               k1: float = 0.9, b: float = 0.4):
    self.pids = [p[0] for p in passages]
    self.top_k = top_k
    vocab: dict[str, int] = {}
    rows, cols, vals, lengths = [], [], [], []
    for r, (_, title, text) in enumerate(passages):
      toks = tokenize(f"{title} {text}")
      lengths.append(len(toks))
      counts: dict[int, int] = {}
      for t in toks:
        c = vocab.setdefault(t, len(vocab))
        counts[c] = counts.get(c, 0) + 1
      for c, n in counts.items():
        rows.append(r)
        cols.append(c)
        vals.append(n)
    self.vocab = vocab
    n_docs = len(passages)
    tf = sp.csr_matrix((np.asarray(vals, np.float32), (rows, cols)), shape=(n_docs, len(vocab)))
    df = np.bincount(np.asarray(cols, np.int64), minlength=len(vocab))
    idf = np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
    dl = np.asarray(lengths, np.float32)
    avgdl = float(dl.mean()) if n_docs else 1.0
    tf = tf.tocoo()
    norm = k1 * (1 - b + b * dl[tf.row] / max(avgdl, 1e-9))
    w = tf.data * (k1 + 1) / (tf.data + norm) * idf[tf.col]
    # Term-major weights [V, N]: a query's scores are the sum of its terms' rows.
    self.weights = sp.csr_matrix((w, (tf.col, tf.row)), shape=(len(vocab), n_docs))

  def retrieve(self, queries: list[str]) -> list[list[tuple[str, float]]]:
    out = []
    n = len(self.pids)
    for q in queries:
      ids = sorted({self.vocab[t] for t in tokenize(q) if t in self.vocab})
      if not ids or n == 0:
        out.append([])
        continue
      scores = np.asarray(self.weights[ids].sum(axis=0)).ravel()
      top_scores, top = exact.scores_topk(scores[None], min(self.top_k, n))
      out.append([(self.pids[i], float(s)) for i, s in zip(top[0], top_scores[0]) if s > 0])
    return out


class DenseRetriever:
  """Exact inner-product search with a checkpoint's encoders.

  `encode_queries(texts) -> [Q, D]`, passage embeddings `[N, D]` precomputed with the same
  model's `encode_passages` ("title: {t} context: {p}").
  """

  def __init__(self, pids: list[str], passage_vectors: np.ndarray,
               encode_queries: Callable[[list[str]], np.ndarray], top_k: int = 100):
    self.pids = pids
    self.passage_vectors = np.asarray(passage_vectors, np.float32)
    self.encode_queries = encode_queries
    self.top_k = top_k

  @classmethod
  def from_params(cls, config, params, vocab_path: str, passages: list[tuple[str, str, str]],
                  top_k: int = 100, batch_size: int = 64, max_query_len: int = 50,
                  max_passage_len: int = 200) -> "DenseRetriever":
    """Encodes `passages` (pid, title, text) with `UnifiedModel.embed_passages`."""
    import jax
    import sentencepiece as spm
    from clqa_jax.models import UnifiedModel  # the model API (DESIGN.md §4)

    model = UnifiedModel.from_config(config)
    sp_model = spm.SentencePieceProcessor(model_proto=fileio.read_bytes(vocab_path))  # local or gs://
    embed_queries, embed_passages = jax.jit(model.embed_queries), jax.jit(model.embed_passages)

    def enc_q(tokens: np.ndarray) -> jax.Array:
      return embed_queries(params, tokens)

    def enc_p(tokens: np.ndarray) -> jax.Array:
      return embed_passages(params, tokens)

    def tokens(texts: list[str], length: int, eos: bool) -> np.ndarray:
      out = np.zeros((len(texts), length), np.int32)
      for i, t in enumerate(texts):
        ids = sp_model.encode(t)[:length - int(eos)] + ([1] if eos else [])
        out[i, :len(ids)] = ids
      return out

    texts = [formats.passage_text(title, text) for _, title, text in passages]
    vecs = [np.asarray(enc_p(tokens(texts[i:i + batch_size], max_passage_len, True)))
            for i in range(0, len(texts), batch_size)]

    def encode_queries(queries: list[str]) -> np.ndarray:
      return np.concatenate([np.asarray(enc_q(tokens([formats.question_text(q) for q in queries[i:i + batch_size]],
                                                     max_query_len, False)))
                             for i in range(0, len(queries), batch_size)], 0)

    return cls([p[0] for p in passages], np.concatenate(vecs, 0), encode_queries, top_k)

  def retrieve(self, queries: list[str]) -> list[list[tuple[str, float]]]:
    if not queries:
      return []
    query_vectors = np.asarray(self.encode_queries(queries), np.float32)
    scores, rows = exact.exact_topk(query_vectors, self.passage_vectors,
                                    min(self.top_k, len(self.pids)))
    return [[(self.pids[i], float(s)) for i, s in zip(r, sc)] for r, sc in zip(rows, scores)]


def retrieve_excluding(retriever: Retriever, queries: list[str], exclude: list[str],
                       top_k: int) -> list[list[tuple[str, float]]]:
  """Top-`top_k` per query with that query's source pid removed (the retriever must return
  at least top_k + 1 results to fill top_k after the exclusion)."""
  results = retriever.retrieve(queries)
  return [[(p, s) for p, s in res if p != ex][:top_k] for res, ex in zip(results, exclude)]


