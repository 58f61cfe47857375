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

Over several processes (``jax.distributed``, e.g. one per TPU host, with a shared ``--work_dir``)
each process encodes its share of the documents and mines for its shard of the groups, writing
``work_dir/shards/mined-<i>-of-<n>.json``; process 0 merges them into ``--out``. A rerun resumes:
the finished encoding and shard files are reused.
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


def nearest_other(vectors_ND: np.ndarray, query_rows: np.ndarray | None = None) -> np.ndarray:
  """Row of each query vector's nearest other vector by dot product (ties: the lower row)
  -> [Q] (``query_rows`` [Q]: the rows asking, default all N)."""
  n = vectors_ND.shape[0]
  if n < 2:
    raise ValueError(f"nearest_other needs at least 2 vectors, got {n}")
  queries = np.arange(n) if query_rows is None else np.asarray(query_rows, np.int64)
  vectors = np.asarray(vectors_ND, np.float32)
  _, rows = exact.exact_topk(vectors[queries], vectors, 2)
  # Self is at most one of the two best; the other is the nearest other row.
  first_not_self = rows[:, 0] == queries
  return np.where(first_not_self, rows[:, 1], rows[:, 0])


def same_language_nn_fraction(vectors_ND: np.ndarray, langs_N: Sequence[str]) -> float:
  """The fraction of documents whose nearest other document shares their language."""
  langs = np.asarray(langs_N)
  if langs.shape != (vectors_ND.shape[0],):
    raise ValueError(f"one language per vector: {langs.shape} vs {vectors_ND.shape}")
  return float(np.mean(langs[nearest_other(vectors_ND)] == langs))


