"""`clqa synth` and the gin files of gin/synth."""
import json
import os

import gin
import pytest

from clqa_jax import gin_utils
from clqa_jax.cli import main as cli_main
from clqa_jax.synth import config as config_lib

GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gin", "synth")


@pytest.mark.parametrize("files", [["synth/mini.gin"], ["synth/mini.gin", "synth/http.gin"]])
def test_gin_files_build_a_config(files, tmp_path):
  gin.clear_config()
  try:
    gin_utils.parse_gin(files, ['HttpConfig.model = "m"'])
    cfg = config_lib.SynthConfig(output_dir=str(tmp_path))
    assert cfg.margin_k == 4 and cfg.teacher_top_k == 100 and cfg.runner == "FnApiRunner"
    assert cfg.rewrite_backend == ("http" if len(files) == 2 else "miniwiki")
    assert cfg.corpus_dir == config_lib.MINIWIKI_DIR
  finally:
    gin.clear_config()


def test_cli_generate_and_questions_stage(tmp_path, capsys):
  corpus = str(tmp_path / "corpus")
  assert cli_main.main(["synth", "generate", "--out", corpus, "--synthetic_entities", "20"]) == 0
  assert "articles.ja" in capsys.readouterr().out
  out = str(tmp_path / "out")
  gin.clear_config()
  try:
    assert cli_main.main(["synth", "questions", "--gin_file", "synth/mini.gin", "--out", out,
                          "--corpus", corpus]) == 0
    with open(os.path.join(out, "xor", "MANIFEST.json")) as f:
      m = json.load(f)
    assert m["complete"] and set(m["counts"]["xor_dev_full.jsonl"]) == set(config_lib.XOR_LANGS)
    gin.clear_config()
    assert cli_main.main(["synth", "teacher", "--gin_file", "synth/mini.gin", "--out", out]) == 2
    assert "run `clqa synth parallel` first" in capsys.readouterr().err
  finally:
    gin.clear_config()
