"""``clqa infer``: answer questions with an exported checkpoint and its passage index.

  clqa infer --export EXPORT_DIR --index INDEX_DIR --question "日本の首都は？"
  clqa infer --export EXPORT_DIR --index INDEX_DIR --question "What is the capital?" --lang en
  clqa infer --export EXPORT_DIR --index INDEX_DIR --questions_file q.jsonl [--out a.jsonl]

Each question is encoded, the index searched (--search exact|device|scann), the reader reads
the top --reader_k passages (default: EvalConfig.reader_k of the gin files, 100; 15 with
--gin_file eval/zusammenqa.gin) and decodes greedily (max 50 tokens). The answer and
the top --show passages (rank, score, pid, title, text) are printed. A questions file is JSONL
with "question" and optionally "id" and "lang" (default: --lang, else read from the script as
for --question). --out writes one JSON line per question:
{"id", "lang", "question", "answer", "passages": [{"pid", "title", "score"}, ...]}.
"""
from __future__ import annotations

import argparse
import dataclasses
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
  from clqa_jax.cli import gin_flags
  from clqa_jax.cli import question_language

  parser.description = __doc__
  parser.formatter_class = argparse.RawDescriptionHelpFormatter
  parser.add_argument("--export", required=True, help="exported checkpoint (clqa export)")
  parser.add_argument("--index", required=True, help="passage index directory (clqa index)")
  group = parser.add_mutually_exclusive_group(required=True)
  group.add_argument("--question", default=None, help="one question")
  group.add_argument("--questions_file", default=None, help="JSONL of {id?, lang?, question}")
  parser.add_argument("--lang", default=None,
                      help="language of --question (non-English questions are normalised as in "
                           f"training); {question_language.RULE}")
  parser.add_argument("--search", choices=("exact", "device", "scann"), default="exact",
                      help="search kind (default: exact)")
  parser.add_argument("--top_k", type=int, default=None,
                      help="retrieval depth (default: EvalConfig.top_k of the gin files, 100)")
  parser.add_argument("--reader_k", type=int, default=None,
                      help="passages the reader reads (default: EvalConfig.reader_k of the gin "
                           "files, 100; eval/zusammenqa.gin: 15)")
  parser.add_argument("--show", type=int, default=3, help="passages printed per question")
  parser.add_argument("--max_answer_length", type=int, default=50, help="default: 50")
  parser.add_argument("--batch_size", type=int, default=8, help="questions per reading step")
  parser.add_argument("--out", default=None, help="also write the answers as JSONL here")
  gin_flags.add_gin_arguments(parser)


def _read_questions(args):
  from clqa_jax.cli.errors import UsageError
  from clqa_jax.data import readers
  from clqa_jax.data.errors import DataFormatError
  from clqa_jax.data.records import Question

  if args.question is not None:
    return [Question("0", args.lang, args.question, ())]
  out = list(readers.read_xor_jsonl(args.questions_file, require_answers=False,
                                    default_lang=args.lang or "", default_ids=True))
  if not out:
    raise DataFormatError(args.questions_file, None, None, "holds no questions")
  for i, q in enumerate(out):
    if not q.lang:  # no "lang" field and no --lang
      where = f"id {q.qid}: lang"
      out[i] = dataclasses.replace(q, lang=_detected_language(q.question, args.questions_file,
                                                              where))
  return out


def _detected_language(question: str, source: str, field: str) -> str:
  """The language of ``question`` by ``question_language.RULE``; an error where it is unsure."""
  from clqa_jax.cli import question_language
  from clqa_jax.cli.errors import UsageError
  lang = question_language.detect(question)
  if lang is None:
    raise UsageError(f"{source}: {field}: cannot tell the language of {question!r}: "
                     f"{question_language.why_undecided(question)}; give --lang")
  return lang


def check_arguments(args: argparse.Namespace) -> None:
  """The flag values infer rejects before loading anything."""
  from clqa_jax.cli import outputs
  from clqa_jax.cli import validate
  validate.positive(args, ("top_k", "reader_k", "max_answer_length", "batch_size"))
  if args.question is not None and not args.question.strip():
    raise validate.UsageError("--question is empty")
  if args.show < 0:
    raise validate.UsageError(f"--show must be 0 or more, got {args.show}")
  validate.languages("--lang", args.lang)
  validate.input_path("--export", args.export)
  validate.input_path("--index", args.index)
  if args.questions_file:
    validate.input_file("--questions_file", args.questions_file)
  if args.out:
    outputs.check_writable("--out", args.out, is_file=True)
  if args.question is not None and args.lang is None:
    args.lang = _detected_language(args.question, "--question", "lang")


def run(args: argparse.Namespace) -> int:
  check_arguments(args)
  from clqa_jax import fileio
  from clqa_jax import gin_utils
  from clqa_jax.checkpoints import exported
  from clqa_jax.data import spm_train
  from clqa_jax.serving import corpus_index
  from clqa_jax.eval import report
  from clqa_jax.serving import runner as runner_lib
  from clqa_jax.serving.inference import ModelRunner
  from clqa_jax.partitioning import partitioner as partitioner_lib

  gin_utils.parse_gin(args.gin_file, args.gin_bindings or [], finalize=False)
  qs = _read_questions(args)
  index = corpus_index.CorpusIndex(args.index, args.export)
  runner = ModelRunner.from_export(args.export, partitioner=partitioner_lib.make_partitioner(),
                                   reader_batch_size=args.batch_size, progress=len(qs) > 1)
  sp = spm_train.load_processor(fileio.join(args.export, exported.VOCAB_FILE))
  config = runner_lib.EvalConfig()  # the gin files' depths, unless a flag sets them
  answers, retrieval = runner_lib.answer(
      runner, index, sp, qs, top_k=args.top_k or config.top_k,
      reader_k=args.reader_k or config.reader_k, search=args.search,
      max_answer_length=args.max_answer_length)
  shown = retrieval.rows[:, :args.show]
  passages = index.passages(shown[shown >= 0])
  lines = []
  for i, (q, a) in enumerate(zip(qs, answers)):
    print(f"[{q.lang}] {q.question}\n  answer: {a}")
    top = []
    for rank, (row, score) in enumerate(zip(shown[i], retrieval.scores[i])):
      if row < 0:
        continue
      p = passages[int(row)]
      print(f"  {rank + 1:>3}. {score:8.3f}  {p.pid}  {p.title}: {p.text[:160]}")
      top.append({"pid": p.pid, "title": p.title, "score": float(score)})
    lines.append(json.dumps({"id": q.qid, "lang": q.lang, "question": q.question, "answer": a,
                             "passages": top}, ensure_ascii=False))
  if args.out:
    report.atomic_write_bytes(args.out, ("\n".join(lines) + "\n").encode("utf-8"), True)
    print(f"wrote {args.out}")
  return 0
