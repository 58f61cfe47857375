"""Reports (JSON / markdown / PNG) and the `clqa metrics` command on the fixture files."""
import json
import os

import pytest
from fake_gcs import fake_gcs, object_paths  # noqa: F401  (fake_gcs is a fixture)

from clqa_jax import fileio
from clqa_jax.cli import main as cli_main
from clqa_jax.eval import report
from clqa_jax.eval import table

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "eval")


def _table():
  return table.LanguageTable("xor-full", ("F1", "EM"), {"ja": {"F1": 50.0, "EM": 25.0},
                                                       "ko": {"F1": 70.0, "EM": 45.0}},
                             {"ja": 4, "ko": 2}, {"F1": 60.0, "EM": 35.0}, {"note": "x"})


def test_reports_round_trip_and_refuse_overwrite(tmp_path):
  paths = report.write_reports(str(tmp_path / "res"), [_table()])
  assert [os.path.basename(p) for p in paths] == ["res.json", "res.md", "res.xor-full.png"]
  assert report.read_json(paths[0]) == [_table()]
  markdown = open(paths[1], encoding="utf-8").read()
  assert "| ja | 4 | 50.00 | 25.00 |" in markdown
  assert "| **macro** | **6** | **60.00** | **35.00** |" in markdown
  assert open(paths[2], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
  with pytest.raises(FileExistsError):
    report.write_json(paths[0], [_table()])
  report.write_json(paths[0], [_table()], overwrite=True)
  assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]


def test_reports_on_gs_path(tmp_path, fake_gcs):
  local = report.write_reports(str(tmp_path / "res"), [_table()])
  paths = report.write_reports("gs://bucket/eval/res", [_table()])
  assert object_paths(fake_gcs) == sorted(paths) == sorted(
      "gs://bucket/eval/" + os.path.basename(p) for p in local)
  assert report.read_json(paths[0]) == [_table()]
  for mine, theirs in zip(local[:2], paths[:2]):
    assert fileio.read_bytes(theirs) == open(mine, "rb").read()
  with pytest.raises(FileExistsError, match="--overwrite"):
    report.write_json(paths[0], [_table()])
  report.write_json(paths[0], [_table()], overwrite=True)


def test_text_table_lists_languages_then_macro():
  lines = report.format_text(_table()).splitlines()
  assert lines[1].split() == ["lang", "n", "F1", "EM"]
  assert lines[-1].split() == ["macro", "6", "60.00", "35.00"]


def test_cli_xor_retrieve_prints_and_writes_json(tmp_path, capsys):
  out = tmp_path / "r.json"
  rc = cli_main.main(["metrics", "xor-retrieve",
                      "--data_file", os.path.join(FIXTURES, "xor_retrieve_gold.jsonl"),
                      "--pred_file", os.path.join(FIXTURES, "xor_retrieve_pred.json"),
                      "--out", str(out)])
  assert rc == 0
  printed = capsys.readouterr().out
  assert "macro" in printed and "75.00" in printed
  data = json.loads(out.read_text())["xor-retrieve"]
  assert data["macro"]["R@2kt"] == 75.0 and data["per_language"]["ja"]["count"] == 2


def test_cli_xor_full_and_engspan(tmp_path, capsys):
  gold = os.path.join(FIXTURES, "xor_full_gold.jsonl")
  pred = os.path.join(FIXTURES, "xor_full_pred.json")
  assert cli_main.main(["metrics", "xor-full", "--data_file", gold, "--pred_file", pred,
                        "--out", str(tmp_path / "f.json")]) == 0
  full = json.loads((tmp_path / "f.json").read_text())["xor-full"]
  assert full["per_language"]["fi"]["EM"] == 50.0
  assert cli_main.main(["metrics", "xor-engspan", "--data_file", gold, "--pred_file", pred]) == 0
  assert "ignored_other_languages: 1" in capsys.readouterr().out


