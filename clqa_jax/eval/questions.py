"""Evaluation questions from XOR-Retrieve / XOR-Full / MKQA files, and their query tokens.

Questions are ``data.records.Question``s read by the one reader of each format
(``data.readers``). Queries are tokenised as the training tasks do (``clqa_jax.data.preprocessors``)
and the official code: ``"question: " + q`` with non-English questions first normalised
(``text_normalize.normalize``), SentencePiece ids without EOS, cut to 50 tokens, padded with 0.
MKQA question ids repeat across languages, so a question is keyed by ``Question.key``
(lang/id).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from clqa_jax.data import formats
from clqa_jax.data import readers
from clqa_jax.data import text_normalize
from clqa_jax.data.errors import DataFormatError
from clqa_jax.data.records import Question

TASKS = ("xor-retrieve", "xor-full", "mkqa")
QUERY_MAX_TOKENS = 50


def load_questions(path: str, task: str, langs: Sequence[str] | None = None,
                   limit: int | None = None) -> list[Question]:
  """Questions of an XOR JSONL (``xor-retrieve``/``xor-full``) or a raw MKQA JSONL (``mkqa``;
  unanswerable questions dropped, see ``eval.mkqa``).

  Args:
    path: the gold file.
    task: one of TASKS.
    langs: keep these languages (MKQA default: all of the file's).
    limit: keep the first ``limit`` questions (quick checks).
  """
  if task not in TASKS:
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")
  out: list[Question] = []
  if task == "mkqa":
    from clqa_jax.eval import mkqa
    examples = mkqa.read_mkqa(path)
    use = list(langs) if langs else mkqa.languages_of(examples)
    for questions in mkqa.convert_mkqa(examples, use).values():
      out.extend(questions)
  else:
    out = [q for q in readers.read_xor_jsonl(path) if not langs or q.lang in langs]
  keys = [q.key for q in out]
  if len(set(keys)) != len(keys):
    dup = next(k for k in keys if keys.count(k) > 1)
    raise DataFormatError(path, None, "id", f"question {dup!r} occurs more than once")
  if limit is not None:
    out = out[:limit]
  if not out:
    raise DataFormatError(path, None, None, "holds no questions to evaluate")
  return out


def gold_questions(questions: Sequence[Question]) -> list[Question]:
  """The questions with ``qid`` replaced by their unique ``key`` (for the metric functions)."""
  return [dataclasses.replace(q, qid=q.key) for q in questions]


def query_text(question: str, lang: str) -> str:
  """The query string the model sees."""
  q = question.strip()
  if lang != "en":
    q = text_normalize.normalize(q)
  return formats.question_text(q)


def tokenize_queries(sp, questions: Sequence[Question],
                     max_tokens: int = QUERY_MAX_TOKENS) -> np.ndarray:
  """int32 [N, max_tokens] query token ids (no EOS, pad 0) with a sentencepiece processor."""
  ids = sp.encode([query_text(q.question, q.lang) for q in questions], out_type=int)
  out = np.zeros((len(questions), max_tokens), np.int32)
  for i, seq in enumerate(ids):
    seq = seq[:max_tokens]
    out[i, :len(seq)] = seq
  return out


def decode_answers(sp, tokens: np.ndarray, eos_id: int = 1, pad_id: int = 0) -> list[str]:
  """Answer strings of generated tokens [N, T] (cut at the first EOS).

  Ids past the SentencePiece model are dropped: the embedding table is padded beyond the
  vocabulary (mT5: 250112 rows for 250100 pieces), and those rows decode to nothing.
  """
  out = []
  num_pieces = sp.vocab_size()
  for row in np.asarray(tokens):
    ids = []
    for t in row.tolist():
      if t == eos_id:
        break
      if t != pad_id and t < num_pieces:
        ids.append(t)
    out.append(sp.decode(ids))
  return out
