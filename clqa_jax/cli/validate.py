"""Flag values a command rejects before any work: a value that would otherwise give a silent,
meaningless result (an unknown language scores nothing, ``--top_k 0`` retrieves nothing)."""
from __future__ import annotations

import argparse
import json

from clqa_jax import fileio
from clqa_jax.cli.errors import UsageError
from clqa_jax.data import formats

# Every language a question or gold file may carry: XOR-TyDi's, MKQA's (English included).
KNOWN_LANGUAGES = tuple(sorted(set(formats.XOR_LANGUAGES) | set(formats.MKQA_LANGUAGES)))


def positive(args: argparse.Namespace, names: tuple[str, ...]) -> None:
  """Each ``--name`` that is set must be > 0."""
  for name in names:
    value = getattr(args, name, None)
    if value is not None and value <= 0:
      raise UsageError(f"--{name} must be positive, got {value}")


def positive_list(args: argparse.Namespace, name: str) -> None:
  values = getattr(args, name, None)
  if values is None:
    return
  if not values:
    raise UsageError(f"--{name} needs at least one value")
  bad = [v for v in values if v <= 0]
  if bad:
    raise UsageError(f"--{name} values must be positive, got {' '.join(map(str, bad))}")


def languages(flag: str, langs, *, mkqa: bool = False) -> None:
  """Every code in ``langs`` (a str or a list; None: nothing to check) is a known language."""
  if langs is None:
    return
  valid = formats.MKQA_LANGUAGES if mkqa else KNOWN_LANGUAGES
  for lang in [langs] if isinstance(langs, str) else langs:
    if lang not in valid:
      raise UsageError(f"{flag} {lang!r} is not a known language code; choose from "
                       f"{' '.join(valid)}")


def input_file(flag: str, path: str) -> None:
  """An input file (local or gs://) must exist and be a file."""
  if not fileio.exists(path):
    raise UsageError(f"{flag} {path}: no such file")
  if fileio.isdir(path):
    raise UsageError(f"{flag} {path}: is a directory; give a file")


def input_path(flag: str, path: str) -> None:
  """An input file or directory (local or gs://) must exist."""
  if not fileio.exists(path):
    raise UsageError(f"{flag} {path}: no such file or directory")


def not_json(flag: str, path: str, what: str) -> None:
  """Rejects a JSON document where plain text is expected (e.g. ``--txt_file`` predictions)."""
  if not fileio.isfile(path):
    return
  text = fileio.read_bytes(path).decode("utf-8", errors="replace")
  if text.lstrip()[:1] not in ("{", "["):
    return
  try:
    json.loads(text)
  except ValueError:
    return
  raise UsageError(f"{flag} {path}: is a JSON file, but {what}")
