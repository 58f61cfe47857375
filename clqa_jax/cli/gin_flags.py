"""``--gin_file`` / ``--gin.NAME=VALUE`` flags shared by every subcommand (T5X conventions);
parsing them is ``clqa_jax.gin_utils.parse_gin``."""
from __future__ import annotations

import argparse


def add_gin_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument(
      "--gin_file", action="append", default=[],
      help="gin file to parse (repeatable; later files override earlier ones). "
           "Relative paths are also looked up among the package's gin files (the "
           "repository's gin/), e.g. experiments/mini_clr_pt.gin.")
  parser.add_argument(
      "--gin_bindings", action="append", default=[],
      help="a gin binding such as 'train.steps=100'; '--gin.train.steps=100' is the same.")


def split_gin_bindings(argv: list[str]) -> tuple[list[str], list[str]]:
  """Pulls ``--gin.NAME=VALUE`` (or ``--gin.NAME VALUE``) out of argv."""
  rest, bindings = [], []
  i = 0
  while i < len(argv):
    arg = argv[i]
    if arg.startswith("--gin."):
      body = arg[len("--gin."):]
      if "=" in body:
        name, value = body.split("=", 1)
      else:
        if i + 1 >= len(argv):
          raise ValueError(f"{arg} needs a value: use --gin.NAME=VALUE")
        name, value = body, argv[i + 1]
        i += 1
      bindings.append(f"{name}={value}")
    else:
      rest.append(arg)
    i += 1
  return rest, bindings
