"""Stage directories published atomically, with a MANIFEST.json that makes stages resumable.

A stage writes into a temporary sibling of `<root>/<stage>` (`fileio.publish_dir`); when the
pipeline has finished, the manifest `{"stage", "files", "counts", "config", "fingerprint",
"complete": true}` is written there and the directory is moved into `<root>/<stage>`: one swap on
local disk, file by file with the manifest last on GCS, so a stage without a complete manifest is
never taken as done. A stage whose manifest is complete with the same fingerprint (its config and
its inputs' fingerprints) is skipped; a complete stage with another fingerprint is only replaced
when `overwrite=True`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import posixpath
from typing import Any, Iterator

from clqa_jax import fileio

MANIFEST = "MANIFEST.json"


class StageConflictError(RuntimeError):
  """A complete stage output exists with a different fingerprint and overwrite is off."""


class EmptyStageError(ValueError):
  """A stage's input yielded no records: the stage and every stage after it would be empty."""


@dataclasses.dataclass(frozen=True)
class ExpectedRecords:
  """What a stage must produce from its input: at least one element counted under one of
  ``counts`` (names of its ``beam_util.count`` side files); else ``source`` is named."""
  counts: tuple[str, ...]
  source: str
  hint: str

  def check(self, stage: str, counts: dict[str, dict[str, int]]) -> None:
    if not any(sum(counts.get(name, {}).values()) for name in self.counts):
      raise EmptyStageError(f"{self.source}: synth {stage} made no {' or '.join(self.counts)} "
                            f"from it; {self.hint}")


def fingerprint(config: dict[str, Any], inputs: list[str]) -> str:
  """SHA-256 over the stage config and its inputs (manifest fingerprints or file stat)."""
  h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
  for path in sorted(inputs):
    h.update(path.encode())
    h.update(input_fingerprint(path).encode())
  return h.hexdigest()


def input_fingerprint(path: str) -> str:
  """A stage directory: its manifest fingerprint; a file: size and mtime; a directory: all files."""
  is_dir = fileio.isdir(path)
  m = read_manifest(path) if is_dir else None
  if m is not None:
    return m.get("fingerprint", "")
  if fileio.isfile(path):
    return f"{fileio.size(path)}:{fileio.mtime_ns(path)}"
  if is_dir:
    # Files by (directory, name): the order of a sorted os.walk, which older manifests used.
    rels = sorted(fileio.walk_files(path), key=lambda r: (posixpath.dirname(r), posixpath.basename(r)))
    parts = []
    for rel in rels:
      f = fileio.join(path, *rel.split("/"))
      parts.append(f"{rel}:{fileio.size(f)}:{fileio.mtime_ns(f)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
  raise FileNotFoundError(f"stage input {path} does not exist")


def read_manifest(stage_dir: str) -> dict[str, Any] | None:
  path = fileio.join(stage_dir, MANIFEST)
  if not fileio.exists(path):
    return None
  return fileio.read_json(path)


def is_complete(stage_dir: str, fp: str, overwrite: bool = False) -> bool:
  """True to skip the stage; raises StageConflictError on a complete, different, kept output."""
  m = read_manifest(stage_dir)
  if m is None or not m.get("complete"):
    return False
  if m.get("fingerprint") == fp:
    return True
  if overwrite:
    return False
  raise StageConflictError(
      f"{stage_dir} holds a complete output of other inputs or config; pass --overwrite "
      "(or SynthConfig.overwrite=True) to replace it")


@contextlib.contextmanager
def publish_stage(final: str) -> Iterator[str]:
  """Yields a staging directory that becomes `final` (replacing it) when the block succeeds and
  is deleted when it fails. Call after `is_complete`: an existing `final` is replaced."""
  with fileio.publish_dir(final, overwrite=True, commit_marker=MANIFEST) as staging:
    yield staging


def write_manifest(staging: str, stage: str, counts: dict[str, Any], config: dict[str, Any],
                   fp: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
  """Lists the stage's files and writes its complete manifest into `staging` (last step)."""
  files = []
  for rel in fileio.walk_files(staging):
    if fileio.is_tmp_name(posixpath.basename(rel)):  # a write abandoned by a failed worker
      fileio.remove(fileio.join(staging, *rel.split("/")))
    elif rel != MANIFEST:
      files.append(rel)
  manifest = {"stage": stage, "files": files, "counts": counts, "config": config,
              "fingerprint": fp, "complete": True, **(extra or {})}
  fileio.atomic_write(fileio.join(staging, MANIFEST),
                      json.dumps(manifest, indent=1, ensure_ascii=False, sort_keys=True, default=str))
  return manifest
