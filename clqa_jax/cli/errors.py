"""How every ``clqa`` command reports a malformed input file (``DataFormatError``).

``cli.main`` runs each command under ``reporting_input_errors``; commands that catch broad
errors (``ValueError``) re-raise ``DataFormatError`` first so that it reaches this one handler.
"""
from __future__ import annotations

import sys

from clqa_jax.data.errors import DataFormatError

INPUT_ERROR_EXIT = 2


def report_input_error(command: str, error: DataFormatError) -> int:
  """Prints ``clqa <command>: error: <path>:<line>: <field>: <message>``; returns exit 2."""
  print(f"clqa {command}: error: {error}", file=sys.stderr)
  return INPUT_ERROR_EXIT


def run_reporting_input_errors(command: str, run, args) -> int:
  """``run(args)``, with a ``DataFormatError`` reported by ``report_input_error``."""
  try:
    return int(run(args) or 0)
  except DataFormatError as e:
    return report_input_error(command, e)
