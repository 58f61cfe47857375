"""MKQA: per-language questions from the raw release, their XOR-format files, and F1 / EM / BLEU.

The raw release (``mkqa.jsonl[.gz]``) is read by the one MKQA reader,
``data.readers.read_mkqa_jsonl``; each language's gold answers are the official evaluator's
(``data.records.MkqaExample``: every answer's text, null -> "" = No Answer, plus its aliases, as
a set; unanswerable iff that set is {""}). ``convert_mkqa`` keeps, per language, the answerable
questions (``Question.answers`` = the gold set); an unanswerable question is dropped, unless
``keep_unanswerable``: it is then kept with the answers ``["No Answer"]``, which both our scorer
and the official XOR-Full script skip. (CLASS's ``convert_mkqa_to_xorqa.py`` writes ``"NoAns"``,
which the official scorer would then score as a literal answer; our scorer also skips
``"NoAns"`` so files from that converter are read correctly.) ``write_converted`` writes the
XOR-format ``{"id", "question", "answers", "lang", "type"}`` files of that converter, ``type``
being the first answer's type. Ids are the ``example_id`` as a string.

Evaluation is ``eval_mkqa_all.py``'s: the XOR-Full scoring (``xor_full.score_answer``: MeCab for
Japanese, character BLEU) per language, macro over the languages evaluated.
``mia_segmentation=True`` also segments zh_cn / zh_hk / zh_tw / th / km (see ``segment``).
"""
from __future__ import annotations

import dataclasses
import json
from typing import Mapping, Sequence

from clqa_jax import fileio
from clqa_jax.data import formats
from clqa_jax.data import readers
from clqa_jax.data.errors import DataFormatError
from clqa_jax.data.records import MkqaExample
from clqa_jax.data.records import Question
from clqa_jax.eval import inputs
from clqa_jax.eval import table
from clqa_jax.eval import xor_full

MKQA_LANGS = formats.MKQA_EVAL_ORDER
MKQA_SKIP_MARKERS = ("No Answer", "NoAns")
UNANSWERABLE_MARKER = "No Answer"


def read_mkqa(path: str) -> list[MkqaExample]:
  """The records of a raw MKQA JSONL (``data.readers.read_mkqa_jsonl``), at least one."""
  examples = list(readers.read_mkqa_jsonl(path))
  if not examples:
    raise DataFormatError(path, None, None, "holds no MKQA records")
  return examples


def languages_of(examples: Sequence[MkqaExample]) -> list[str]:
  """The languages of the file (those of its first record's answers, as the converter takes)."""
  return list(examples[0].answers)


def convert_mkqa(examples: Sequence[MkqaExample], langs: Sequence[str],
                 keep_unanswerable: bool = False) -> dict[str, list[Question]]:
  """{lang: [questions]} for the requested languages (file order)."""
  converted: dict[str, list[Question]] = {lang: [] for lang in langs}
  for example in examples:
    for lang in example.queries:
      if lang not in converted:
        continue
      question = example.to_question(lang)
      if question.answers:
        converted[lang].append(question)
      elif keep_unanswerable:
        converted[lang].append(dataclasses.replace(question, answers=(UNANSWERABLE_MARKER,)))
  return converted


def xor_record(question: Question) -> dict:
  """The XOR-format record of ``convert_mkqa_to_xorqa.py`` (``type``: the first answer's)."""
  return {"id": question.qid, "question": question.question, "answers": list(question.answers),
          "lang": question.lang, "type": question.answer_types[0]}


def write_converted(converted: Mapping[str, list[Question]], output_dir: str,
                    overwrite: bool = False) -> list[str]:
  """Writes ``input_{lang}.jsonl`` per language (atomically); returns the paths."""
  unknown = [lang for lang in converted if lang not in formats.MKQA_LANGUAGES]
  if unknown:  # a language names a file: nothing but a known code may reach the path
    raise ValueError(f"not MKQA language codes: {unknown}")
  fileio.makedirs(output_dir)
  paths = []
  for lang, questions in converted.items():
    path = fileio.join(output_dir, f"input_{lang}.jsonl")
    if fileio.exists(path) and not overwrite:
      raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    fileio.atomic_write(path, "".join(json.dumps(xor_record(q), ensure_ascii=False) + "\n"
                                      for q in questions))
    paths.append(path)
  return paths


def evaluate_mkqa(converted: Mapping[str, list[Question]],
                  predictions: Mapping[str, Mapping[str, str]],
                  mia_segmentation: bool = False) -> table.LanguageTable:
  """F1 / EM / BLEU per language; ``predictions`` is {lang: {id: answer}}."""
  per_lang = []
  for lang, questions in converted.items():
    if not questions:
      continue
    per_lang.append(xor_full.evaluate_answers("mkqa", questions, predictions.get(lang, {}),
                                              MKQA_SKIP_MARKERS, mia_segmentation))
  scores = {lang: t.scores[lang] for t in per_lang for lang in t.scores}
  counts = {lang: t.counts[lang] for t in per_lang for lang in t.counts}
  metrics = xor_full.METRICS
  macro = {m: (sum(scores[lang][m] / 100 for lang in scores) / len(scores) * 100
               if scores else 0.0) for m in metrics}
  info = dict(per_lang[0].info) if per_lang else {}
  for key in ("skipped_unanswerable", "missing_predictions_scored_0",
              "predictions_with_unknown_id"):
    info[key] = sum(t.info[key] for t in per_lang)
  info["languages_without_predictions"] = [lang for lang in scores if lang not in predictions]
  return table.LanguageTable("mkqa", metrics, scores, counts, macro, info)


def select_languages(requested: Sequence[str] | None,
                     predictions: Mapping[str, Mapping[str, str]]) -> list[str]:
  """The languages to score: those requested (all of them, predicted or not), else the
  predicted ones, in ``MKQA_LANGS`` order first."""
  if requested:
    return list(dict.fromkeys(requested))
  return ([lang for lang in MKQA_LANGS if lang in predictions]
          + [lang for lang in predictions if lang not in MKQA_LANGS])


def read_mkqa_predictions(path: str, langs: Sequence[str]) -> dict[str, dict[str, str]]:
  """Predictions as {lang: {id: answer}}, from any of:

  * a JSON file {lang: {id: answer}};
  * a JSON file {id: answer} when exactly one language is evaluated;
  * a directory of ``{lang}.json`` files, each {id: answer}.
  """
  if fileio.isdir(path):
    predictions = {}
    for lang in langs:
      file = fileio.join(path, f"{lang}.json")
      if fileio.exists(file):
        predictions[lang] = inputs.read_answer_predictions(file)
    if not predictions:
      raise DataFormatError(path, None, None,
                                  f"holds none of {', '.join(f'{l}.json' for l in langs)}")
    return predictions
  data = inputs.read_json(path)
  if not isinstance(data, dict):
    raise DataFormatError(path, None, None, "must be a JSON object")
  if data and all(isinstance(v, dict) and "answer" not in v for v in data.values()):
    return {lang: inputs.answer_map(answers, path, f"{lang}.") for lang, answers in data.items()}
  if len(langs) != 1:
    raise DataFormatError(
        path, None, None, "is a flat {id: answer} map: evaluate one language (--lang XX) "
        "or give {lang: {id: answer}}")
  return {langs[0]: inputs.answer_map(data, path)}
