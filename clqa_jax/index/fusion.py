"""Rank fusion of retrieval runs (ZusammenQA's EnsembleRank, spec §2.6), by passage id.

* ``rank_average`` (the source's EnsembleRank): for each question, the union of the runs' lists;
  a passage's score is the mean over the runs of its 1-based rank in that run, a run that lacks
  it counting len(that run's list) + 1; ascending score.
* ``rrf`` (reciprocal-rank fusion, Cormack et al. 2009): score = sum over the runs that hold the
  passage of 1 / (k + rank), rank 1-based; descending score.
Ties go to the ascending passage id (the spec's recommendation; ids that are all digits compare
as integers, before any other id, which compares as a string). Scores are exact fractions, so
ties are exact.

Written by hand rather than with ``ranx``: ranx 0.3.21 brings numba, llvmlite, pandas,
ir_datasets, seaborn and fastparquet, its rank-based methods normalise ranks differently from
the source's "missing = len + 1" mean, and its tie order is not the spec's.
"""
from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
  from clqa_jax.eval.xor_retrieve import RetrievalPrediction

METHODS = ("rank_average", "rrf")
RRF_K = 60


def passage_id_order(pid: str) -> tuple[int, int, str]:
  """Sort key of the tie rule: numeric ids by value first, then the others as strings."""
  return (0, int(pid), "") if pid.isdigit() else (1, 0, pid)


def fuse_rankings(rankings: Sequence[Sequence[str]], method: str = "rank_average",
                  k: int = RRF_K) -> list[str]:
  """One question's fused ranking of passage ids (every passage of the union, best first)."""
  if method not in METHODS:
    raise ValueError(f"fusion method must be one of {METHODS}, got {method!r}")
  union = list(dict.fromkeys(pid for ranking in rankings for pid in ranking))
  positions = [{pid: rank for rank, pid in enumerate(ranking, start=1)} for ranking in rankings]
  if method == "rank_average":
    scores = {pid: sum(Fraction(pos.get(pid, len(pos) + 1)) for pos in positions)
              / len(rankings) for pid in union}
    return sorted(union, key=lambda pid: (scores[pid], passage_id_order(pid)))
  scores = {pid: sum(Fraction(1, k + pos[pid]) for pos in positions if pid in pos)
            for pid in union}
  return sorted(union, key=lambda pid: (-scores[pid], passage_id_order(pid)))


def fuse_runs(runs: Sequence[Sequence[RetrievalPrediction]], paths: Sequence[str],
              method: str = "rank_average", k: int = RRF_K,
              top_k: int | None = None) -> list[RetrievalPrediction]:
  """Fuses whole prediction files question by question (keyed by id and language).

  Every run must carry passage ids and cover the same questions; a passage id must name the same
  text in every run. The output keeps the first run's question order and ``top_k`` passages.
  """
  from clqa_jax.data.errors import DataFormatError
  from clqa_jax.eval.xor_retrieve import RetrievalPrediction

  by_key: list[dict[tuple[str, str | None], RetrievalPrediction]] = []
  for path, run in zip(paths, runs):
    keyed = {}
    for pred in run:
      where = f"question {pred.qid!r} ({pred.lang})"
      if pred.passage_ids is None:
        raise DataFormatError(path, None, f"{where}: pids",
                              "is missing: fusion matches passages by id")
      if len(set(pred.passage_ids)) != len(pred.passage_ids):
        raise DataFormatError(path, None, f"{where}: pids", "lists a passage twice")
      if (pred.qid, pred.lang) in keyed:
        raise DataFormatError(path, None, where, "appears twice")
      keyed[(pred.qid, pred.lang)] = pred
    if by_key and keyed.keys() != by_key[0].keys():
      missing = sorted(by_key[0].keys() - keyed.keys())[:3]
      extra = sorted(keyed.keys() - by_key[0].keys())[:3]
      raise DataFormatError(path, None, None, f"covers other questions than {paths[0]} "
                            f"(missing e.g. {missing}, extra e.g. {extra})")
    by_key.append(keyed)
  fused = []
  for key in by_key[0]:
    texts: dict[str, str] = {}
    for path, keyed in zip(paths, by_key):
      for pid, text in zip(keyed[key].passage_ids, keyed[key].passage_texts):
        if texts.setdefault(pid, text) != text:
          raise DataFormatError(path, None, f"question {key[0]!r}: pids",
                                f"passage {pid!r} has another text than in an earlier run")
    ranking = fuse_rankings([keyed[key].passage_ids for keyed in by_key], method, k)
    ranking = ranking[:top_k] if top_k is not None else ranking
    fused.append(RetrievalPrediction(key[0], key[1], [texts[pid] for pid in ranking], ranking))
  return fused