def test_cli_mkqa_convert_and_evaluate(tmp_path):
  raw = os.path.join(FIXTURES, "mkqa_raw.jsonl")
  assert cli_main.main(["metrics", "mkqa-convert", "--data_file", raw,
                        "--output_dir", str(tmp_path / "conv")]) == 0
  assert sorted(os.listdir(tmp_path / "conv")) == [
      "input_en.jsonl", "input_ja.jsonl", "input_zh_cn.jsonl"]
  rows = [json.loads(l) for l in open(tmp_path / "conv" / "input_en.jsonl", encoding="utf-8")]
  assert [r["id"] for r in rows] == ["101", "103"]
  pred = tmp_path / "en.json"
  pred.write_text(json.dumps({"101": "Darwin", "103": "1989"}))
  assert cli_main.main(["metrics", "mkqa", "--data_file", raw, "--pred_file", str(pred),
                        "--lang", "en", "--out", str(tmp_path / "m.json")]) == 0
  result = json.loads((tmp_path / "m.json").read_text())["mkqa"]
  assert result["per_language"]["en"]["F1"] == pytest.approx(75.0)


def test_cli_bad_input_is_a_typed_error(tmp_path, capsys):
  gold = tmp_path / "gold.jsonl"
  gold.write_text('{"id": "a", "lang": "ja", "answers": []}\n')
  pred = tmp_path / "pred.json"
  pred.write_text("{}")
  rc = cli_main.main(["metrics", "xor-full", "--data_file", str(gold), "--pred_file", str(pred)])
  assert rc == 2
  assert "clqa metrics: error: " in (err := capsys.readouterr().err)
  assert f"{gold}:1: answers: empty list" in err


def test_written_prediction_files_read_back_in_the_official_formats(tmp_path):
  from clqa_jax.eval import inputs
  from clqa_jax.eval import prediction_files
  from clqa_jax.eval import xor_retrieve
  preds = [xor_retrieve.RetrievalPrediction("q1", "ja", ["Tokyo is big.", "Osaka."])]
  path = str(tmp_path / "retrieve.json")
  prediction_files.write_retrieve_predictions(path, preds, {"q1": ["7", "9"]})
  assert json.loads(open(path).read())[0]["ctxs"] == ["Tokyo is big.", "Osaka."]
  assert xor_retrieve.read_retrieve_predictions(path) == preds
  answers = str(tmp_path / "answers.json")
  prediction_files.write_answer_predictions(answers, {"q1": "東京"})
  assert inputs.read_answer_predictions(answers) == {"q1": "東京"}
  with pytest.raises(FileExistsError):
    prediction_files.write_answer_predictions(answers, {"q1": "x"})


def test_bar_chart_legend_off_the_bars_values_on_them_and_checkpoint_in_title():
  t = _table()
  t.info["checkpoint"] = {"kind": "checkpoint", "path": "/runs/s2/checkpoints", "step": 40,
                          "run_dir": "/runs/s2"}
  fig = report.bar_chart_figure(t)
  fig.canvas.draw()
  renderer = fig.canvas.get_renderer()
  (ax,) = fig.axes
  assert ax.get_title() == "xor-full: /runs/s2 step 40"
  # One label per bar: each language's and the macro value of every metric.
  labels = sorted(text.get_text() for text in ax.texts)
  assert labels == sorted(["50.0", "70.0", "60.0", "25.0", "45.0", "35.0"])
  (legend,) = fig.legends
  assert [text.get_text() for text in legend.get_texts()] == ["F1", "EM"]
  assert not ax.get_legend()
  box, axes = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
  assert box.x0 >= axes.x1 or box.y0 >= axes.y1       # outside the plot: never over a bar
  assert box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1   # and inside the picture
  # Without a checkpoint record the title is the task.
  assert report.chart_title(_table()) == "xor-full"
  t.info["checkpoint"] = {"kind": "hf_mt5", "path": "/hf/mt5-small", "step": None}
  assert report.chart_title(t) == "xor-full: /hf/mt5-small"
