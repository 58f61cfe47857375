"""The capstone's Algorithm 1: make monolingual (question, passage) pairs cross-lingual.

A pair whose question language L_q differs from its passage language L_p is kept as it is. A
pair with L_q == L_p has, with probability ``translate_probability``, its question replaced by
a translation into L', drawn uniformly from the corpus languages other than L_p (the spec's
reading of the source's "50%": an independent draw per pair and epoch). The translations come
from a ``translation.Translator`` (dictionary, http or seq2seq backend); the drawing
is separate (``plan_targets``) so that one backend call serves every pair of a language pair.
"""
from __future__ import annotations

import collections
from typing import Sequence

import numpy as np

from clqa_jax.synth import translation


TranslationBackend = translation.Translator


def plan_targets(question_langs: Sequence[str], passage_langs: Sequence[str],
                 corpus_langs: Sequence[str], rng: np.random.Generator,
                 translate_probability: float = 0.5) -> list[str | None]:
  """Per pair: the language to translate its question into, or None to keep it."""
  if not 0.0 <= translate_probability <= 1.0:
    raise ValueError(f"translate_probability must lie in [0, 1], got {translate_probability}")
  if len(question_langs) != len(passage_langs):
    raise ValueError(f"{len(question_langs)} question languages for {len(passage_langs)} "
                     "passage languages")
  targets: list[str | None] = []
  for lq, lp in zip(question_langs, passage_langs):
    others = [lang for lang in corpus_langs if lang != lp]
    if lq != lp or rng.random() >= translate_probability:
      targets.append(None)
      continue
    if not others:
      raise ValueError(f"no corpus language other than {lp!r} to translate into "
                       f"(corpus languages {list(corpus_langs)})")
    targets.append(others[rng.integers(len(others))])
  return targets


def translate_questions(pairs: list[dict], targets: Sequence[str | None],
                        backend: TranslationBackend) -> list[dict]:
  """The pairs with each planned question translated (``question_lang`` updated, the source
  kept in ``original_question``); one backend call per (source, target) language pair. A
  translation that comes back empty keeps the original pair (counted by the caller)."""
  groups: dict[tuple[str, str], list[int]] = collections.defaultdict(list)
  for i, target in enumerate(targets):
    if target is not None:
      groups[(pairs[i]["question_lang"], target)].append(i)
  out = list(pairs)
  for (source, target), rows in sorted(groups.items()):
    texts = backend.translate([pairs[i]["question"] for i in rows], source, target)
    if len(texts) != len(rows):
      raise ValueError(f"translation backend {backend.name!r} returned {len(texts)} texts for "
                       f"{len(rows)} questions ({source}->{target})")
    for i, text in zip(rows, texts):
      if text.strip():
        out[i] = {**pairs[i], "question": text, "question_lang": target,
                  "original_question": pairs[i]["question"]}
  return out
