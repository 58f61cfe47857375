"""``RetrievalStore``: qid -> top-K passage rows, one immutable version per training step.

Layout: ``<root>/step_<step:010d>/`` holds ``qids.npy`` (sorted bytes), ``rows.npy`` (int32
[Q, K], rows of the PassageStore, -1 padding), ``scores.npy`` (float32 [Q, K], optional) and
``meta.json``; ``<root>/LATEST`` names the newest version. A version is written in a temporary
directory and published whole (``fileio.staged_local_dir``), then LATEST is swapped atomically,
so readers of an older version (memory-mapped) are never disturbed, and a crash leaves the
previous version current. The question's source passage is removed on write (trivial
retrievals, as in CLASS's refresh), before truncation to K. The root may be remote (``gs://``):
a version is then copied to local disk when it is opened, and memory-mapped from there.
"""
from __future__ import annotations

import json
import re
from typing import Iterable, Sequence

import numpy as np

from clqa_jax import fileio

_VERSION_RE = re.compile(r"^step_(\d{10})$")


class RetrievalVersion:
  """One immutable version: lookup of top-K rows by qid."""

  def __init__(self, directory: str):
    self.directory = directory
    local = fileio.pinned_local_copy(directory, self)
    self.meta = fileio.read_json(fileio.join(local, "meta.json"))
    self.step = int(self.meta["step"])
    self.k = int(self.meta["k"])
    self._qids = np.load(fileio.join(local, "qids.npy"), mmap_mode="r")
    self._rows = np.load(fileio.join(local, "rows.npy"), mmap_mode="r")
    scores = fileio.join(local, "scores.npy")
    self._scores = np.load(scores, mmap_mode="r") if fileio.exists(scores) else None

  def __len__(self) -> int:
    return len(self._qids)

  def qids(self) -> list[str]:
    """Every stored qid, in the stored (sorted) order."""
    return [q.decode("utf-8") for q in np.asarray(self._qids)]

  def _positions(self, qids: Iterable[str | bytes]) -> np.ndarray:
    keys = np.array([q if isinstance(q, bytes) else str(q).encode("utf-8") for q in qids],
                    dtype=self._qids.dtype)
    pos = np.searchsorted(self._qids, keys)
    pos_c = np.minimum(pos, len(self._qids) - 1)
    ok = (pos < len(self._qids)) & (np.asarray(self._qids[pos_c]) == keys)
    if not ok.all():
      bad = [k.decode("utf-8", "replace") for k, good in zip(keys, ok) if not good][:5]
      raise KeyError(f"qids without retrieval results in {self.directory}: {bad}")
    return pos_c

  def lookup(self, qids: Iterable[str | bytes], k: int | None = None) -> np.ndarray:
    """int32 [B, k] passage rows of each qid (default k: all stored)."""
    rows = np.asarray(self._rows[self._positions(qids)])
    return rows[:, :k] if k is not None else rows

  def first_rows(self) -> np.ndarray:
    """int32 [Q] every stored question's best row (-1 for none), in the stored order."""
    return np.asarray(self._rows[:, 0])

  def lookup_scores(self, qids: Iterable[str | bytes], k: int | None = None) -> np.ndarray:
    if self._scores is None:
      raise ValueError(f"{self.directory} stores no scores")
    s = np.asarray(self._scores[self._positions(qids)])
    return s[:, :k] if k is not None else s


