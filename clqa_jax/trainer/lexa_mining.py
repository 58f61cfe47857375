"""LEXA stage 2: hard negatives mined with the stage-1 model, and the same-language-NN probe.

Every document of the ``linked_paragraphs`` groups (unmasked, the passage template, 200 tokens)
is encoded with the model's passage encoder (``index.encode.encode_corpus`` over
``UnifiedModel.embed_passages``) and searched exactly (``index.exact``) against all the others:
- ``mine_hard_negatives``: for each group, the nearest paragraphs of *other* topics ("unlinked"
  to it) over all of its documents' neighbour lists, best score first, ``per_group`` of them
  ([REC] 3); written as the hard-negative store ``clqa.lexa_pt.mined`` reads
  (``data/topic_groups.py``);
- ``same_language_nn_fraction`` (the paper's Fig. 2b): the fraction of documents whose nearest
  other document is in their own language; weakly aligned encoders cluster by language (high),
  aligned ones by topic (low). ``mine`` reports it for the params it mines with, so running it
  on the initial and the stage-1 params gives the before/after pair.

    python -m clqa_jax.trainer.lexa_mining --export /ckpt/export --data_root /data \\
        --out /runs/lexa1/hard_negatives.jsonl
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import logging
from typing import Any, Sequence

import jax
import numpy as np

from clqa_jax import fileio
from clqa_jax.data import formats
from clqa_jax.data.passage_store import MAX_PASSAGE_TOKENS
from clqa_jax.index import encode as encode_lib
from clqa_jax.index import exact
from clqa_jax.index import model_encoders
from clqa_jax.index import shards as shards_lib
from clqa_jax.models.model_api import UnifiedModel, check_model
from clqa_jax.trainer import refresh

logger = logging.getLogger(__name__)


def nearest_other(vectors_ND: np.ndarray) -> np.ndarray:
  """Row of each vector's nearest other vector by dot product (ties: the lower row) -> [N]."""
  n = vectors_ND.shape[0]
  if n < 2:
    raise ValueError(f"nearest_other needs at least 2 vectors, got {n}")
  _, rows = exact.exact_topk(np.asarray(vectors_ND, np.float32),
                             np.asarray(vectors_ND, np.float32), 2)
  # Self is at most one of the two best; the other is the nearest other row.
  first_not_self = rows[:, 0] == np.arange(n)
  return np.where(first_not_self, rows[:, 1], rows[:, 0])


def same_language_nn_fraction(vectors_ND: np.ndarray, langs_N: Sequence[str]) -> float:
  """The fraction of documents whose nearest other document shares their language."""
  langs = np.asarray(langs_N)
  if langs.shape != (vectors_ND.shape[0],):
    raise ValueError(f"one language per vector: {langs.shape} vs {vectors_ND.shape}")
  return float(np.mean(langs[nearest_other(vectors_ND)] == langs))


def mine_hard_negatives(vectors_ND: np.ndarray, topics_N: Sequence[str], per_group: int = 3
                        ) -> dict[str, list[tuple[int, float]]]:
  """topic -> its ``per_group`` nearest other-topic rows [(row, score)], best first.

  A candidate's score is its best dot product with any document of the group; every document
  searches its top (largest group + per_group), enough to hold per_group other-topic rows.
  """
  topics = np.asarray(topics_N)
  n = vectors_ND.shape[0]
  sizes = collections.Counter(topics.tolist())
  k = min(n, max(sizes.values()) + per_group)
  vectors = np.asarray(vectors_ND, np.float32)
  scores, rows = exact.exact_topk(vectors, vectors, k)
  best: dict[str, dict[int, float]] = collections.defaultdict(dict)
  for i in range(n):
    mine = best[topics[i]]
    for s, r in zip(scores[i], rows[i]):
      if topics[r] != topics[i] and s > mine.get(int(r), -np.inf):
        mine[int(r)] = float(s)
  return {t: sorted(best[t].items(), key=lambda rs: (-rs[1], rs[0]))[:per_group]
          for t in sizes}


def paragraph_tokens(documents: Sequence[Any], vocab_path: str,
                     length: int = MAX_PASSAGE_TOKENS) -> np.ndarray:
  """``title: {t} context: {p}`` of each LinkedParagraph -> int32 [N, length] (+ EOS, 0-padded),
  the tokens ``clqa.lexa_pt`` gives the model before masking."""
  from clqa_jax.data import spm_train  # pylint: disable=g-import-not-at-top

  sp = spm_train.load_processor(vocab_path)
  out = np.zeros((len(documents), length), np.int32)
  for i, d in enumerate(documents):
    ids = sp.encode(formats.passage_text(d.title, d.text))[:length - 1] + [1]
    out[i, :len(ids)] = ids
  return out


