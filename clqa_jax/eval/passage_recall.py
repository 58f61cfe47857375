"""Passage recall R@k: the share of questions with a gold passage among the first k retrieved.

R@kt (``xor_retrieve``) asks whether an answer string occurs in the first k*1000 tokens; on a
small corpus those tokens cover much of it, so R@kt says little about the ranking. Passage recall
asks whether one of the question's gold passages (by id) is ranked in the top k. A question file
names its gold passages by article title (the optional ``gold_titles`` field of a question line,
written by the mini corpus generator); ``gold_passage_ids`` turns titles into the ids of every
passage of those articles in a passage TSV.
Per-language recall = hits / counted x 100; the macro average is the unweighted mean over the
languages with at least one counted question. Questions without gold passages are not counted
(``info`` reports how many).

``info["distinct_top1_passages"]`` counts the different passages ranked first over the counted
questions. A retriever whose vectors have collapsed ranks the same few passages first for every
question; where a few articles are gold for many questions (a country's article answers its
capital and its cities' questions), such a retriever still scores a fair R@5, and this count is
what shows it.
"""
from __future__ import annotations

import json
import statistics
from typing import Iterable, Mapping, Sequence

from clqa_jax import fileio
from clqa_jax.data.errors import DataFormatError
from clqa_jax.data.records import Passage
from clqa_jax.eval import table
from clqa_jax.eval.xor_retrieve import RetrievalPrediction

DEFAULT_KS = (1, 5)
GOLD_TITLES_FIELD = "gold_titles"


def passage_hits(ranked_pids: Sequence[str], gold_pids: frozenset[str],
                 ks: Sequence[int] = DEFAULT_KS) -> dict[int, bool]:
  """{k: a gold passage id is among the first k of ``ranked_pids``}."""
  return {k: any(pid in gold_pids for pid in ranked_pids[:k]) for k in ks}


def evaluate_passage_recall(predictions: Sequence[RetrievalPrediction],
                            gold_pids: Mapping[str, frozenset[str]],
                            ks: Sequence[int] = DEFAULT_KS,
                            task: str = "passage-recall") -> table.LanguageTable:
  """R@k per language (x100) and their macro average.

  Args:
    predictions: ranked passages per question (``passage_ids`` and ``lang`` required).
    gold_pids: {qid: its gold passage ids}; questions absent or with none are not counted.
    ks: evaluate R@{k}.
    task: the table's name.
  """
  ks = tuple(ks)
  counts: dict[str, int] = {}
  hits: dict[str, dict[int, int]] = {}
  without_gold = 0
  first_ranked: set[str] = set()
  for pred in predictions:
    gold = gold_pids.get(pred.qid)
    if not gold:
      without_gold += 1
      continue
    if pred.passage_ids is None or pred.lang is None:
      raise ValueError(f"prediction {pred.qid!r}: passage recall needs its passage ids and lang")
    counts[pred.lang] = counts.get(pred.lang, 0) + 1
    first_ranked.update(pred.passage_ids[:1])
    lang_hits = hits.setdefault(pred.lang, {k: 0 for k in ks})
    for k, hit in passage_hits(pred.passage_ids, gold, ks).items():
      lang_hits[k] += int(hit)
  metrics = tuple(f"R@{k}" for k in ks)
  scores = {lang: {f"R@{k}": hits[lang][k] / counts[lang] * 100 for k in ks} for lang in counts}
  macro = {m: statistics.mean(s[m] for s in scores.values()) if scores else 0.0 for m in metrics}
  return table.LanguageTable(task, metrics, scores, counts, macro,
                             {"predictions_without_gold_passages": without_gold,
                              "distinct_top1_passages": len(first_ranked)})


def gold_passage_ids(titles: Mapping[str, Sequence[str]],
                     passages: Iterable[Passage]) -> dict[str, frozenset[str]]:
  """{qid: ids of the passages whose title is one of the question's gold titles}."""
  by_title: dict[str, set[str]] = {}
  for p in passages:
    by_title.setdefault(p.title, set()).add(p.pid)
  return {qid: frozenset(pid for t in ts for pid in by_title.get(t, ())) for qid, ts in
          titles.items()}


def read_gold_titles(path: str) -> dict[str, tuple[str, ...]]:
  """{id: gold_titles} of the lines of a question JSONL that have ``gold_titles``."""
  out: dict[str, tuple[str, ...]] = {}
  with fileio.open(path, "r") as f:
    for line_number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        obj = json.loads(line)
      except json.JSONDecodeError as e:
        raise DataFormatError(path, line_number, None, f"invalid JSON: {e}") from e
      titles = obj.get(GOLD_TITLES_FIELD) if isinstance(obj, dict) else None
      if titles is None:
        continue
      if not isinstance(titles, list) or not all(isinstance(t, str) for t in titles):
        raise DataFormatError(path, line_number, GOLD_TITLES_FIELD, "must be a list of titles")
      out[str(obj.get("id"))] = tuple(titles)
  return out
