"""``clqa rerank``: UMR's re-ranking of retrieved top-N lists by a query-likelihood teacher.

  clqa rerank --retrieval RUN/retrieval --questions xor_train.jsonl \\
      --teacher mt5-xl-lm-adapt/ --out RUN/reranked [--cache RUN/score_cache]

--retrieval is a RetrievalStore (the refresh's or a round's, with LATEST) or a directory of
per-process stores (process_<i>/). Every (question, passage) pair of the latest lists is scored
with s_LM = mean log P("Question: q" + EOS | "Passage:  {title} {text}. Please write a question
based on this passage in {Language}.") and the lists are written, sorted by it, to --out with
the same layout. Scores are cached by (qid, pid) in --cache as they are computed: an interrupted
job resumes, and a later round scores only the pairs it has not seen. --num_shards N
--shard_index I split the questions over N workers, which only fill the cache; a run without
them then writes the stores.
"""
from __future__ import annotations

import argparse

from clqa_jax.cli.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.description = __doc__
  parser.formatter_class = argparse.RawDescriptionHelpFormatter
  parser.add_argument("--retrieval", required=True,
                      help="a RetrievalStore directory, or a directory of process_<i> stores")
  parser.add_argument("--questions", required=True,
                      help="XOR-TyDi JSONL with the text and lang of every stored qid")
  parser.add_argument("--teacher", required=True,
                      help="Hugging Face mT5 directory (e.g. mt5-xl-lm-adapt) or exported "
                           "checkpoint (clqa import hf_mt5)")
  parser.add_argument("--out", required=True, help="where the scored lists are written")
  parser.add_argument("--cache", default=None,
                      help="score cache directory (default: OUT/score_cache)")
  parser.add_argument("--teacher_vocab", default=None,
                      help="the teacher's SentencePiece model (default: its own)")
  parser.add_argument("--passage_store", default=None,
                      help="PassageStore of the lists' rows (default: the one the store's "
                           "meta.json names)")
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                      help="teacher activation dtype")
  parser.add_argument("--batch_size", type=int, default=32, help="pairs per device call")
  parser.add_argument("--num_shards", type=int, default=1, help="workers sharing the job")
  parser.add_argument("--shard_index", type=int, default=0, help="this worker's shard")
  parser.add_argument("--no_progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
  if args.num_shards < 1 or not 0 <= args.shard_index < args.num_shards:
    raise UsageError(f"--shard_index {args.shard_index} must be in [0, --num_shards "
                     f"{args.num_shards})")
  if args.batch_size < 1:
    raise UsageError(f"--batch_size must be positive, got {args.batch_size}")
  from clqa_jax import fileio  # pylint: disable=g-import-not-at-top
  from clqa_jax.data.passage_store import PassageStore  # pylint: disable=g-import-not-at-top
  from clqa_jax.index import rerank  # pylint: disable=g-import-not-at-top

  questions = rerank.read_questions(args.questions)
  teacher = rerank.load_teacher(args.teacher, vocab_path=args.teacher_vocab, dtype=args.dtype,
                                batch_size=args.batch_size)
  store = PassageStore(args.passage_store) if args.passage_store else None
  cache = args.cache or fileio.join(args.out, "score_cache")
  result = rerank.rerank(args.retrieval, args.out, teacher, questions, cache_dir=cache,
                         passage_store=store, num_shards=args.num_shards,
                         shard_index=args.shard_index, progress=not args.no_progress)
  done = ", ".join(result.written) or "nothing (cache only)" if args.num_shards > 1 else (
      ", ".join(result.written) or "nothing new")
  print(f"clqa rerank: {result.pairs} pairs, {result.scored} scored now ({teacher.calls} "
        f"teacher calls); wrote {done}"
        + (f"; already done: {', '.join(result.existing)}" if result.existing else ""))
  return 0
