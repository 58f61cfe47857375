"""The demo's result table (demo_results): rows from evaluation tables, the learning check, the
printed tables, results.json and the chart."""
import json

import pytest

from clqa_jax import demo_results
from clqa_jax.eval.table import LanguageTable


def _table(task, metrics, scores):
  langs = list(scores)
  return LanguageTable(task, tuple(metrics), {l: dict(zip(metrics, scores[l])) for l in langs},
                       {l: 3 for l in langs},
                       {m: sum(scores[l][i] for l in langs) / len(langs)
                        for i, m in enumerate(metrics)})


def _row(stage, r5, f1):
  retrieval = [_table("xor-retrieve", ("R@2kt", "R@5kt", "R@100kt"),
                      {"ja": (50.0, 60.0, 90.0), "ko": (40.0, 70.0, 90.0)}),
               _table("xor-retrieve-passages", ("R@1", "R@5"), {"ja": (5.0, r5[0]),
                                                                 "ko": (5.0, r5[1])})]
  reader = None if f1 is None else _table("xor-full", ("F1", "EM", "BLEU"),
                                          {"ja": (f1[0], 0.0, 1.0), "ko": (f1[1], 0.0, 1.0)})
  return demo_results.stage_row(stage, retrieval, reader)


def test_a_row_gathers_retrieval_and_reader_metrics_per_language_and_macro():
  row = _row("stage1", (10.0, 30.0), (4.0, 8.0))
  assert row["stage"] == "stage1"
  assert row["retrieval"] == {"ja": {"R@2kt": 50.0, "R@5kt": 60.0, "R@1": 5.0, "R@5": 10.0},
                              "ko": {"R@2kt": 40.0, "R@5kt": 70.0, "R@1": 5.0, "R@5": 30.0},
                              "macro": {"R@2kt": 45.0, "R@5kt": 65.0, "R@1": 5.0, "R@5": 20.0}}
  assert row["reader"]["macro"] == {"F1": 6.0, "EM": 0.0, "BLEU": 1.0}
  assert _row("bm25", (1.0, 1.0), None)["reader"] is None
  with pytest.raises(ValueError, match="R@1"):
    demo_results.stage_row("x", [_table("xor-retrieve", ("R@2kt", "R@5kt"), {"ja": (1.0, 2.0)})],
                           None)


def test_a_row_carries_the_distinct_first_ranked_passages_of_passage_recall():
  assert _row("untrained", (5.0, 5.0), None)["distinct_first"] is None
  passages = _table("xor-retrieve-passages", ("R@1", "R@5"), {"ja": (5.0, 6.0)})
  passages.info["distinct_top1_passages"] = 7
  kt = _table("xor-retrieve", ("R@2kt", "R@5kt"), {"ja": (50.0, 60.0)})
  assert demo_results.stage_row("x", [kt, passages], None)["distinct_first"] == 7


def test_learning_check_needs_the_r5_gain_and_f1_in_every_language():
  untrained = _row("untrained", (5.0, 5.0), (0.0, 0.0))
  assert demo_results.learning_failures([untrained, _row("final", (30.0, 26.0), (1.0, 2.0))],
                                        20.0) == []
  failures = demo_results.learning_failures(
      [untrained, _row("final", (20.0, 10.0), (0.0, 2.0))], 20.0)
  assert len(failures) == 2
  assert "gains 10.0 points" in failures[0] and "['ja']" in failures[1]
  # A collapsed retriever (one passage first for every question) fails however high its R@5.
  collapsed = {**_row("final", (30.0, 26.0), (1.0, 2.0)), "distinct_first": 1}
  failures = demo_results.learning_failures([untrained, collapsed], 20.0, min_distinct_first=5)
  assert len(failures) == 1 and "ranks 1 different passages first" in failures[0]
  assert demo_results.learning_failures([untrained, {**collapsed, "distinct_first": 5}], 20.0,
                                        min_distinct_first=5) == []
  # Without a count the collapse check fails instead of passing unchecked.
  failures = demo_results.learning_failures(
      [untrained, {**collapsed, "distinct_first": None}], 20.0, min_distinct_first=5)
  assert len(failures) == 1 and "no count of distinct first-ranked passages" in failures[0]


def test_tables_json_and_chart(tmp_path):
  rows = [_row("untrained", (5.0, 5.0), (0.0, 0.0)), _row("bm25", (1.0, 3.0), None),
          _row("finetune", (40.0, 30.0), (10.0, 20.0))]
  text = demo_results.format_macro_table(rows)
  assert text.splitlines()[0].split() == ["stage", "R@2kt", "R@5kt", "R@1", "R@5", "F1", "EM",
                                          "BLEU"]
  assert text.splitlines()[2].split()[-3:] == ["-", "-", "-"]
  per_lang = demo_results.format_language_table(rows, "reader", "F1").splitlines()
  assert per_lang[0].split()[-3:] == ["ja", "ko", "macro"]
  assert per_lang[-1].split() == ["finetune", "10.0", "20.0", "15.0"] and len(per_lang) == 3
  demo_results.write_results(str(tmp_path / "results.json"), rows)
  assert json.loads((tmp_path / "results.json").read_text())["rows"] == rows
  demo_results.write_chart(str(tmp_path / "results.png"), rows)
  assert (tmp_path / "results.png").read_bytes()[:4] == b"\x89PNG"
