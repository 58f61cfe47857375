"""BM25 engines on the scaled-up mini corpus: index build and query speed, bm25s vs rank-bm25.

    python benchmarks/bm25.py                                # about 75 s on 2 busy cores
    python benchmarks/bm25.py --synthetic_entities 50000 --num_queries 1000 --langs fi ja

Generates the miniwiki corpus (``miniwiki.generate``, --synthetic_entities entities; one passage
per article, "title text", links stripped) and, per language, its dev questions in that
language as queries. The per-language analyzer (``index.bm25_analyzers``) runs once and its time
is reported apart; both engines then get the same term lists, k1 = 0.9, b = 0.4, top 100:
  * bm25s 0.3.16 (``method="lucene"``, what ``clqa bm25`` uses): ``index`` build, then per query
    ``get_scores`` + ``index.exact.scores_topk`` (``Bm25Index.search``'s path), and its own
    batched ``retrieve`` (numpy backend);
  * rank-bm25 0.2.2 (``BM25Okapi``; benchmark only, not a requirement): constructor build, then
    per query ``get_scores`` + the same top-k. Its formula differs (idf floored at
    epsilon * mean idf, tf part times k1 + 1), so the top-10 overlap with bm25s is shown, not
    asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--synthetic_entities", type=int, default=20000)
  p.add_argument("--num_queries", type=int, default=500)
  p.add_argument("--k", type=int, default=100)
  p.add_argument("--langs", nargs="+", default=["fi", "ja"])
  return p.parse_args(argv)


def load_corpus(out_dir: str, langs: list[str], num_queries: int):
  """{lang: (documents, questions)} from a generated miniwiki."""
  from clqa_jax import fileio
  from clqa_jax.data import readers
  from clqa_jax.data import wikipedia
  questions: dict[str, list[str]] = {lang: [] for lang in langs}
  for q in readers.read_xor_jsonl(fileio.join(out_dir, "xor", "xor_dev_full.jsonl")):
    if q.lang in questions and len(questions[q.lang]) < num_queries:
      questions[q.lang].append(q.question)
  corpus = {}
  for lang in langs:
    docs = [f"{a.title} {a.text}"
            for path in wikipedia.article_files(fileio.join(out_dir, "articles", lang))
            for a in wikipedia.read_articles(path, lang)]
    corpus[lang] = (docs, questions[lang])
  return corpus


def timed(fn):
  t = time.perf_counter()
  out = fn()
  return time.perf_counter() - t, out


def bench_language(lang: str, docs: list[str], questions: list[str], k: int) -> None:
  import bm25s
  import rank_bm25
  from clqa_jax.index import bm25_analyzers
  from clqa_jax.index import exact

  analyze = bm25_analyzers.analyzer_for(lang)
  analyze_s, doc_terms = timed(lambda: [analyze(d) for d in docs])
  query_terms = [analyze(q) for q in questions]
  n_terms = sum(map(len, doc_terms))
  print(f"{lang}: {len(docs)} passages, {n_terms} terms ({n_terms / len(docs):.0f}/passage), "
        f"{len(questions)} queries; analyzer {analyze_s:.1f}s "
        f"({len(docs) / analyze_s:.0f} passages/s: {bm25_analyzers.analyzer_name(lang)})",
        flush=True)
  kk = min(k, len(docs))

  def topk(scores):
    return exact.scores_topk(np.asarray(scores, np.float32)[None], kk)[1][0]

  def bm25s_build():
    retriever = bm25s.BM25(k1=0.9, b=0.4, method="lucene")
    retriever.index(doc_terms, show_progress=False)
    return retriever
  build_s, retriever = timed(bm25s_build)
  vocab = retriever.vocab_dict
  known = [[t for t in q if t in vocab] or [""] for q in query_terms]
  query_s, bm25s_rows = timed(lambda: [topk(retriever.get_scores(q)) for q in known])
  retrieve_s, _ = timed(lambda: retriever.retrieve(known, k=kk, show_progress=False))
  print(f"  bm25s      build {build_s:7.2f}s  get_scores+top-k {len(known) / query_s:9.1f} q/s"
        f"  retrieve (batched) {len(known) / retrieve_s:9.1f} q/s", flush=True)

  build_s, okapi = timed(lambda: rank_bm25.BM25Okapi(doc_terms, k1=0.9, b=0.4))
  query_s, okapi_rows = timed(lambda: [topk(okapi.get_scores(q)) for q in query_terms])
  print(f"  rank-bm25  build {build_s:7.2f}s  get_scores+top-k {len(query_terms) / query_s:9.1f}"
        f" q/s", flush=True)
  overlap = np.mean([len(set(a[:10]) & set(b[:10])) / 10
                     for a, b in zip(bm25s_rows, okapi_rows)])
  print(f"  top-10 overlap bm25s (Lucene) vs rank-bm25 (Okapi): {overlap:.3f}", flush=True)


def main(argv=None) -> int:
  args = parse_args(argv)
  from clqa_jax.miniwiki import generate
  with tempfile.TemporaryDirectory() as out_dir:
    t, counts = timed(lambda: generate.generate_corpus(out_dir, args.synthetic_entities))
    print(f"miniwiki with {args.synthetic_entities} synthetic entities in {t:.1f}s: "
          f"{json.dumps({l: counts[f'articles.{l}'] for l in args.langs})} articles; "
          f"load average {os.getloadavg()}", flush=True)
    corpus = load_corpus(out_dir, args.langs, args.num_queries)
  for lang in args.langs:
    bench_language(lang, *corpus[lang], args.k)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
