"""ScaNN index (tree + asymmetric hashing + exact reorder) for evaluation and serving.

Defaults follow the corpus size N: about sqrt(N) leaves, a tenth of them searched (at least
8), k-means and AH trained on up to max(100k, 64 * leaves) rows, and an exact float32 reorder
of 4 * k candidates. Below ``brute_force_below`` rows the index is exact brute force. Every
build measures recall@k (k = min(100, N)) against exact numpy search on a seeded sample of
corpus rows used as queries, logs it and returns it (``searcher.build_recall``).

Saved indexes are a directory: ScaNN's serialized assets (relative paths), ``row_ids.npy``
and ``index.json``; it is written under a temporary name and renamed into place. ScaNN reads
and writes local directories only: a remote (``gs://``) index is written locally and uploaded
(index.json last), and copied to local disk to be loaded.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from typing import Any

import gin
import numpy as np

from clqa_jax import fileio
from clqa_jax.index import base
from clqa_jax.index import exact

logger = logging.getLogger(__name__)

FORMAT = "clqa-scann/1"


@gin.configurable
@dataclasses.dataclass(frozen=True)
class ScannConfig:
  """ScaNN parameters; None means "chosen from the corpus size" (see resolve)."""
  num_leaves: int | None = None
  leaves_to_search: int | None = None
  training_sample_size: int | None = None
  dimensions_per_block: int = 2
  anisotropic_quantization_threshold: float = 0.2
  reorder_multiplier: float = 4.0
  brute_force_below: int = 4096
  recall_queries: int = 200
  recall_k: int = 100
  seed: int = 0
  num_threads: int = 0  # 0: ScaNN's default (all cores)

  def resolve(self, n: int) -> dict[str, Any]:
    """Concrete parameters for a corpus of n rows."""
    if n < self.brute_force_below:
      return {"mode": "brute_force"}
    num_leaves = self.num_leaves or max(2, int(round(math.sqrt(n))))
    num_leaves = min(num_leaves, n)
    leaves_to_search = self.leaves_to_search or max(8, int(math.ceil(num_leaves / 10)))
    sample = self.training_sample_size or max(100_000, 64 * num_leaves)
    return {"mode": "tree_ah", "num_leaves": num_leaves,
            "leaves_to_search": min(leaves_to_search, num_leaves),
            "training_sample_size": min(sample, n),
            "dimensions_per_block": self.dimensions_per_block,
            "anisotropic_quantization_threshold": self.anisotropic_quantization_threshold,
            "reorder_multiplier": self.reorder_multiplier}


def _import_scann():
  # scann imports TensorFlow; keep it out of module import time.
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  from scann.scann_ops.py import scann_ops_pybind  # pylint: disable=g-import-not-at-top
  return scann_ops_pybind


class ScannSearcher:
  """A built or loaded ScaNN index with global row ids."""

  def __init__(self, searcher, row_ids: np.ndarray, dim: int, params: dict[str, Any],
               build_recall: float | None):
    self._searcher = searcher
    self._row_ids = row_ids
    self._dim = dim
    self.params = params
    self.build_recall = build_recall

  @classmethod
  def build(cls, embeddings: np.ndarray, row_ids: np.ndarray | None = None,
            config: ScannConfig = ScannConfig(),
            recall_queries: np.ndarray | None = None) -> "ScannSearcher":
    """Builds the index over embeddings [N, D] and measures its recall@k.

    Args:
      embeddings: corpus [N, D] (converted to float32, as ScaNN needs).
      row_ids: int [N] row id of each embedding (default 0..N-1).
      config: ScaNN parameters.
      recall_queries: queries [Q, D] for the recall check (default: a seeded sample of
        config.recall_queries corpus rows).
    """
    row_ids = base.check_corpus(embeddings, row_ids)
    db = np.ascontiguousarray(embeddings, dtype=np.float32)
    if not np.all(np.isfinite(db)):
      raise base.IndexInputError("corpus has non-finite values (NaN or inf)")
    n, d = db.shape
    params = config.resolve(n)
    scann = _import_scann()
    k_default = min(config.recall_k, n)
    builder = scann.builder(db, k_default, "dot_product")
    if params["mode"] == "brute_force":
      builder = builder.score_brute_force()
    else:
      builder = builder.tree(
          num_leaves=params["num_leaves"], num_leaves_to_search=params["leaves_to_search"],
          training_sample_size=params["training_sample_size"]).score_ah(
              params["dimensions_per_block"],
              anisotropic_quantization_threshold=params["anisotropic_quantization_threshold"],
              training_sample_size=params["training_sample_size"]).reorder(
                  int(math.ceil(params["reorder_multiplier"] * k_default)))
    if config.num_threads:
      builder = builder.set_n_training_threads(config.num_threads)
    searcher = cls(builder.build(), row_ids, d, params, None)
    if config.num_threads:
      searcher._searcher.set_num_threads(config.num_threads)

    if recall_queries is None:
      rng = np.random.default_rng(config.seed)
      sample = np.sort(rng.choice(n, size=min(config.recall_queries, n), replace=False))
      recall_queries = db[sample]
    _, true_rows = exact.exact_topk(recall_queries, db, k_default, row_ids)
    _, found_rows = searcher.search(recall_queries, k_default)
    searcher.build_recall = base.recall_at_k(found_rows, true_rows)
    logger.info("ScaNN index over %d x %d (%s): recall@%d = %.4f on %d queries", n, d, params,
                 k_default, searcher.build_recall, recall_queries.shape[0])
    return searcher

  @property
  def num_rows(self) -> int:
    return self._row_ids.size

  @property
  def dim(self) -> int:
    return self._dim

  def search(self, queries: np.ndarray, k: int, *,
             leaves_to_search: int | None = None,
             pre_reorder: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """queries [Q, D] -> (scores float32 [Q, k], rows int64 [Q, k]) (approximate).

    A query whose searched leaves hold fewer than k rows gets -inf / -1 padding at the end.
    """
    queries = np.ascontiguousarray(base.check_queries(queries, self._dim, k, self.num_rows))
    kwargs = {"final_num_neighbors": int(k)}
    if self.params["mode"] == "tree_ah":
      kwargs["leaves_to_search"] = leaves_to_search or self.params["leaves_to_search"]
      kwargs["pre_reorder_num_neighbors"] = max(k, pre_reorder or int(
          math.ceil(self.params["reorder_multiplier"] * k)))
    neighbors, distances = self._searcher.search_batched_parallel(queries, **kwargs)
    neighbors = np.asarray(neighbors, np.int64)
    distances = np.asarray(distances, np.float32)
    scores = np.full((queries.shape[0], k), -np.inf, np.float32)
    rows = np.full((queries.shape[0], k), -1, np.int64)
    m = min(k, neighbors.shape[1])
    scores[:, :m] = distances[:, :m]
    valid = neighbors[:, :m] >= 0
    rows[:, :m] = np.where(valid, self._row_ids[np.clip(neighbors[:, :m], 0, None)], -1)
    scores[:, :m] = np.where(valid, scores[:, :m], -np.inf)
    return scores, rows

  def save(self, directory: str, *, overwrite: bool = False) -> None:
    """Writes the index to directory atomically (refuses to replace one unless overwrite)."""
    directory = fileio.abspath(directory)
    if fileio.exists(directory) and not overwrite:
      raise FileExistsError(f"{directory} exists; pass overwrite=True to replace it")
    with fileio.staged_local_dir(directory, overwrite=overwrite,
                                 commit_marker="index.json") as tmp:
      self._searcher.serialize(tmp, relative_path=True)
      np.save(fileio.join(tmp, "row_ids.npy"), self._row_ids)
      fileio.atomic_write(fileio.join(tmp, "index.json"), json.dumps(
          {"format": FORMAT, "num_rows": self.num_rows, "dim": self._dim,
           "params": self.params, "build_recall": self.build_recall}, indent=1))

  @classmethod
  def load(cls, directory: str, num_threads: int = 0) -> "ScannSearcher":
    """Loads an index written by save()."""
    meta_path = fileio.join(directory, "index.json")
    if not fileio.exists(meta_path):
      raise FileNotFoundError(f"{meta_path} is missing: {directory} is not a saved index")
    meta = fileio.read_json(meta_path)
    if meta.get("format") != FORMAT:
      raise ValueError(f"{meta_path}: field 'format' is {meta.get('format')!r}, "
                       f"expected {FORMAT!r}")
    with fileio.local_copy(directory) as local:  # ScaNN loads the assets into memory
      row_ids = np.load(fileio.join(local, "row_ids.npy"))
      if row_ids.shape != (meta["num_rows"],):
        raise ValueError(f"{directory}/row_ids.npy has shape {row_ids.shape}, index.json says "
                         f"num_rows={meta['num_rows']}")
      searcher = _import_scann().load_searcher(fileio.abspath(local))
    if num_threads:
      searcher.set_num_threads(num_threads)
    return cls(searcher, row_ids, int(meta["dim"]), meta["params"], meta["build_recall"])
