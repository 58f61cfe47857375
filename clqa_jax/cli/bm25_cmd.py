"""``clqa bm25``: the Lucene BM25 baseline, written as a retrieval prediction file.

  clqa bm25 --corpus psgs.tsv --questions xor_dev.jsonl --out PRED.json [--lang en]
  clqa bm25 --corpus ja=ja.tsv --corpus ko=ko.tsv ... --questions q.jsonl --out PRED.json

One bare --corpus builds one index (analyzed as --lang) that serves every question; LANG=TSV
corpora build one index per language and each question searches the index of its ``lang`` field
(the source's "oracle BM25"). PRED.json has the format of ``clqa eval``'s
xor_retrieve_predictions.json ([{"id", "lang", "ctxs": [text, ...], "pids": [...]}]), so
``clqa metrics xor-retrieve`` and ``clqa fuse`` read it unchanged. The index lives in memory only.
"""
from __future__ import annotations

import argparse
import re
import sys
import time

_LANG_PREFIX = re.compile(r"^([a-z]{2,3}(?:_[a-z]{2})?)=(.+)$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.description = __doc__
  parser.formatter_class = argparse.RawDescriptionHelpFormatter
  parser.add_argument("--corpus", required=True, action="append", metavar="[LANG=]TSV",
                      help="passage TSV (id, text, title); LANG=TSV for a per-language index "
                           "(repeatable)")
  parser.add_argument("--questions", required=True,
                      help="XOR-TyDi JSONL (id, lang, question[, answers])")
  parser.add_argument("--out", required=True, help="retrieval prediction JSON to write")
  parser.add_argument("--lang", default="en",
                      help="analyzer of a bare --corpus (and of the questions it serves)")
  parser.add_argument("--top_k", type=int, default=100, help="passages per question")
  parser.add_argument("--k1", type=float, default=0.9, help="BM25 k1 (Pyserini default)")
  parser.add_argument("--b", type=float, default=0.4, help="BM25 b (Pyserini default)")
  parser.add_argument("--skip_errors", action="store_true",
                      help="skip malformed passage rows / question records (counted)")
  parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def parse_corpora(specs: list[str], default_lang: str) -> dict[str | None, tuple[str, str]]:
  """[LANG=]TSV specs -> {LANG or None: (analyzer language, path)}."""
  corpora: dict[str | None, tuple[str, str]] = {}
  for spec in specs:
    match = _LANG_PREFIX.match(spec)
    key, analyzer_lang, path = ((match[1], match[1], match[2]) if match
                                else (None, default_lang, spec))
    if key in corpora:
      raise ValueError(f"--corpus {spec!r}: a second corpus for "
                       f"{'every question' if key is None else key!r}")
    corpora[key] = (analyzer_lang, path)
  if None in corpora and len(corpora) > 1:
    raise ValueError("--corpus: give either one bare TSV or LANG=TSV corpora, not both")
  return corpora


def run(args: argparse.Namespace) -> int:
  from clqa_jax.data.errors import DataFormatError
  try:
    return _run(args)
  except DataFormatError:
    raise  # reported by cli.errors
  except (FileExistsError, ValueError) as e:
    print(f"clqa bm25: error: {e}", file=sys.stderr)
    return 2


def _run(args: argparse.Namespace) -> int:
  from clqa_jax.data import readers
  from clqa_jax.data.errors import SkipStats
  from clqa_jax.eval import prediction_files
  from clqa_jax.eval import xor_retrieve
  from clqa_jax.index import bm25
  from clqa_jax.index import bm25_analyzers

  if args.top_k < 1:
    raise ValueError(f"--top_k must be >= 1, got {args.top_k}")
  corpora = parse_corpora(args.corpus, args.lang)
  if not args.overwrite and _exists(args.out):
    raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it")
  q_stats = SkipStats()
  questions = list(readers.read_xor_jsonl(args.questions, require_answers=False,
                                          skip_errors=args.skip_errors, stats=q_stats))
  seen: set[str] = set()
  for q in questions:
    if q.qid in seen:
      raise ValueError(f"{args.questions}: id {q.qid!r} appears twice")
    seen.add(q.qid)
  indexes = {}
  for key, (lang, path) in corpora.items():
    t = time.time()
    p_stats = SkipStats()
    passages = list(readers.read_passages_tsv(path, skip_errors=args.skip_errors,
                                              stats=p_stats))
    indexes[key] = bm25.Bm25Index.build(passages, lang, args.k1, args.b)
    print(f"indexed {len(passages)} passages of {path} ({lang}: "
          f"{bm25_analyzers.analyzer_name(lang)}) in {time.time() - t:.1f}s"
          + (f"; skipped {p_stats.skipped} rows" if p_stats.skipped else ""))
  t = time.time()
  hits = bm25.retrieve_questions(indexes, questions, args.top_k, args.questions)
  print(f"searched {len(questions)} questions in {time.time() - t:.1f}s"
        + (f"; skipped {q_stats.skipped} records" if q_stats.skipped else ""))
  predictions = [xor_retrieve.RetrievalPrediction(q.qid, q.lang, [p.text for p, _ in h],
                                                  [p.pid for p, _ in h])
                 for q, h in zip(questions, hits)]
  prediction_files.write_retrieve_predictions(args.out, predictions, overwrite=args.overwrite)
  print(f"wrote {args.out}")
  return 0


def _exists(path: str) -> bool:
  from clqa_jax import fileio
  return fileio.exists(path)
