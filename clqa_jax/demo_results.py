"""The demo's result table: one row per model (untrained, the lexical baseline, each stage).

A row is ``{"stage", "retrieval": {lang | "macro": {R@2kt, R@5kt, R@1, R@5}}, "reader": {lang |
"macro": {F1, EM, BLEU}} | None, "distinct_first": int | None}`` (scores x100; distinct_first:
how many different passages are ranked first over the dev questions): retrieval on the English corpus
(XOR-Retrieve dev: R@kt of the answer strings, passage recall R@k of the gold article), reading
on the multilingual corpus (XOR-Full dev). ``<out>/results.json`` is ``{"rows": [...]}`` with the
untrained model first and the final model last; ``results.png`` charts the same rows.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

from clqa_jax import fileio
from clqa_jax.eval.table import LanguageTable

RETRIEVAL_METRICS = ("R@2kt", "R@5kt", "R@1", "R@5")
READER_METRICS = ("F1", "EM", "BLEU")
MACRO = "macro"


def _merge(tables: Sequence[LanguageTable], metrics: Sequence[str]) -> dict[str, dict[str, float]]:
  """{lang | "macro": {metric: score}} of ``metrics`` gathered from ``tables``."""
  merged: dict[str, dict[str, float]] = {}
  for t in tables:
    for metric in (m for m in metrics if m in t.metrics):
      for lang, scores in t.scores.items():
        merged.setdefault(lang, {})[metric] = float(scores[metric])
      merged.setdefault(MACRO, {})[metric] = float(t.macro[metric])
  for lang, scores in merged.items():
    missing = [m for m in metrics if m not in scores]
    if missing:
      raise ValueError(f"{lang}: no table has {missing} (tables: {[t.task for t in tables]})")
  return {**{k: v for k, v in merged.items() if k != MACRO}, MACRO: merged[MACRO]}


def stage_row(stage: str, retrieval: Sequence[LanguageTable],
              reader: LanguageTable | None) -> dict[str, Any]:
  """One row: R@kt and passage recall from ``retrieval``, F1/EM/BLEU from ``reader`` (None: a
  retrieval-only baseline), and passage recall's count of distinct first-ranked passages."""
  distinct = next((t.info["distinct_top1_passages"] for t in retrieval
                   if "distinct_top1_passages" in t.info), None)
  return {"stage": stage, "retrieval": _merge(retrieval, RETRIEVAL_METRICS),
          "reader": _merge([reader], READER_METRICS) if reader is not None else None,
          "distinct_first": distinct}


def _cell(value: float | None) -> str:
  return "-" if value is None else f"{value:.1f}"


def format_macro_table(rows: Sequence[dict[str, Any]], label: str = "stage",
                       extra_columns: Sequence[str] = ()) -> str:
  """Macro averages: one line per row, retrieval then reader metrics, then the rows' own
  ``extra_columns`` fields (text, "-" where a row has none). ``label`` heads the first column."""
  header = [label, *RETRIEVAL_METRICS, *READER_METRICS, *extra_columns]
  lines = [header]
  for row in rows:
    reader = row["reader"][MACRO] if row["reader"] else {}
    lines.append([row["stage"], *(_cell(row["retrieval"][MACRO][m]) for m in RETRIEVAL_METRICS),
                  *(_cell(reader.get(m)) for m in READER_METRICS),
                  *(str(row.get(c, "-")) for c in extra_columns)])
  return _align(lines)


def format_language_table(rows: Sequence[dict[str, Any]], group: str, metric: str) -> str:
  """One metric per language (columns) and row; rows without ``group`` are left out."""
  rows = [r for r in rows if r[group]]
  langs = [lang for lang in rows[0][group] if lang != MACRO] if rows else []
  lines = [[f"{metric} ({group})", *langs, MACRO]]
  for row in rows:
    lines.append([row["stage"], *(_cell(row[group].get(lang, {}).get(metric))
                                  for lang in [*langs, MACRO])])
  return _align(lines)


def _align(lines: list[list[str]]) -> str:
  widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
  return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(line, widths))) for line in lines)


def learning_failures(rows: Sequence[dict[str, Any]], min_r5_gain: float,
                      min_distinct_first: int = 0) -> list[str]:
  """Why the last row (the final model) does not show learning over the first (untrained):
  macro passage R@5 must gain at least ``min_r5_gain`` points, F1 be positive in every
  language, and the retriever rank at least ``min_distinct_first`` different passages first
  (fewer: it has collapsed, ranking the same passages first for every question, and its R@5 is
  the share of questions those passages happen to answer). Empty when it does."""
  first, last = rows[0], rows[-1]
  failures = []
  gain = last["retrieval"][MACRO]["R@5"] - first["retrieval"][MACRO]["R@5"]
  if gain < min_r5_gain:
    failures.append(f"macro R@5 of {last['stage']} gains {gain:.1f} points over "
                    f"{first['stage']} (needs {min_r5_gain:g})")
  distinct = last.get("distinct_first")
  if min_distinct_first > 0 and distinct is None:
    failures.append(f"{last['stage']} has no count of distinct first-ranked passages (no "
                    f"passage-recall table): the collapse check needs one")
  elif distinct is not None and distinct < min_distinct_first:
    failures.append(f"{last['stage']} ranks {distinct} different passages first over the dev "
                    f"questions (needs {min_distinct_first}): its retriever has collapsed")
  zero = [lang for lang, s in (last["reader"] or {}).items() if lang != MACRO and s["F1"] <= 0]
  if last["reader"] is None or zero:
    failures.append(f"F1 of {last['stage']} is 0 in {zero or 'every language'}")
  return failures


def write_results(path: str, rows: Sequence[dict[str, Any]]) -> None:
  fileio.atomic_write(path, json.dumps({"rows": list(rows)}, indent=1, ensure_ascii=False))


def write_chart(path: str, rows: Sequence[dict[str, Any]],
                title: str = "clqa demo: mini XOR-TyDi dev, per stage") -> None:
  """Grouped bars of the macro scores: one group per metric, one bar per row."""
  import io

  import matplotlib
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt
  import numpy as np

  metrics = [*RETRIEVAL_METRICS, *READER_METRICS]
  x = np.arange(len(metrics))
  width = 0.8 / len(rows)
  fig, ax = plt.subplots(figsize=(10.0, 4.0))
  try:
    for i, row in enumerate(rows):
      macro = {**row["retrieval"][MACRO], **(row["reader"][MACRO] if row["reader"] else {})}
      ax.bar(x + (i - (len(rows) - 1) / 2) * width, [macro.get(m, 0.0) for m in metrics], width,
             label=row["stage"])
    ax.set_xticks(x, [f"{m}\n({'retrieval' if m in RETRIEVAL_METRICS else 'reader'})"
                      for m in metrics])
    ax.set_ylabel("macro score (x100)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
  finally:
    plt.close(fig)
  fileio.atomic_write(path, buffer.getvalue())
