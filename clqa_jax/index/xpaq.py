"""LEXA's XPAQ filter (reference/peer-methods.md 3.4, 3.8 [REC]): the candidate questions (PAQ,
external) most similar to the XOR questions.

Every candidate and every XOR question is embedded with one model's query encoder; a candidate's
score is its maximum dot product over the XOR questions, and the ``keep`` best candidates
(default 400,000, about twice the XOR count) are written, best first (ties: file order), as
their own JSONL lines plus ``xpaq_score``. Candidates stream through in chunks, so the memory
is one chunk plus the kept scores, not the candidate file.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from typing import Callable, Iterator, Sequence

import numpy as np

from clqa_jax import fileio
from clqa_jax.data import readers
from clqa_jax.data.errors import DataFormatError
from clqa_jax.data.records import Question

logger = logging.getLogger(__name__)

DEFAULT_KEEP = 400_000
SCORE_FIELD = "xpaq_score"

# query token ids [N, Lq] -> query vectors float32 [N, D]
EncodeFn = Callable[[np.ndarray], np.ndarray]
# questions -> query token ids [N, Lq]
TokenizeFn = Callable[[Sequence[Question]], np.ndarray]


def max_similarity(candidates_ND: np.ndarray, targets_MD: np.ndarray) -> np.ndarray:
  """Each candidate's maximum dot product over the targets -> float32 [N]."""
  scores = np.asarray(candidates_ND, np.float32) @ np.asarray(targets_MD, np.float32).T
  return scores.max(axis=1)


def best_indices(scores_N: np.ndarray, indices_N: np.ndarray, keep: int) -> np.ndarray:
  """The positions of the ``keep`` best scores, best first, ties by the smaller index."""
  order = np.lexsort((indices_N, -np.asarray(scores_N, np.float64)))
  return order[:keep]


@dataclasses.dataclass
class XpaqReport:
  candidates: int
  xor_questions: int
  kept: int
  min_kept_score: float | None
  path: str


def _candidate_lines(path: str) -> Iterator[tuple[int, int, bytes]]:
  """(record index, line number, line) of every non-blank line."""
  index = 0
  with readers.open_binary(path) as f:
    for lineno, line in enumerate(f, start=1):
      if line.strip():
        yield index, lineno, line
        index += 1


def _candidate_chunks(path: str, chunk_size: int) -> Iterator[tuple[int, list[Question]]]:
  """(index of the chunk's first record, its questions) over PAQ-format JSONL
  ({"question": ..., "answer": [...], ...}; English)."""
  chunk: list[Question] = []
  start = 0
  for index, lineno, line in _candidate_lines(path):
    try:
      question = json.loads(line)["question"]
    except (ValueError, KeyError, TypeError) as e:
      raise DataFormatError(path, lineno, "question",
                            f"not a JSON object with a question: {e}") from e
    if not isinstance(question, str) or not question.strip():
      raise DataFormatError(path, lineno, "question", "must be a non-empty string")
    if not chunk:
      start = index
    chunk.append(Question(qid=str(index), lang="en", question=question, answers=()))
    if len(chunk) == chunk_size:
      yield start, chunk
      chunk = []
  if chunk:
    yield start, chunk


def _objects_by_index(path: str, wanted: set[int]) -> dict[int, dict]:
  """{record index: its JSON object} of the wanted records (one streaming pass)."""
  return {index: json.loads(line) for index, _, line in _candidate_lines(path)
          if index in wanted}


def select_xpaq(encode: EncodeFn, tokenize: TokenizeFn, candidates_path: str,
                xor_questions: Sequence[Question], out_path: str, *, keep: int = DEFAULT_KEEP,
                chunk_size: int = 65536) -> XpaqReport:
  """Scores every candidate of ``candidates_path`` against ``xor_questions`` and writes the
  ``keep`` best to ``out_path`` (atomically)."""
  if keep < 1:
    raise ValueError(f"keep must be positive, got {keep}")
  if not xor_questions:
    raise ValueError("no XOR questions to compare the candidates with")
  targets = encode(tokenize(xor_questions))
  kept_scores = np.zeros((0,), np.float32)
  kept_index = np.zeros((0,), np.int64)
  total = 0
  for start, chunk in _candidate_chunks(candidates_path, chunk_size):
    scores = max_similarity(encode(tokenize(chunk)), targets)
    index = np.arange(start, start + len(chunk), dtype=np.int64)
    kept_scores = np.concatenate([kept_scores, scores])
    kept_index = np.concatenate([kept_index, index])
    best = best_indices(kept_scores, kept_index, keep)
    kept_scores, kept_index = kept_scores[best], kept_index[best]
    total += len(chunk)
  if total == 0:
    raise ValueError(f"{candidates_path}: no candidate questions")
  objects = _objects_by_index(candidates_path, set(kept_index.tolist()))
  lines = [json.dumps({**objects[int(i)], SCORE_FIELD: round(float(s), 6)}, ensure_ascii=False)
           for i, s in zip(kept_index, kept_scores)]
  fileio.atomic_write(out_path, "\n".join(lines) + "\n")
  report = XpaqReport(total, len(xor_questions), len(lines),
                      float(kept_scores[-1]) if len(lines) else None, out_path)
  logger.info("XPAQ: %s", report)
  return report
