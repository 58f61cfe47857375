"""Logging of every ``clqa`` command: our own logger at ``--log_level``, libraries quiet.

By default a command prints its own progress (logger ``clqa_jax`` at INFO) and results; absl,
orbax, jax, tensorstore, Beam and TensorFlow log only warnings unless ``--log_level DEBUG``.
"""
from __future__ import annotations

import argparse
import logging
import os

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_LEVEL = "INFO"
OWN_LOGGER = "clqa_jax"
LIBRARY_LOGGERS = ("absl", "orbax", "jax", "jaxlib", "tensorstore", "apache_beam",
                   "tensorflow", "h5py", "urllib3", "gin")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_log_level_argument(parser: argparse.ArgumentParser) -> None:
  """--log_level on ``parser`` and on its nested subcommands (``clqa metrics xor-full``), where
  it is also accepted after the nested subcommand's name."""
  _add(parser, DEFAULT_LEVEL)
  for action in parser._actions:  # pylint: disable=protected-access
    if isinstance(action, argparse._SubParsersAction):  # pylint: disable=protected-access
      for sub in action.choices.values():
        _add(sub, argparse.SUPPRESS)  # keeps a value given before the nested name


def _add(parser: argparse.ArgumentParser, default: str) -> None:
  parser.add_argument("--log_level", default=default, choices=LEVELS, type=str.upper,
                      help="level of clqa's own log lines; libraries (absl, orbax, jax, "
                           "tensorstore, Beam) log warnings only, unless DEBUG")


def _drop_root_records_of(package: str) -> None:
  """Drops the root logger's records (``logging.warning`` called by a library) from
  ``package`` below ERROR; added once."""
  root = logging.getLogger()
  if any(getattr(f, "_clqa_package", None) == package for f in root.filters):
    return
  marker = f"{os.sep}{package}{os.sep}"
  package_filter = logging.Filter()
  package_filter.filter = lambda r: r.levelno >= logging.ERROR or marker not in r.pathname
  package_filter._clqa_package = package  # pylint: disable=protected-access
  root.addFilter(package_filter)


def configure_logging(level_name: str) -> None:
  level = getattr(logging, level_name)
  logging.basicConfig(level=logging.WARNING, format=FORMAT)
  logging.getLogger(OWN_LOGGER).setLevel(level)
  library_level = logging.DEBUG if level == logging.DEBUG else logging.WARNING
  for name in LIBRARY_LOGGERS:
    logging.getLogger(name).setLevel(library_level)
  # Beam logs the traceback of every worker exception it re-raises (the command reports it),
  # and warns through the root logger about optional GCP client libraries at import.
  if level != logging.DEBUG:
    logging.getLogger("apache_beam").setLevel(logging.CRITICAL)
    _drop_root_records_of("apache_beam")
  try:
    from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  except ImportError:
    return
  absl_logging.set_verbosity("debug" if level == logging.DEBUG else "warning")
