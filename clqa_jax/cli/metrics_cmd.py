"""``clqa metrics``: the official-semantics metrics on any system's prediction files.

  clqa metrics xor-retrieve --data_file GOLD.jsonl --pred_file PRED.json [--out OUT.json]
  clqa metrics xor-full     --data_file GOLD.jsonl --pred_file PRED.json [--out OUT.json]
  clqa metrics xor-engspan  --data_file GOLD.jsonl --pred_file PRED.json [--out OUT.json]
  clqa metrics mkqa         --data_file mkqa.jsonl --pred_file PRED.json [--lang ja ...]
  clqa metrics mkqa-convert --data_file mkqa.jsonl --output_dir DIR [--lang ...]

Each prints a per-language table and the macro average; ``--out`` writes them as JSON.
"""
from __future__ import annotations

import argparse

_MAIN_HELP = {
    "xor-retrieve": "XOR-Retrieve R@2kt / R@5kt / R@100kt (eval_xor_retrieve.py semantics)",
    "xor-full": "XOR-Full F1 / EM / BLEU (eval_xor_full.py semantics)",
    "xor-engspan": "XOR-EnglishSpan F1 / EM (eval_xor_engspan.py semantics)",
    "mkqa": "MKQA F1 / EM / BLEU per language from the raw MKQA JSONL (eval_mkqa_all.py)",
    "mkqa-convert": "convert raw MKQA JSONL to XOR-format input_{lang}.jsonl files",
}


def _add_io(parser: argparse.ArgumentParser, gold_help: str, pred_help: str) -> None:
  parser.add_argument("--data_file", required=True, help=gold_help)
  parser.add_argument("--pred_file", required=True, help=pred_help)
  parser.add_argument("--out", default=None, help="write the per-language scores here as JSON")
  parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def add_arguments(parser: argparse.ArgumentParser) -> None:
  from clqa_jax.cli import help_format
  sub = parser.add_subparsers(dest="metric", metavar="METRIC", required=True,
                              help="the metric to compute")
  fmt = help_format.DefaultsHelpFormatter
  p = sub.add_parser("xor-retrieve", help=_MAIN_HELP["xor-retrieve"], formatter_class=fmt)
  _add_io(p, "gold JSONL with id, lang, answers",
          'predictions JSON: [{"id", "lang", "ctxs": [text | {"text", ...}]}]')
  p.add_argument("--ks", type=int, nargs="+", default=[2, 5, 100],
                 help="evaluate R@{k}kt (k thousand word tokens) for these k")
  p.add_argument("--num_workers", type=int, default=1,
                 help="processes for word tokenization (the slow part)")
  p = sub.add_parser("xor-full", help=_MAIN_HELP["xor-full"], formatter_class=fmt)
  _add_io(p, "gold JSONL with id, lang, answers", "predictions JSON {id: answer}")
  p.add_argument("--txt_file", action="store_true",
                 help="--pred_file is plain text, one answer per line in --data_file order")
  p = sub.add_parser("xor-engspan", help=_MAIN_HELP["xor-engspan"], formatter_class=fmt)
  _add_io(p, "gold JSONL with id, lang, answers (English)",
          'predictions JSON {id: answer} (or {id: {"answer": ...}})')
  p = sub.add_parser("mkqa", help=_MAIN_HELP["mkqa"], formatter_class=fmt)
  _add_io(p, "raw MKQA JSONL (example_id, queries, answers)",
          "predictions: JSON {lang: {id: answer}}, JSON {id: answer} with one --lang, "
          "or a directory of {lang}.json files")
  p.add_argument("--lang", nargs="+", default=None,
                 help="languages to evaluate (default: those of eval_mkqa_all.py's 26 that the "
                      "predictions cover; languages asked for but not predicted score 0)")
  p.add_argument("--mia_segmentation", action="store_true",
                 help="also segment zh_cn/zh_hk/zh_tw/th/km (grapheme level) before F1/EM")
  p = sub.add_parser("mkqa-convert", help=_MAIN_HELP["mkqa-convert"], formatter_class=fmt)
  p.add_argument("--data_file", required=True, help="raw MKQA JSONL")
  p.add_argument("--output_dir", required=True, help="writes input_{lang}.jsonl here")
  p.add_argument("--lang", nargs="+", default=None,
                 help="languages to write (default: all languages in the file)")
  p.add_argument("--keep_unanswerable", action="store_true",
                 help='keep unanswerable questions with answers ["No Answer"] (never scored)')
  p.add_argument("--overwrite", action="store_true", help="replace existing output files")


