"""Per-language result tables as JSON (atomic), markdown, plain text and a PNG bar chart."""
from __future__ import annotations

import json
from typing import Any, Sequence

from clqa_jax import fileio
from clqa_jax.eval import table as table_lib

LanguageTable = table_lib.LanguageTable


def atomic_write_bytes(path: str, data: bytes, overwrite: bool = False) -> None:
  """``fileio.atomic_write`` that refuses to replace a file unless overwrite (--overwrite)."""
  if fileio.exists(path) and not overwrite:
    raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
  fileio.atomic_write(path, data)


def to_json_payload(tables: Sequence[LanguageTable]) -> dict[str, Any]:
  """{task: table dict}; the tables' task names must be distinct."""
  tasks = [t.task for t in tables]
  if len(set(tasks)) != len(tasks):
    raise ValueError(f"tables must have distinct task names, got {tasks}")
  return {t.task: t.to_dict() for t in tables}


def write_json(path: str, tables: Sequence[LanguageTable], overwrite: bool = False) -> None:
  """{task: table dict} as indented UTF-8 JSON, written atomically."""
  payload = json.dumps(to_json_payload(tables), ensure_ascii=False, indent=2) + "\n"
  atomic_write_bytes(path, payload.encode("utf-8"), overwrite)


def read_json(path: str) -> list[LanguageTable]:
  return [LanguageTable.from_dict(d) for d in fileio.read_json(path).values()]


def _rows(table: LanguageTable, digits: int) -> tuple[list[str], list[list[str]]]:
  header = ["lang", "n", *table.metrics]
  rows = [[lang, str(table.counts[lang]),
           *(f"{table.scores[lang][m]:.{digits}f}" for m in table.metrics)]
          for lang in table.langs]
  rows.append(["macro", str(sum(table.counts.values())),
               *(f"{table.macro[m]:.{digits}f}" for m in table.metrics)])
  return header, rows


def format_text(table: LanguageTable, digits: int = 2) -> str:
  """An aligned plain-text table (one row per language, then the macro average)."""
  header, rows = _rows(table, digits)
  widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
  lines = [f"{table.task}"]
  for row in [header, *rows]:
    lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                           for i, (c, w) in enumerate(zip(row, widths))))
  return "\n".join(lines)


def format_markdown(table: LanguageTable, digits: int = 2) -> str:
  header, rows = _rows(table, digits)
  rows[-1] = [f"**{c}**" for c in rows[-1]]
  lines = [f"### {table.task}", "", "| " + " | ".join(header) + " |",
           "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
  lines += ["| " + " | ".join(row) + " |" for row in rows]
  notes = [f"- {k}: {v}" for k, v in table.info.items()]
  return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def write_markdown(path: str, tables: Sequence[LanguageTable], overwrite: bool = False) -> None:
  text = "\n".join(format_markdown(t) for t in tables)
  atomic_write_bytes(path, text.encode("utf-8"), overwrite)


def chart_title(table: LanguageTable) -> str:
  """``<task>: <checkpoint> step <N>`` from ``info["checkpoint"]`` (the export's source record:
  its run directory, else its path, and step), or the task alone when the table has none."""
  source = table.info.get("checkpoint") or {}
  where = source.get("run_dir") or source.get("path")
  if not where:
    return table.task
  step = source.get("step")
  return f"{table.task}: {where}" + (f" step {step}" if step is not None else "")


def bar_chart_figure(table: LanguageTable):
  """Grouped bars: one group per language (and the macro average), one bar per metric, each
  bar's value printed on it; the legend outside the axes (right), the title ``chart_title``.
  Returns a matplotlib Figure (Agg canvas, not registered with pyplot)."""
  import numpy as np
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  groups = [*table.langs, "macro"]
  values = [[table.scores[lang][m] for lang in table.langs] + [table.macro[m]]
            for m in table.metrics]
  x = np.arange(len(groups))
  width = 0.8 / max(1, len(table.metrics))
  fig = Figure(figsize=(max(6.0, 0.6 * len(groups) * len(table.metrics)) + 1.5, 4.5),
               layout="constrained")
  FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  for i, (metric, vals) in enumerate(zip(table.metrics, values)):
    bars = ax.bar(x + (i - (len(table.metrics) - 1) / 2) * width, vals, width, label=metric)
    ax.bar_label(bars, fmt="%.1f", padding=1, fontsize=7)
  ax.set_xticks(x, groups)
  ax.set_ylabel("score (x100)")
  ax.set_ylim(0, 108)  # room for the value of a bar at 100
  ax.set_title(chart_title(table), fontsize=10, wrap=True)
  fig.legend(loc="outside right upper")
  return fig


def write_bar_chart(path: str, table: LanguageTable, overwrite: bool = False) -> None:
  """``bar_chart_figure`` as a PNG at ``path``."""
  import io

  buffer = io.BytesIO()
  bar_chart_figure(table).savefig(buffer, format="png", dpi=100)
  atomic_write_bytes(path, buffer.getvalue(), overwrite)


def write_reports(prefix: str, tables: Sequence[LanguageTable], overwrite: bool = False
                  ) -> list[str]:
  """``PREFIX.json``, ``PREFIX.md`` and ``PREFIX.<task>.png`` per table; returns the paths."""
  paths = [f"{prefix}.json", f"{prefix}.md"]
  write_json(paths[0], tables, overwrite)
  write_markdown(paths[1], tables, overwrite)
  for table in tables:
    png = f"{prefix}.{table.task}.png"
    write_bar_chart(png, table, overwrite)
    paths.append(png)
  return paths
