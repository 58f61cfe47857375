"""The capstone's self-training data (reference/peer-methods.md 1.4, 1.8): which passages of a
question are its positives and which retrieved ones its hard negatives.

- Positives ("gold passages, known a priori"): the dataset's (the passages of the question's
  ``gold_titles``), else the corpus passages whose text contains an answer string (the R@kt
  match of ``eval.xor_retrieve``); at most ``max_positives``, in corpus order. Computed once
  per driver run from the questions file and the corpus, so every round has the same ones.
- Hard negatives: the first ``hard_negatives`` passages of a round's retrieval (best first)
  that are no positive and contain no answer string ("answer-free").
A round's training store (a ``RetrievalStore``) holds each question's positives, then its hard
negatives, scored 1 and 0: the feed turns the scores into ``positive_labels``
(``TrainFeed.positive_labels``) for the ``multi_positive`` objective.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from clqa_jax.data.records import Passage, Question
from clqa_jax.eval import xor_retrieve

POSITIVE, NEGATIVE = 1.0, 0.0


def contains_answer(text: str, answers: Sequence[str]) -> bool:
  """True when an answer string (not "yes"/"no") is in the word-tokenized ``text``."""
  spans = xor_retrieve.span_answers(answers)
  return bool(spans) and xor_retrieve.hits_at_k([text], spans, (1,))[1]


def gold_pids(questions: Sequence[Question], gold_titles: Mapping[str, Sequence[str]],
              passages: Iterable[Passage], max_positives: int) -> dict[str, list[str]]:
  """{qid: up to ``max_positives`` gold passage ids}, in corpus order: the passages of the
  question's gold titles, or (a question without gold titles) those containing an answer
  (a scan of every passage per such question); [] for a question with neither."""
  by_title: dict[str, list[str]] = {}
  for q in questions:
    for title in set(gold_titles.get(q.qid, ())):
      by_title.setdefault(title, []).append(q.qid)
  by_answer = [q for q in questions if not gold_titles.get(q.qid)]
  out: dict[str, list[str]] = {q.qid: [] for q in questions}
  for p in passages:
    for qid in by_title.get(p.title, ()):
      if len(out[qid]) < max_positives:
        out[qid].append(p.pid)
    for q in by_answer:
      if len(out[q.qid]) < max_positives and contains_answer(p.text, q.answers):
        out[q.qid].append(p.pid)
  return out


def training_rows(positive_rows: Sequence[int], retrieved_rows: Sequence[int],
                  answer_rows: set[int], hard_negatives: int, k: int
                  ) -> tuple[np.ndarray, np.ndarray]:
  """One question's training passages: (int64 [k] rows, float32 [k] labels).

  Its positives (label 1), then the first ``hard_negatives`` retrieved rows that are neither a
  positive nor in ``answer_rows`` (those containing an answer), label 0; -1 padding (label
  -inf, no passage) after them.
  """
  if len(positive_rows) + hard_negatives > k:
    raise ValueError(f"{len(positive_rows)} positives + {hard_negatives} hard negatives do not "
                     f"fit k = {k} passages")
  positives = list(positive_rows)
  negatives = [int(r) for r in retrieved_rows
               if r >= 0 and r not in answer_rows and r not in positives][:hard_negatives]
  rows = np.full(k, -1, np.int64)
  labels = np.full(k, -np.inf, np.float32)
  rows[:len(positives)] = positives
  labels[:len(positives)] = POSITIVE
  rows[len(positives):len(positives) + len(negatives)] = negatives
  labels[len(positives):len(positives) + len(negatives)] = NEGATIVE
  return rows, labels
