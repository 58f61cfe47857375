"""XOR-EnglishSpan F1 / EM with the semantics of the official ``eval_xor_engspan.py``.

SQuAD v1.1 scoring of English answers: ``normalize_squad_answer`` (articles removed), whitespace
token F1 and EM, each the max over the gold answers; every gold question counts and a missing
prediction scores 0 (there is no "No Answer" skip here). Only the seven XOR-TyDi languages are
scored, in the official order; questions in other languages are ignored and counted in ``info``.
Macro = unweighted mean over those languages that have questions.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from clqa_jax.data import formats
from clqa_jax.data.records import Question
from clqa_jax.eval import normalize
from clqa_jax.eval import table

XOR_LANGS = formats.XOR_LANGUAGES
METRICS = ("F1", "EM")


def evaluate_xor_engspan(gold: Sequence[Question],
                         predictions: Mapping[str, str]) -> table.LanguageTable:
  norm = normalize.normalize_squad_answer
  scores, counts = {}, {}
  missing = 0
  for lang in XOR_LANGS:
    f1 = em = 0.0
    total = 0
    for question in gold:
      if question.lang != lang:
        continue
      total += 1
      if question.qid not in predictions:
        missing += 1
        continue
      answers = question.answers
      prediction = predictions[question.qid]
      em += normalize.max_exact_match(prediction, answers, norm)
      f1 += normalize.max_f1(prediction, answers, norm)
    if total:
      scores[lang] = {"F1": 100.0 * f1 / total, "EM": 100.0 * em / total}
      counts[lang] = total
  macro = {m: (sum(scores[lang][m] for lang in scores) / len(scores) if scores else 0.0)
           for m in METRICS}
  info = {"missing_predictions_scored_0": missing,
          "ignored_other_languages": sum(q.lang not in XOR_LANGS for q in gold)}
  return table.LanguageTable("xor-engspan", METRICS, scores, counts, macro, info)
