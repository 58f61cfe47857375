"""The shared --gin_file / --gin.NAME=VALUE handling of every subcommand."""
import pytest

from clqa_jax.cli import gin_flags
from clqa_jax.cli import main


def test_gin_bindings_are_split_from_argv():
  rest, bindings = gin_flags.split_gin_bindings(
      ["--out", "x", "--gin.TRAIN_STEPS=5", "--gin.MODEL_DIR", "'/tmp/run'", "--flag"])
  assert rest == ["--out", "x", "--flag"]
  assert bindings == ["TRAIN_STEPS=5", "MODEL_DIR='/tmp/run'"]
  with pytest.raises(ValueError, match="needs a value"):
    gin_flags.split_gin_bindings(["--gin.X"])


def test_unknown_subcommand_and_help(capsys):
  assert main.main(["--help"]) == 0
  assert "train" in capsys.readouterr().out
  assert main.main(["no-such-command"]) == 2
  assert "unknown command" in capsys.readouterr().err
