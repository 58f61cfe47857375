"""Records of ``clqa synth translate`` (question records with their per-language
``translations``) as the flat features the capstone's Algorithm 1 preprocessor reads.

A record: {"id" | "qid", "lang", "question", "answers", ["source_pid"], ["passage_lang" |
"answer_lang"], "translations": {lang: {"question": str, ["answers": [str]]}}}. The passage
language L_p is ``passage_lang``, else ``answer_lang`` (a stage-2 record's answer comes from its
source passage), else an error naming file and line. Translated answers are flattened:
``translation_answers`` holds every language's answers in ``translation_langs`` order,
``translation_answer_counts`` how many each has (0 when the answers were not translated).
"""
from __future__ import annotations

import json
from typing import Any, Iterator

from clqa_jax import fileio
from clqa_jax.data.errors import SkipStats


def _feature_dict(record: dict[str, Any], where: str) -> dict[str, Any]:
  for field in ("lang", "question", "answers", "translations"):
    if field not in record:
      raise ValueError(f"{where}: no field {field!r} (a clqa synth translate record)")
  passage_lang = record.get("passage_lang", record.get("answer_lang"))
  if not passage_lang:
    raise ValueError(f"{where}: no 'passage_lang' or 'answer_lang' field: Algorithm 1 needs "
                     "the passage's language")
  langs, questions, answers, counts = [], [], [], []
  for lang, fields in sorted(record["translations"].items()):
    if "question" not in fields:
      raise ValueError(f"{where}: translations[{lang!r}] has no 'question'")
    langs.append(lang)
    questions.append(fields["question"])
    answers += list(fields.get("answers", []))
    counts.append(len(fields.get("answers", [])))
  return {"qid": str(record.get("id", record.get("qid", ""))), "lang": record["lang"],
          "question": record["question"], "answers": list(record["answers"]),
          "source_pid": record.get("source_pid", ""), "passage_lang": passage_lang,
          "translation_langs": langs, "translation_questions": questions,
          "translation_answers": answers, "translation_answer_counts": counts}


def read_translated_jsonl(path: str, skip_errors: bool = False,
                          stats: SkipStats | None = None) -> Iterator[dict[str, Any]]:
  """The feature dicts of one translated JSONL file (see the module docstring)."""
  del stats
  if skip_errors:
    raise ValueError("translated records are never skipped: the translate stage wrote them, so "
                     "a malformed one is an error")
  with fileio.open(path) as f:
    for number, line in enumerate(f, 1):
      if line.strip():
        try:
          record = json.loads(line)
        except json.JSONDecodeError as e:
          raise ValueError(f"{path}:{number}: not JSON ({e})") from None
        yield _feature_dict(record, f"{path}:{number}")
