"""``clqa demo`` records the settings of each completed step and refuses a rerun of a finished
output directory with other settings (no training here: the step records are written by
``demo._step`` with stand-in step functions)."""
import dataclasses
import json

import pytest

from clqa_jax import demo
from clqa_jax.cli import main as cli_main
from clqa_jax.synth.manifest import StageConflictError


def _finish(cfg, steps):
  for name in steps:
    demo._step(cfg, name, lambda: {"stand_in": True})  # pylint: disable=protected-access


def test_every_config_field_is_a_step_setting_or_declared_not_one():
  fields = {f.name for f in dataclasses.fields(demo.DemoConfig)}
  settings = {f for names in demo.STEP_SETTINGS.values() for f in names}
  assert set(demo.STEP_SETTINGS) == set(demo.STEPS)
  assert settings | set(demo.NOT_STEP_SETTINGS) == fields
  assert not settings & set(demo.NOT_STEP_SETTINGS)


def test_a_step_record_holds_its_settings(tmp_path):
  cfg = demo.DemoConfig(out=str(tmp_path), stage2_steps=7, gin_bindings=("X.y = 1",))
  _finish(cfg, ("synth", "stage2"))
  record = json.loads((tmp_path / "steps" / "stage2.json").read_text())
  assert record["stand_in"] and record["settings"]["stage2_steps"] == 7
  assert record["settings"]["gin_bindings"] == ["X.y = 1"]
  assert json.loads((tmp_path / "steps" / "synth.json").read_text())["settings"] == {}


def test_a_rerun_with_the_same_settings_passes_and_other_settings_are_refused(tmp_path):
  cfg = demo.DemoConfig(out=str(tmp_path), jax_cache=None)
  _finish(cfg, demo.STEPS)
  demo.check_step_settings(dataclasses.replace(cfg))          # same settings: every step skips
  demo.check_step_settings(dataclasses.replace(cfg, jax_cache=""))    # not a step setting
  changed = dataclasses.replace(cfg, teacher_steps=3, stage1_steps=3, stage2_steps=3)
  record = tmp_path / "steps" / "teacher.json"
  with pytest.raises(StageConflictError) as e:
    demo.run_demo(changed)       # refused before anything runs: no data/, no jax_cache/
  assert str(e.value) == (
      f"{record}: teacher_steps {cfg.teacher_steps} -> 3: this step finished with other settings (also "
      f"stage1.json, stage2.json); use a new --out, or remove {tmp_path} to run every step "
      "again")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["steps"]
  uses = [n for n in demo.STEPS if "max_answer_tokens" in demo.STEP_SETTINGS[n]]
  first, later = uses[0], ", ".join(f"{n}.json" for n in uses[1:])
  with pytest.raises(StageConflictError,
                     match=rf"{first}.json: max_answer_tokens {cfg.max_answer_tokens} -> 8: .*"
                           rf"\(also {later}\)"):
    demo.check_step_settings(dataclasses.replace(cfg, max_answer_tokens=8))


def test_a_record_without_settings_is_refused(tmp_path):
  cfg = demo.DemoConfig(out=str(tmp_path))
  (tmp_path / "steps").mkdir()
  (tmp_path / "steps" / "synth.json").write_text(json.dumps({"seconds": 1.0}))
  demo.check_step_settings(cfg)       # synth has no settings to compare
  (tmp_path / "steps" / "stage1.json").write_text(json.dumps({"seconds": 1.0}))
  with pytest.raises(StageConflictError, match="stage1.json: settings not recorded"):
    demo.check_step_settings(cfg)


def test_the_command_line_names_the_changed_setting(tmp_path, capsys):
  _finish(demo.DemoConfig(out=str(tmp_path), batch_size=8), ("teacher",))
  assert cli_main.main(["demo", "--out", str(tmp_path), "--batch_size", "4"]) == 2
  err = capsys.readouterr().err
  assert err == (f"clqa demo: error: {tmp_path / 'steps' / 'teacher.json'}: batch_size 8 -> 4: "
                 "this step finished with other settings; use a new --out, or remove "
                 f"{tmp_path} to run every step again\n")
