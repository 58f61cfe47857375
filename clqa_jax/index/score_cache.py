"""A persistent cache of teacher scores keyed by (qid, pid), shared by the rounds of a job.

Layout: ``<dir>/meta.json`` (the teacher's identity: checkpoint, vocabulary, prompt) and
``scores-s<shard>-<n>.npz`` files, each an atomic write of ``qid`` / ``pid`` (UTF-8 bytes) and
``score`` (float32) arrays. A crash loses at most the chunk being scored; a cache made by
another teacher is an error, never silently reused.
"""
from __future__ import annotations

import io
import json
import re

import numpy as np

from clqa_jax import fileio

META = "meta.json"
_CHUNK_RE = re.compile(r"^scores-s(\d{5})-(\d{6})\.npz$")

Pair = tuple[str, str]


class ScoreCacheMismatchError(ValueError):
  """The cache directory was filled by another teacher."""


class ScoreCache:
  """(qid, pid) -> score, loaded from and appended to ``directory``.

  Args:
    directory: the cache directory (local or gs://).
    identity: JSON-serialisable description of the scorer; must equal the stored one.
  """

  def __init__(self, directory: str, identity: dict):
    self.directory = directory
    self.identity = json.loads(json.dumps(identity, sort_keys=True))
    meta_path = fileio.join(directory, META)
    if fileio.exists(meta_path):
      stored = fileio.read_json(meta_path)
      if stored != self.identity:
        changed = sorted(k for k in set(stored) | set(self.identity)
                         if stored.get(k) != self.identity.get(k))
        raise ScoreCacheMismatchError(
            f"{meta_path}: the score cache was made by another teacher (fields {changed} "
            "differ); use another cache directory")
    else:
      fileio.makedirs(directory)
      fileio.write_json(meta_path, self.identity)
    self.scores: dict[Pair, float] = {}
    for name in sorted(fileio.listdir(directory)):
      if _CHUNK_RE.match(name):
        self._load(fileio.join(directory, name))

  def _load(self, path: str) -> None:
    with np.load(io.BytesIO(fileio.read_bytes(path))) as z:
      for q, p, s in zip(z["qid"], z["pid"], z["score"]):
        self.scores[(q.decode("utf-8"), p.decode("utf-8"))] = float(s)

  def __len__(self) -> int:
    return len(self.scores)

  def __contains__(self, pair: Pair) -> bool:
    return pair in self.scores

  def get(self, pair: Pair) -> float:
    return self.scores[pair]

  def add(self, pairs: list[Pair], scores: np.ndarray, shard: int = 0) -> str:
    """Records scored pairs in a new chunk file (atomic); returns its path."""
    if len(pairs) != len(scores):
      raise ValueError(f"{len(pairs)} pairs but {len(scores)} scores")
    taken = [int(m[2]) for n in fileio.listdir(self.directory)
             if (m := _CHUNK_RE.match(n)) and int(m[1]) == shard]
    path = fileio.join(self.directory, f"scores-s{shard:05d}-{max(taken, default=-1) + 1:06d}.npz")
    buf = io.BytesIO()
    np.savez(buf, qid=np.array([q.encode("utf-8") for q, _ in pairs]),
             pid=np.array([p.encode("utf-8") for _, p in pairs]),
             score=np.asarray(scores, np.float32))
    fileio.atomic_write(path, buf.getvalue(), overwrite=False)
    for pair, s in zip(pairs, np.asarray(scores, np.float32)):
      self.scores[pair] = float(s)
    return path