def mine_hard_negatives(vectors_ND: np.ndarray, topics_N: Sequence[str], per_group: int = 3,
                        query_rows: np.ndarray | None = None
                        ) -> dict[str, list[tuple[int, float]]]:
  """topic -> its ``per_group`` nearest other-topic rows [(row, score)], best first, for the
  topics of ``query_rows`` (default: every row; a shard passes whole topics).

  A candidate's score is its best dot product with any document of the group; every document
  searches its top (largest group + per_group), enough to hold per_group other-topic rows.
  """
  topics = np.asarray(topics_N)
  n = vectors_ND.shape[0]
  queries = np.arange(n) if query_rows is None else np.asarray(query_rows, np.int64)
  sizes = collections.Counter(topics.tolist())
  k = min(n, max(sizes.values()) + per_group)
  vectors = np.asarray(vectors_ND, np.float32)
  scores, rows = exact.exact_topk(vectors[queries], vectors, k)
  best: dict[str, dict[int, float]] = collections.defaultdict(dict)
  for i, q in enumerate(queries):
    mine = best[topics[q]]
    for s, r in zip(scores[i], rows[i]):
      if topics[r] != topics[q] and s > mine.get(int(r), -np.inf):
        mine[int(r)] = float(s)
  return {t: sorted(best[t].items(), key=lambda rs: (-rs[1], rs[0]))[:per_group]
          for t in dict.fromkeys(topics[queries].tolist())}


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
  """Passage vectors float32 [N, D] of every row: each process encodes its contiguous share
  (``refresh.host_corpus_range``) into the shared ``work_dir``, then every process reads all
  of them (the searches of every shard of queries run over the whole set)."""
  mesh = refresh.params_mesh(params)
  axes = refresh._data_axes(mesh)  # pylint: disable=protected-access
  data_size = int(np.prod([mesh.shape[a] for a in axes]))
  lo, hi = refresh.host_corpus_range(len(tokens_NL))
  encode_lib.encode_corpus(
      model_encoders.passage_encode_fn(model), [(np.arange(lo, hi), tokens_NL[lo:hi])],
      work_dir, params=params, fingerprint=fingerprint,
      global_batch_size=-(-batch_size // data_size) * data_size, mesh=mesh, data_axes=axes,
      dtype="float16", progress=False)
  refresh._barrier(f"lexa_mining_encoded:{work_dir}")  # pylint: disable=protected-access
  rows, emb = shards_lib.load_embeddings(work_dir, np.float32)
  if not np.array_equal(rows, np.arange(len(tokens_NL))):
    raise shards_lib.ShardError(f"{work_dir}: the encoded rows are not the {len(tokens_NL)} "
                                "documents (a stale encoding: remove the directory)")
  return np.asarray(emb, np.float32)


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


def shard_groups(num_groups: int, shard: int, num_shards: int) -> range:
  """The contiguous groups [lo, hi) one of ``num_shards`` query shards mines for."""
  if not 0 <= shard < num_shards:
    raise ValueError(f"shard {shard} is not in [0, {num_shards})")
  return range(shard * num_groups // num_shards, (shard + 1) * num_groups // num_shards)


def shard_path(work_dir: str, shard: int, num_shards: int) -> str:
  return fileio.join(work_dir, "shards", f"mined-{shard:05d}-of-{num_shards:05d}.json")


def mine_shard(vectors_ND: np.ndarray, groups: Sequence[Sequence[Any]], work_dir: str,
               shard: int, num_shards: int, *, per_group: int = 3,
               with_negatives: bool = True, fingerprint: Any = None) -> dict[str, Any]:
  """Mines for one shard of the groups (their documents are the queries, every document a
  candidate) and writes the result to ``shard_path`` (atomically); an existing shard file of
  the same ``fingerprint`` and settings is read back instead of recomputed (resumption), one of
  others is an error. -> {"lines": [...], "same_language": int, "documents": int, "identity"}."""
  path = shard_path(work_dir, shard, num_shards)
  identity = json.loads(json.dumps({"fingerprint": fingerprint, "per_group": per_group,
                                    "negatives": with_negatives, "groups": len(groups)}))
  if fileio.exists(path):
    done = fileio.read_json(path)
    if done.get("identity") != identity:
      raise ValueError(f"{path} was mined with {done.get('identity')}, not {identity}: use "
                       "another work_dir or remove it")
    logger.info("LEXA mining: shard %d of %d is done (%s)", shard, num_shards, path)
    return done
  documents = [d for g in groups for d in g]
  starts = np.cumsum([0] + [len(g) for g in groups])
  mine_groups = shard_groups(len(groups), shard, num_shards)
  query_rows = np.arange(starts[mine_groups.start], starts[mine_groups.stop], dtype=np.int64)
  langs = np.asarray([d.lang for d in documents])
  same = 0
  if len(query_rows):
    same = int(np.sum(langs[nearest_other(vectors_ND, query_rows)] == langs[query_rows]))
  lines = []
  if with_negatives and len(query_rows):
    mined = mine_hard_negatives(vectors_ND, [d.topic_id for d in documents], per_group,
                                query_rows)
    for g in mine_groups:
      picks = mined[groups[g][0].topic_id]
      lines.append(json.dumps({
          "topic_id": groups[g][0].topic_id,
          "negatives": [{"topic_id": documents[r].topic_id, "lang": documents[r].lang}
                        for r, _ in picks],
          "scores": [round(s, 6) for _, s in picks]}, ensure_ascii=False))
  result = {"lines": lines, "same_language": same, "documents": int(len(query_rows)),
            "identity": identity}
  fileio.makedirs(fileio.dirname(path))
  fileio.atomic_write(path, json.dumps(result, ensure_ascii=False))
  return result


def merge_shards(work_dir: str, num_shards: int, out_path: str | None) -> tuple[int, int, int]:
  """Concatenates the shard files in shard (= group) order into ``out_path`` (atomically) ->
  (same-language documents, documents, negatives)."""
  same = documents = negatives = 0
  lines: list[str] = []
  for shard in range(num_shards):
    path = shard_path(work_dir, shard, num_shards)
    if not fileio.exists(path):
      raise FileNotFoundError(f"LEXA mining shard {shard} of {num_shards} is missing: {path}")
    result = fileio.read_json(path)
    same += result["same_language"]
    documents += result["documents"]
    lines.extend(result["lines"])
    negatives += sum(len(json.loads(line)["negatives"]) for line in result["lines"])
  if out_path is not None:
    fileio.atomic_write(out_path, "\n".join(lines) + "\n")
  return same, documents, negatives


def mine(model: UnifiedModel, params: Any, groups: Sequence[Sequence[Any]], vocab_path: str,
         work_dir: str, *, out_path: str | None = None, per_group: int = 3,
         fingerprint: dict[str, Any] | None = None) -> MiningReport:
  """Encodes every group's documents with ``params``, reports the same-language-NN fraction and,
  with ``out_path``, writes each group's mined negatives there (atomically).

  Over ``jax.process_count()`` processes: each encodes its share of the documents and mines for
  its shard of the groups (``mine_shard``, written under ``work_dir/shards``); process 0 merges
  the shards (``merge_shards``). A rerun reuses the finished encoding and shard files.
  """
  check_model(model, "lexa_mining.mine model")
  documents = [d for g in groups for d in g]
  tokens = paragraph_tokens(documents, vocab_path)
  fingerprint = fingerprint or {"mining": work_dir}
  vectors = encode_paragraphs(model, params, tokens, fileio.join(work_dir, "embeddings"),
                              fingerprint=fingerprint)
  shard, num_shards = jax.process_index(), jax.process_count()
  mine_shard(vectors, groups, work_dir, shard, num_shards, per_group=per_group,
             with_negatives=out_path is not None, fingerprint=fingerprint)
  refresh._barrier(f"lexa_mining_shards:{work_dir}")  # pylint: disable=protected-access
  same, counted, negatives = merge_shards(work_dir, num_shards,
                                          out_path if shard == 0 else None)
  refresh._barrier(f"lexa_mining_merged:{work_dir}")  # pylint: disable=protected-access
  report = MiningReport(len(groups), counted, same / max(counted, 1), negatives, out_path)
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
  from clqa_jax.partitioning import maybe_initialize_distributed  # pylint: disable=g-import-not-at-top
  maybe_initialize_distributed()  # several processes: before any device use
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