def _txt_predictions(path: str, gold) -> dict[str, str]:
  from clqa_jax import fileio
  from clqa_jax.data.errors import DataFormatError
  try:
    lines = fileio.read_text(path).split("\n")
  except OSError as e:
    raise DataFormatError(path, None, None, f"cannot open: {e.strerror or e}") from e
  # As the official --txt_file: answers pair with gold questions by position.
  return {question.qid: answer for question, answer in zip(gold, lines)}


def _evaluate(args: argparse.Namespace):
  from clqa_jax.eval import inputs
  from clqa_jax.eval import mkqa
  from clqa_jax.eval import xor_engspan
  from clqa_jax.eval import xor_full
  from clqa_jax.eval import xor_retrieve
  if args.metric == "xor-retrieve":
    gold = inputs.read_gold(args.data_file)
    predictions = xor_retrieve.read_retrieve_predictions(args.pred_file)
    return xor_retrieve.evaluate_xor_retrieve(predictions, gold, tuple(args.ks),
                                              args.num_workers, progress=True)
  if args.metric == "xor-full":
    gold = inputs.read_gold(args.data_file)
    predictions = (_txt_predictions(args.pred_file, gold) if args.txt_file
                   else inputs.read_answer_predictions(args.pred_file))
    return xor_full.evaluate_xor_full(gold, predictions)
  if args.metric == "xor-engspan":
    gold = inputs.read_gold(args.data_file)
    return xor_engspan.evaluate_xor_engspan(gold, inputs.read_answer_predictions(args.pred_file))
  if args.metric == "mkqa":
    requested = list(dict.fromkeys(args.lang)) if args.lang else None
    predictions = mkqa.read_mkqa_predictions(args.pred_file, requested or list(mkqa.MKQA_LANGS))
    langs = mkqa.select_languages(requested, predictions)
    converted = mkqa.convert_mkqa(mkqa.read_mkqa(args.data_file), langs)
    result = mkqa.evaluate_mkqa(converted, predictions, args.mia_segmentation)
    result.info["mkqa_languages_not_evaluated"] = [l for l in mkqa.MKQA_LANGS if l not in langs]
    return result
  raise ValueError(f"unknown metric {args.metric}")


def check_arguments(args: argparse.Namespace) -> None:
  """The flag values metrics rejects before reading anything."""
  from clqa_jax.cli import outputs
  from clqa_jax.cli import validate
  validate.input_file("--data_file", args.data_file)
  if args.metric == "mkqa-convert":
    validate.languages("--lang", args.lang, mkqa=True)
    outputs.check_writable("--output_dir", args.output_dir)
    return
  validate.input_path("--pred_file", args.pred_file)
  if args.metric == "xor-retrieve":
    validate.positive_list(args, "ks")
    validate.positive(args, ("num_workers",))
  if args.metric == "mkqa":
    validate.languages("--lang", args.lang, mkqa=True)
  if getattr(args, "txt_file", False):
    validate.not_json("--pred_file", args.pred_file,
                      "--txt_file reads plain text, one answer per line: drop --txt_file")
  if args.out:
    outputs.check_writable("--out", args.out, is_file=True)


def run(args: argparse.Namespace) -> int:
  from clqa_jax.eval import report
  check_arguments(args)
  if args.metric == "mkqa-convert":
    from clqa_jax.eval import mkqa
    records = mkqa.read_mkqa(args.data_file)
    langs = list(dict.fromkeys(args.lang or mkqa.languages_of(records)))
    converted = mkqa.convert_mkqa(records, langs, args.keep_unanswerable)
    for path in mkqa.write_converted(converted, args.output_dir, args.overwrite):
      print(path)
    print(f"wrote {sum(len(r) for r in converted.values())} questions in {len(langs)} "
          f"languages")
    return 0
  if args.out and not args.overwrite:
    from clqa_jax import fileio
    from clqa_jax.cli.errors import UsageError
    if fileio.exists(args.out):
      raise UsageError(f"--out {args.out} exists; pass --overwrite to replace it")
  result = _evaluate(args)
  print(report.format_text(result))
  for key, value in result.info.items():
    print(f"  {key}: {value}")
  if args.out:
    report.write_json(args.out, [result], overwrite=args.overwrite)
    print(f"wrote {args.out}")
  return 0
