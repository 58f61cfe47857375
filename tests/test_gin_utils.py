"""gin files resolve from any directory (relative paths and includes under the package's gin
files); the scoped config starts empty and puts the previous config back."""
import logging
import os

import gin
import pytest

from clqa_jax import gin_utils

REPO_GIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gin")


def test_package_gin_files_are_the_repository_gin_directory():
  assert os.path.samefile(gin_utils.gin_config_dir(), REPO_GIN)


@pytest.mark.usefixtures("fresh_gin")
def test_includes_resolve_without_false_errors_and_missing_files_raise(caplog, tmp_path,
                                                                       monkeypatch):
  monkeypatch.chdir(tmp_path)   # relative files resolve against the package's gin files
  with caplog.at_level(logging.INFO):
    gin_utils.parse_gin(["experiments/mini_mlqa_pt.gin"], ["TRAIN_STEPS = 3"], finalize=False)
  assert gin.query_parameter("%TRAIN_STEPS") == 3
  assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
  with pytest.raises(FileNotFoundError, match="no_such.gin"):
    gin_utils.parse_gin(["runs/no_such.gin"], [])


@pytest.mark.usefixtures("fresh_gin")
def test_scoped_config_is_empty_inside_and_restores_outside_even_after_errors():
  gin.parse_config("OUTER = 1")
  with pytest.raises(RuntimeError, match="inside"):
    with gin_utils.scoped_config():
      with pytest.raises(ValueError):
        gin.query_parameter("%OUTER")
      gin_utils.parse_gin([], ["INNER = 2"])   # finalizes (locks) the inner config
      raise RuntimeError("inside")
  assert gin.query_parameter("%OUTER") == 1
  with pytest.raises(ValueError):
    gin.query_parameter("%INNER")
  gin.parse_config("AFTER = 3")   # unlocked again


@pytest.mark.usefixtures("fresh_gin")
def test_operative_config_is_written_atomically(tmp_path):
  @gin.configurable("gin_utils_test_fn")
  def fn(value=0):
    return value

  gin_utils.parse_gin([], ["gin_utils_test_fn.value = 7"])
  assert fn() == 7
  path = gin_utils.write_operative_config(str(tmp_path / "run"))
  assert os.listdir(tmp_path / "run") == ["config.gin"]
  with open(path, encoding="utf-8") as f:
    assert "gin_utils_test_fn.value = 7" in f.read()
