"""Writing predictions in the official scripts' input formats (so they can be run on our output).

* XOR-Retrieve (``eval_xor_retrieve.py``): a JSON list of ``{"id", "lang", "ctxs"}`` where
  ``ctxs`` is the ranked list of passage *texts* (the script word-tokenizes each element, so they
  must be strings). ``pids`` (ranked passage ids: ``passage_ids[qid]``, else the prediction's own
  ``passage_ids``) is added when known; the script ignores it.
* XOR-Full / XOR-EnglishSpan / MKQA: a JSON object ``{id: answer}``.
"""
from __future__ import annotations

import json
from typing import Mapping, Sequence

from clqa_jax.eval import report
from clqa_jax.eval import xor_retrieve


def write_retrieve_predictions(path: str, predictions: Sequence[xor_retrieve.RetrievalPrediction],
                               passage_ids: Mapping[str, Sequence[str]] | None = None,
                               overwrite: bool = False) -> None:
  rows = []
  for pred in predictions:
    if pred.lang is None:
      raise ValueError(f"prediction {pred.qid!r} has no language; the official format needs one")
    row = {"id": pred.qid, "lang": pred.lang, "ctxs": list(pred.passage_texts)}
    pids = passage_ids[pred.qid] if passage_ids is not None else pred.passage_ids
    if pids is not None:
      row["pids"] = [str(pid) for pid in pids]
    rows.append(row)
  report.atomic_write_bytes(path, json.dumps(rows, ensure_ascii=False).encode("utf-8"), overwrite)


def write_answer_predictions(path: str, answers: Mapping[str, str],
                             overwrite: bool = False) -> None:
  data = json.dumps({str(k): v for k, v in answers.items()}, ensure_ascii=False, indent=1)
  report.atomic_write_bytes(path, data.encode("utf-8"), overwrite)
