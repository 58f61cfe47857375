"""Lucene BM25 over a passage TSV, the sparse baseline of the peer methods (spec §2.6).

Score of passage d for query q (Lucene >= 8, Kamphuis et al. 2020 "lucene" variant):
  sum over the distinct query terms t in d of
    log(1 + (N - df_t + 0.5) / (df_t + 0.5)) * tf_td / (tf_td + k1 (1 - b + b dl_d / avgdl)),
with N passages, dl_d = number of terms of d, avgdl their mean; k1 = 0.9, b = 0.4 (Pyserini's
defaults, the spec's reading of the unspecified source). A query term repeated in the query counts
once per occurrence, as in Lucene's BooleanQuery of term clauses. A passage is indexed as
"title text" (the title's terms count) and analyzed by ``bm25_analyzers.analyzer_for(lang)``.

Built with ``bm25s`` (pinned in requirements.txt): its ``method="lucene"`` computes exactly the
formula above (idf ``log(1 + (N - df + 0.5) / (df + 0.5))``, term frequency part
``tf / (tf + k1 (1 - b + b dl / avgdl))``), it precomputes every (term, passage) weight into a
scipy sparse matrix so a query is a sum of a few rows, needs only numpy + scipy, and takes
pre-analyzed term lists, so our analyzers decide the terms. Pyserini (the source's tool) needs a
JVM; ``rank-bm25`` rescores the whole corpus in Python per query (see benchmarks/bm25.py).
Ranking: descending score, ties to the lower passage row (``index.exact``'s rule); only passages
sharing a term with the query are returned, as Lucene does.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from clqa_jax.data.errors import DataFormatError
from clqa_jax.data.records import Passage
from clqa_jax.data.records import Question
from clqa_jax.index import bm25_analyzers
from clqa_jax.index import exact

K1 = 0.9
B = 0.4


def passage_document(passage: Passage) -> str:
  """The text a passage is indexed by: its title, then its text."""
  return f"{passage.title} {passage.text}"


@dataclasses.dataclass
class Bm25Index:
  """One language's BM25 index: ``bm25s.BM25`` plus our passages and analyzer."""
  lang: str
  passages: list[Passage]
  retriever: object  # bm25s.BM25

  @classmethod
  def build(cls, passages: Sequence[Passage], lang: str, k1: float = K1,
            b: float = B) -> "Bm25Index":
    import bm25s  # Lazy: only the BM25 baseline needs it.
    passages = list(passages)
    if not passages:
      raise ValueError(f"BM25 index for {lang!r}: no passages")
    analyze = bm25_analyzers.analyzer_for(lang)
    retriever = bm25s.BM25(k1=k1, b=b, method="lucene", idf_method="lucene")
    retriever.index([analyze(passage_document(p)) for p in passages], show_progress=False)
    return cls(lang, passages, retriever)

  def scores(self, query: str) -> np.ndarray:
    """BM25 score of every passage for ``query`` -> float32 [N] (0 where no term is shared)."""
    vocab = self.retriever.vocab_dict
    terms = [t for t in bm25_analyzers.analyzer_for(self.lang)(query) if t in vocab]
    if not terms:
      return np.zeros(len(self.passages), np.float32)
    return np.asarray(self.retriever.get_scores(terms), np.float32)

  def search(self, query: str, k: int) -> list[tuple[int, float]]:
    """Top-``k`` (row, score) of the passages sharing a term with ``query``, best first."""
    scores = self.scores(query)
    top_scores, top_rows = exact.scores_topk(scores[None], min(k, len(scores)))
    return [(int(r), float(s)) for r, s in zip(top_rows[0], top_scores[0]) if s > 0]


def retrieve_questions(indexes: dict[str | None, Bm25Index], questions: Sequence[Question],
                       k: int, questions_path: str) -> list[list[tuple[Passage, float]]]:
  """Top-``k`` passages of each question, searched in the index of its ``lang``.

  ``indexes`` maps a language to its index (the source's oracle setting: the dataset's language
  field picks the index), or ``None`` to the one index that serves every question.
  """
  results = []
  for question in questions:
    index = indexes.get(None) or indexes.get(question.lang)
    if index is None:
      raise DataFormatError(questions_path, None, f"id {question.qid!r}: lang",
                            f"no BM25 corpus for language {question.lang!r} "
                            f"(corpora: {sorted(indexes)})")
    results.append([(index.passages[row], score) for row, score in index.search(
        question.question, k)])
  return results
