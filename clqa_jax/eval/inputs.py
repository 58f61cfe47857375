"""Gold and prediction files of the metrics; malformed input raises ``DataFormatError``.

Gold files are XOR-TyDi JSONL and go through the one reader, ``data.readers.read_xor_jsonl``;
prediction files are the official JSON layouts, read here.
"""
from __future__ import annotations

import json
from typing import Any

from clqa_jax import fileio
from clqa_jax.data import readers
from clqa_jax.data.errors import DataFormatError
from clqa_jax.data.records import Question


def read_json(path: str) -> Any:
  try:
    return fileio.read_json(path)
  except OSError as e:
    raise DataFormatError(path, None, None, f"cannot open: {e.strerror or e}") from e
  except json.JSONDecodeError as e:
    raise DataFormatError(path, e.lineno, None, f"not valid JSON ({e.msg})") from e


def qid_string(value: Any, path: str, line: int | None, field: str = "id") -> str:
  """Question ids as strings (JSON object keys are strings; MKQA example ids are integers)."""
  if isinstance(value, bool) or not isinstance(value, (str, int)):
    raise DataFormatError(path, line, field, f"must be a string or integer, got {value!r}")
  return str(value)


def read_gold(path: str) -> list[Question]:
  """An XOR-style gold JSONL: one {"id", "lang", "answers", ...} object per line (the question
  text is optional here: the metrics do not use it)."""
  questions = list(readers.read_xor_jsonl(path, require_question=False))
  if not questions:
    raise DataFormatError(path, None, None, "holds no questions")
  return questions


def read_answer_predictions(path: str) -> dict[str, str]:
  """{id: answer} (an answer may also be {"answer": ...}, as eval_xor_engspan.py accepts)."""
  data = read_json(path)
  if not isinstance(data, dict):
    raise DataFormatError(path, None, None, "must be a JSON object {question id: answer}")
  return answer_map(data, path)


def answer_map(data: dict[str, Any], path: str, where: str = "") -> dict[str, str]:
  predictions = {}
  for qid, value in data.items():
    if isinstance(value, dict) and "answer" in value:
      value = value["answer"]
    if not isinstance(value, str):
      raise DataFormatError(path, None, f"{where}{qid}", f"answer must be a string, got {value!r}")
    predictions[str(qid)] = value
  return predictions
