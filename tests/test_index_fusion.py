"""Rank fusion (EnsembleRank rank averaging, RRF) against hand-computed ranks, and ``clqa fuse``."""
import json
from fractions import Fraction

import pytest

from clqa_jax.cli import main as cli_main
from clqa_jax.data.errors import DataFormatError
from clqa_jax.eval import xor_retrieve
from clqa_jax.index import fusion

# Three runs of one question; ids "10", "2", "9", "x", "11".
RUN_A = ["9", "10", "2"]
RUN_B = ["10", "x"]
RUN_C = ["2", "9", "10", "11"]


def test_rank_average_by_hand_with_missing_documents_and_ties():
  # Mean 1-based rank; missing = len(list) + 1 (A: 4, B: 3, C: 5).
  #   "10": (2 + 1 + 3) / 3 = 2      "9": (1 + 3 + 2) / 3 = 2      "2": (3 + 3 + 1) / 3 = 7/3
  #   "x":  (4 + 2 + 5) / 3 = 11/3   "11": (4 + 3 + 4) / 3 = 11/3
  # Ties to the ascending id, digit ids as integers first: "9" < "10"; "11" < "x".
  assert fusion.fuse_rankings([RUN_A, RUN_B, RUN_C]) == ["9", "10", "2", "11", "x"]


def test_rrf_by_hand_with_ties():
  k = 60
  want = {"10": Fraction(1, 62) + Fraction(1, 61) + Fraction(1, 63),
          "9": Fraction(1, 61) + Fraction(1, 62),
          "2": Fraction(1, 63) + Fraction(1, 61),
          "x": Fraction(1, 62), "11": Fraction(1, 64)}
  assert fusion.fuse_rankings([RUN_A, RUN_B, RUN_C], "rrf", k) == sorted(
      want, key=lambda pid: (-want[pid], fusion.passage_id_order(pid)))
  assert fusion.fuse_rankings([RUN_A, RUN_B, RUN_C], "rrf", k) == ["10", "9", "2", "x", "11"]
  # Mirrored runs tie every passage (any k): the ascending id decides.
  assert fusion.fuse_rankings([["b", "a"], ["a", "b"]], "rrf", 0) == ["a", "b"]
  assert fusion.fuse_rankings([["b", "a"], ["a", "b"]], "rank_average") == ["a", "b"]
  with pytest.raises(ValueError, match="fusion method"):
    fusion.fuse_rankings([RUN_A], "borda")


def _run_file(path, rows):
  path.write_text(json.dumps(rows), encoding="utf-8")
  return str(path)


def _rows(ranking_q1, ranking_q2):
  return [{"id": "q1", "lang": "ja", "ctxs": [f"text {p}" for p in ranking_q1],
           "pids": ranking_q1},
          {"id": "q2", "lang": "fi", "ctxs": [f"text {p}" for p in ranking_q2],
           "pids": ranking_q2}]


def test_cli_fuses_prediction_files(tmp_path, capsys):
  runs = [_run_file(tmp_path / f"{name}.json", _rows(ranking, ["a"]))
          for name, ranking in (("a", RUN_A), ("b", RUN_B), ("c", RUN_C))]
  out = tmp_path / "fused.json"
  assert cli_main.main(["fuse", *runs, "--out", str(out), "--top_k", "4"]) == 0
  fused = xor_retrieve.read_retrieve_predictions(str(out), with_passage_ids=True)
  assert [(p.qid, p.lang, p.passage_ids) for p in fused] == [
      ("q1", "ja", ["9", "10", "2", "11"]), ("q2", "fi", ["a"])]
  assert fused[0].passage_texts == ["text 9", "text 10", "text 2", "text 11"]
  assert cli_main.main(["fuse", *runs, "--out", str(out), "--method", "rrf", "--overwrite"]) == 0
  fused = xor_retrieve.read_retrieve_predictions(str(out), with_passage_ids=True)
  assert fused[0].passage_ids == ["10", "9", "2", "x", "11"]
  # A run without pids, or over other questions, is named.
  no_pids = _run_file(tmp_path / "no_pids.json", [{"id": "q1", "lang": "ja", "ctxs": ["t"]}])
  assert cli_main.main(["fuse", runs[0], no_pids, "--out", str(tmp_path / "x.json")]) == 2
  assert "no_pids.json" in capsys.readouterr().err


def test_fuse_runs_checks_questions_and_texts():
  def pred(qid, pids, text="t"):
    return xor_retrieve.RetrievalPrediction(qid, "ja", [f"{text}{p}" for p in pids], pids)
  with pytest.raises(DataFormatError, match="other questions"):
    fusion.fuse_runs([[pred("q1", ["a"])], [pred("q2", ["a"])]], ["r1", "r2"])
  with pytest.raises(DataFormatError, match="another text"):
    fusion.fuse_runs([[pred("q1", ["a"])], [pred("q1", ["a"], "u")]], ["r1", "r2"])
  with pytest.raises(DataFormatError, match="twice"):
    fusion.fuse_runs([[pred("q1", ["a", "a"])], [pred("q1", ["a"])]], ["r1", "r2"])


def test_passage_ids_are_read_only_when_asked(tmp_path):
  path = _run_file(tmp_path / "r.json", [{"id": "q1", "lang": "ja", "ctxs": ["a", "b"],
                                          "pids": ["7", 9]}])
  assert xor_retrieve.read_retrieve_predictions(path)[0].passage_ids is None
  assert xor_retrieve.read_retrieve_predictions(path, with_passage_ids=True)[0].passage_ids == [
      "7", "9"]
  bad = _run_file(tmp_path / "bad.json", [{"id": "q1", "lang": "ja", "ctxs": ["a", "b"],
                                           "pids": ["7"]}])
  with pytest.raises(DataFormatError, match=r"bad.json.*\[0\]\.pids"):
    xor_retrieve.read_retrieve_predictions(bad, with_passage_ids=True)