def encode_paragraphs(model: UnifiedModel, params: Any, tokens_NL: np.ndarray, work_dir: str, *,
                      fingerprint: dict[str, Any], batch_size: int = 64) -> np.ndarray:
  """Passage vectors float32 [N, D] of every row (this process holds the whole set)."""
  if jax.process_count() > 1:
    raise NotImplementedError("LEXA mining runs on one process (the topic groups of one host)")
  mesh = refresh.params_mesh(params)
  axes = refresh._data_axes(mesh)  # pylint: disable=protected-access
  data_size = int(np.prod([mesh.shape[a] for a in axes]))
  encode_lib.encode_corpus(
      model_encoders.passage_encode_fn(model), [(np.arange(len(tokens_NL)), tokens_NL)],
      work_dir, params=params, fingerprint=fingerprint,
      global_batch_size=-(-batch_size // data_size) * data_size, mesh=mesh, data_axes=axes,
      dtype="float16", progress=False)
  rows, emb = shards_lib.load_process_shards(work_dir, 0)
  out = np.zeros((len(tokens_NL), emb.shape[1]), np.float32)
  out[rows] = np.asarray(emb[np.arange(len(rows))], np.float32)
  return out


@dataclasses.dataclass
class MiningReport:
  groups: int
  documents: int
  same_language_nn_fraction: float
  negatives: int
  path: str | None


def read_groups(pattern: str) -> list[list[Any]]:
  """The topic groups (>= 2 documents) of every ``linked_paragraphs`` shard matching ``pattern``."""
  from clqa_jax.data import readers  # pylint: disable=g-import-not-at-top
  from clqa_jax.data import topic_groups  # pylint: disable=g-import-not-at-top

  files = readers.expand_shards(pattern)
  if not files:
    raise FileNotFoundError(f"no linked_paragraphs shards match {pattern}")
  return [g for f in files for g in topic_groups.read_topic_groups(f) if len(g) >= 2]


def mine(model: UnifiedModel, params: Any, groups: Sequence[Sequence[Any]], vocab_path: str,
         work_dir: str, *, out_path: str | None = None, per_group: int = 3,
         fingerprint: dict[str, Any] | None = None) -> MiningReport:
  """Encodes every group's documents with ``params``, reports the same-language-NN fraction and,
  with ``out_path``, writes each group's mined negatives there (atomically)."""
  check_model(model, "lexa_mining.mine model")
  documents = [d for g in groups for d in g]
  tokens = paragraph_tokens(documents, vocab_path)
  vectors = encode_paragraphs(model, params, tokens, fileio.join(work_dir, "embeddings"),
                              fingerprint=fingerprint or {"mining": work_dir})
  fraction = same_language_nn_fraction(vectors, [d.lang for d in documents])
  negatives = 0
  if out_path is not None:
    mined = mine_hard_negatives(vectors, [d.topic_id for d in documents], per_group)
    lines = []
    for group in groups:
      picks = mined[group[0].topic_id]
      negatives += len(picks)
      lines.append(json.dumps({
          "topic_id": group[0].topic_id,
          "negatives": [{"topic_id": documents[r].topic_id, "lang": documents[r].lang}
                        for r, _ in picks],
          "scores": [round(s, 6) for _, s in picks]}, ensure_ascii=False))
    fileio.atomic_write(out_path, "\n".join(lines) + "\n")
  report = MiningReport(len(groups), len(documents), fraction, negatives, out_path)
  logger.info("LEXA mining: %s", report)
  return report


def main(argv: Sequence[str] | None = None) -> int:
  from clqa_jax.checkpoints.exported import load_exported  # pylint: disable=g-import-not-at-top

  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--export", required=True, help="an exported checkpoint (clqa export)")
  parser.add_argument("--data_root", required=True, help="holds linked_paragraphs/")
  parser.add_argument("--out", default=None, help="hard_negatives.jsonl to write (omit: probe)")
  parser.add_argument("--work_dir", default=None, help="scratch (default: next to --out)")
  parser.add_argument("--per_group", type=int, default=3)
  args = parser.parse_args(argv)
  config, params, vocab_path, _ = load_exported(args.export)
  groups = read_groups(fileio.join(args.data_root, "linked_paragraphs",
                                   "paragraphs.jsonl-*-of-*"))
  work = args.work_dir or fileio.join(fileio.dirname(args.out or args.export), "lexa_mining")
  report = mine(UnifiedModel.from_config(config), params, groups, vocab_path, work,
                out_path=args.out, per_group=args.per_group, fingerprint={"export": args.export})
  print(json.dumps(dataclasses.asdict(report), indent=2))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
