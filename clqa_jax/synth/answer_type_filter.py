"""ZusammenQA's answer-type filter for generated (question, answer) pairs.

A pair is kept when its first matching rule, tried in order on the lower-cased strings, holds:

  number     the answer parses as a float ("1928", "3.5")
  who        the question's first space-separated token contains "who"
  how_many   "how many" lies within the question's first 8 characters
  has_digit  the answer contains a digit ("the 1920s"): the paper's rule, commented out (at
             this place in the order) in the official filter, so only ``mode="paper"`` applies it
  date       ``dateutil.parser.parse(answer, fuzzy=False)`` succeeds ("November 18", "May")

Anything else is dropped. ``mode="code"`` reproduces the official filter (its figures), the
default ``mode="paper"`` the rules as the paper states them.
"""
from __future__ import annotations

import collections
from typing import Iterable, Iterator

from dateutil import parser as date_parser

MODES = ("paper", "code")
DROPPED = "dropped"


def _is_number(text: str) -> bool:
  try:
    float(text)
  except ValueError:
    return False
  return True


def _is_date(text: str) -> bool:
  try:
    date_parser.parse(text, fuzzy=False)
  except (ValueError, OverflowError):
    return False
  return True


def kept_by(question: str, answer: str, mode: str = "paper") -> str | None:
  """The name of the first rule that keeps the pair, or None when the pair is dropped."""
  if mode not in MODES:
    raise ValueError(f"answer-type filter mode {mode!r}: expected one of {MODES}")
  q, a = question.lower(), answer.lower()
  if _is_number(a):
    return "number"
  if "who" in q.split(" ")[0]:
    return "who"
  if "how many" in q[:8]:
    return "how_many"
  if mode == "paper" and any(c.isdigit() for c in a):
    return "has_digit"
  if a.strip() and _is_date(a):
    return "date"
  return None


def filter_pairs(pairs: Iterable[dict], mode: str = "paper",
                 counts: collections.Counter | None = None) -> Iterator[dict]:
  """Yields the kept pairs (``question``/``answer`` records) with their rule in ``"type"``;
  ``counts`` receives one count per rule and one for ``DROPPED``."""
  for pair in pairs:
    rule = kept_by(pair["question"], pair["answer"], mode)
    if counts is not None:
      counts[rule or DROPPED] += 1
    if rule is not None:
      yield {**pair, "type": rule}