def exclude_and_truncate(rows: np.ndarray, source_rows: np.ndarray | None, k: int,
                         scores: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
  """Drops each question's source row (and -1), keeps the first k, pads with -1.

  Args:
    rows: int [Q, K'] candidate rows, best first (K' > k leaves room for the exclusion).
    source_rows: int [Q] row of each question's source passage, -1 for none.
    k: rows to keep.
    scores: optional float [Q, K'] aligned with rows.
  Returns:
    (int32 [Q, k], float32 [Q, k] or None)
  """
  rows = np.asarray(rows)
  keep = rows >= 0
  if source_rows is not None:
    keep &= rows != np.asarray(source_rows)[:, None]
  # Stable compaction: kept entries first, in their original (ranked) order.
  order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
  out = np.take_along_axis(rows, order, axis=1).astype(np.int32)
  valid = np.take_along_axis(keep, order, axis=1)
  out[~valid] = -1
  out_scores = None
  if scores is not None:
    out_scores = np.take_along_axis(np.asarray(scores, np.float32), order, axis=1)
    out_scores[~valid] = -np.inf
  if out.shape[1] < k:
    pad = k - out.shape[1]
    out = np.pad(out, ((0, 0), (0, pad)), constant_values=-1)
    if out_scores is not None:
      out_scores = np.pad(out_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
  return out, out_scores


class RetrievalStore:
  """Versioned qid -> top-K rows, written and swapped atomically.

  Args:
    root: the store directory.
    keep_versions: how many versions to keep on disk (older ones are deleted after a write;
      processes that still have them memory-mapped keep reading them safely).
  """

  def __init__(self, root: str, keep_versions: int = 2):
    self.root = root
    self.keep_versions = keep_versions
    self._cache: dict[str, RetrievalVersion] = {}

  def versions(self) -> list[int]:
    if not fileio.isdir(self.root):
      return []
    return sorted(int(m[1]) for d in fileio.listdir(self.root) if (m := _VERSION_RE.match(d)))

  def version(self, step: int) -> RetrievalVersion:
    name = f"step_{step:010d}"
    if name not in self._cache:
      self._cache = {name: RetrievalVersion(fileio.join(self.root, name))}
    return self._cache[name]

  def latest(self) -> RetrievalVersion:
    """The current version (re-read from LATEST on every call: refreshes become visible)."""
    try:
      name = fileio.read_text(fileio.join(self.root, "LATEST")).strip()
    except FileNotFoundError:
      raise FileNotFoundError(f"{self.root}: no retrieval results written yet") from None
    m = _VERSION_RE.match(name)
    if not m:
      raise ValueError(f"{self.root}/LATEST names {name!r}, not a version")
    return self.version(int(m[1]))

  def write(self, step: int, qids: Sequence[str | bytes], rows: np.ndarray, *,
            source_rows: np.ndarray | None = None, scores: np.ndarray | None = None,
            k: int = 100, meta: dict | None = None) -> RetrievalVersion:
    """Publishes the results computed at ``step`` and makes them the latest version.

    Args:
      step: the training step the retrieval was computed at.
      qids: [Q] question ids.
      rows: int [Q, K'] passage rows, best first.
      source_rows: int [Q] each question's source passage row (excluded), -1 for none.
      scores: float [Q, K'] optional scores.
      k: results kept per question.
      meta: extra metadata (e.g. the passage store manifest id).
    """
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[0] != len(qids):
      raise ValueError(f"rows must be [Q={len(qids)}, K'], got {rows.shape}")
    out_rows, out_scores = exclude_and_truncate(rows, source_rows, k, scores)
    keys = np.array([q if isinstance(q, bytes) else str(q).encode("utf-8") for q in qids])
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    if len(keys) > 1 and (keys[1:] == keys[:-1]).any():
      raise ValueError("duplicate qids in a retrieval write")
    name = f"step_{step:010d}"
    final = fileio.join(self.root, name)
    if fileio.exists(final):
      raise FileExistsError(f"{final} exists: a version is immutable; write a new step")
    fileio.makedirs(self.root)
    with fileio.staged_local_dir(final) as tmp:  # local: a sibling of final, renamed
      np.save(fileio.join(tmp, "qids.npy"), keys)
      np.save(fileio.join(tmp, "rows.npy"), out_rows[order])
      if out_scores is not None:
        np.save(fileio.join(tmp, "scores.npy"), out_scores[order])
      fileio.atomic_write(fileio.join(tmp, "meta.json"), json.dumps(
          {"step": step, "k": k, "count": len(keys), **(meta or {})}, indent=1))
    fileio.atomic_write(fileio.join(self.root, "LATEST"), name + "\n")
    self._prune(keep=name)
    return self.version(step)

  def _prune(self, keep: str) -> None:
    steps = self.versions()
    for s in steps[:-self.keep_versions] if self.keep_versions > 0 else []:
      name = f"step_{s:010d}"
      if name != keep:
        fileio.rmtree(fileio.join(self.root, name))
