"""``clqa demo`` end to end with a reduced step count: every step's outputs exist, the metrics
are finite, results.json has a row per model in the documented shape, and a rerun skips every
completed step. (At 2 steps nothing is learned: the learning check is off here; the demo runs it
at full size, and tests/test_demo_results.py tests the check.)"""
import io
import json
import math
import os
import re
import shutil
import contextlib

import pytest

from clqa_jax import demo
from fixtures.integration import mini_data



@pytest.fixture(scope="module")
def data_root():
  old = mini_data.enable_compilation_cache()
  yield mini_data.data_root()
  mini_data.restore_compilation_cache(old)


def test_demo_runs_end_to_end_and_resumes(data_root, tmp_path, capsys):
  out = tmp_path / "demo"
  # The synthetic data of this test session, recorded as the demo's completed synth and vocab
  # steps (what an interrupted earlier demo run leaves behind).
  shutil.copytree(data_root, out / "data", ignore=shutil.ignore_patterns("stores", "tfds"))
  (out / "steps").mkdir()
  for step in ("synth", "vocab"):
    (out / "steps" / f"{step}.json").write_text(json.dumps({"seconds": 0.0}))
  cfg = demo.DemoConfig(out=str(out), teacher_steps=2, stage1_steps=2, stage2_steps=2,
                        finetune_steps=2, refresh_every=1, num_passages=2, retrieval_depth=30,
                        max_answer_tokens=4, jax_cache=None, min_r5_gain=None,
                        # The shapes of the other integration tests: compiled programs are reused.
                        gin_bindings=("MT5Config.scan_layers = True",
                                      "loop.train.log_every_steps = 1"))
  result = demo.run_demo(cfg)
  # Every row's count of distinct first-ranked passages (the collapse check) is printed.
  assert re.search(r"ranked first .*: untrained \d+, bm25 \d+, teacher \d+, stage1 \d+, "
                   r"stage2 \d+, finetune \d+$", capsys.readouterr().out, re.M)
  for step in demo.STEPS:
    assert (out / "steps" / f"{step}.json").exists(), step
  for run in demo.MODEL_STAGES:
    assert (out / "runs" / run / "config.gin").exists(), run
  # Stage 2 and fine-tuning refreshed at steps 0 and 1 (not at the last step, 2).
  for run in ("stage2", "finetune"):
    store = out / "runs" / run / "retrieval" / "process_00000"
    assert sorted(p.name for p in store.iterdir() if p.name.startswith("step_")) == [
        "step_0000000000", "step_0000000001"], run
  assert (out / "export" / "vocab.model").exists() or any((out / "export").iterdir())
  # `clqa eval` tables: R@kt, passage recall and EnglishSpan on the English corpus, R@kt and
  # F1/EM/BLEU on the multilingual one.
  tables = {t.task: t for t in result["tables"]}
  assert sorted(tables) == ["xor-engspan", "xor-full", "xor-full-retrieval", "xor-retrieve",
                            "xor-retrieve-passages"]
  retrieve, full = tables["xor-retrieve"], tables["xor-full"]
  # The learning check's collapse bar over the 189 dev questions and 96 English passages.
  assert demo.collapse_floor(cfg, tables["xor-retrieve-passages"]) == 5
  assert set(retrieve.scores) == set(demo.XOR_LANGUAGES) == set(full.scores)
  for table in tables.values():
    for value in [*table.macro.values(), *(v for s in table.scores.values() for v in s.values())]:
      assert math.isfinite(value) and 0.0 <= value <= 100.0
  for path in result["reports"]:
    assert os.path.exists(path)
  with open(out / "eval" / "xor-full" / "xor_full_predictions.json", encoding="utf-8") as f:
    assert len(json.load(f)) == sum(full.counts.values())
  # results.json: untrained first, the lexical baseline, every stage, the final model last.
  with open(out / "results.json", encoding="utf-8") as f:
    rows = json.load(f)["rows"]
  assert [r["stage"] for r in rows] == ["untrained", "bm25", "teacher", "stage1", "stage2",
                                        "finetune"]
  for row in rows:
    groups = {"retrieval": ("R@2kt", "R@5kt", "R@1", "R@5"), "reader": ("F1", "EM", "BLEU")}
    for group, metrics in groups.items():
      if row["stage"] == "bm25" and group == "reader":
        assert row[group] is None  # retrieval only
        continue
      assert set(row[group]) == {*demo.XOR_LANGUAGES, "macro"}, (row["stage"], group)
      for scores in row[group].values():
        assert set(scores) == set(metrics)
        assert all(0.0 <= v <= 100.0 for v in scores.values())
  assert rows[-1]["retrieval"]["macro"]["R@5kt"] == retrieve.macro["R@5kt"]
  assert rows[-1]["reader"]["macro"]["F1"] == full.macro["F1"]
  assert (out / "results.png").stat().st_size > 0
  # A rerun skips every step and prints the same table.
  printed = io.StringIO()
  with contextlib.redirect_stdout(printed):
    again = demo.run_demo(cfg)
  text = printed.getvalue()
  assert all(f"[{step}] already complete" in text for step in demo.STEPS)
  assert again["tables"][0].macro == retrieve.macro
  assert "R@2kt" in text and "total runtime" in text
  assert again["rows"] == rows
