"""gin for the library and every command: the shipped config files, parsing files and bindings,
the operative config a run records, and a scoped config.

The gin files live in the repository's top-level ``gin/`` and are part of the package as
``clqa_jax/gin_configs`` (a link in a source checkout, package data in a wheel), so relative
``--gin_file`` paths and ``include`` lines resolve the same way with or without a checkout.
"""
from __future__ import annotations

import contextlib
import importlib.resources
import logging
import os
from typing import Iterator

import gin

from clqa_jax import fileio

GIN_CONFIGS_PACKAGE_DIR = "gin_configs"

# gin keeps one process-wide search-path list and never clears it: add each directory once.
_added_search_paths: set[str] = set()


def gin_config_dir() -> str:
  """The directory of the package's gin files (``gin/`` of the repository)."""
  directory = str(importlib.resources.files("clqa_jax").joinpath(GIN_CONFIGS_PACKAGE_DIR))
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"{directory}: the package's gin files are missing (a source "
                            "checkout links it to gin/; a wheel ships it as package data)")
  return directory


def gin_search_paths() -> list[str]:
  """Where relative ``--gin_file`` paths and ``include`` lines are looked up, after the
  current directory."""
  return [gin_config_dir()]


def resolve_gin_file(path: str) -> str:
  """``path`` as given when it exists, else under the search paths."""
  if fileio.exists(path):
    return path
  for base in gin_search_paths():
    candidate = os.path.join(base, path)
    if os.path.exists(candidate):
      return candidate
  raise FileNotFoundError(
      f"gin file {path!r} not found (looked in ., {', '.join(gin_search_paths())})")


def _is_gin_include_probe(record: logging.LogRecord) -> bool:
  """gin probes every include as a Python-package resource before the search paths and logs a
  false "Path not found" ERROR for files it then finds; a file that really is missing still
  raises (gin's IOError, or ``resolve_gin_file``'s FileNotFoundError)."""
  return record.module == "resource_reader" and record.msg == "Path not found: %s"


def _silence_gin_include_probes() -> None:
  root = logging.getLogger()
  if not any(getattr(f, "_clqa_gin_probe", False) for f in root.filters):
    probe_filter = logging.Filter()
    probe_filter.filter = lambda record: not _is_gin_include_probe(record)
    probe_filter._clqa_gin_probe = True  # pylint: disable=protected-access
    root.addFilter(probe_filter)


def parse_gin(gin_files: list[str], bindings: list[str], *, finalize: bool = True) -> None:
  """Parses gin files (relative ones also under the package's gin files) then bindings."""
  _silence_gin_include_probes()
  for path in gin_search_paths():
    if path not in _added_search_paths:
      gin.add_config_file_search_path(path)
      _added_search_paths.add(path)
  resolved = [resolve_gin_file(f) for f in gin_files]
  gin.parse_config_files_and_bindings(resolved, bindings, finalize_config=finalize)


def write_operative_config(out_dir: str, name: str = "config.gin") -> str:
  """Writes gin's operative config (what was actually used) into ``out_dir`` (local or gs://),
  atomically."""
  path = fileio.join(out_dir, name)
  fileio.atomic_write(path, gin.operative_config_str())
  return path


@contextlib.contextmanager
def scoped_config() -> Iterator[None]:
  """An empty gin config for the block; the config from before is put back afterwards (also
  unlocked, so parsing inside the block works after a finalized parse)."""
  saved = gin.config_str()
  gin.clear_config()
  try:
    yield
  finally:
    gin.clear_config()
    gin.parse_config(saved, skip_unknown=True)
