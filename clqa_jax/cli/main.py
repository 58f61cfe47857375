"""The ``clqa`` console script: one entry point, one module per subcommand.

Subcommand modules are imported lazily so that ``clqa metrics`` does not pay for TensorFlow and
``clqa --help`` is instant. Each module defines ``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

import clqa_jax
from clqa_jax.cli import errors as cli_errors
from clqa_jax.cli import gin_flags
from clqa_jax.cli import help_format
from clqa_jax.cli import log_setup

DEBUG_FLAG = "--debug"

# Subcommands whose parsers take --gin_file / --gin.NAME=VALUE.
GIN_SUBCOMMANDS = ("demo", "train", "aot", "eval", "infer", "index", "synth", "inspect", "rounds")

# name -> (module, one-line help). The order is the order --help lists them in.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("clqa_jax.cli.demo_cmd", "run the whole pipeline on the embedded mini corpus"),
    "train": ("clqa_jax.cli.train_cmd", "train a model (gin-configured: stage 1, stage 2, fine-tuning)"),
    "aot": ("clqa_jax.cli.aot_cmd", "compile a run's train step for a TPU topology: does it fit?"),
    "eval": ("clqa_jax.cli.eval_cmd", "evaluate an exported checkpoint on XOR-Retrieve / XOR-Full / MKQA"),
    "infer": ("clqa_jax.cli.infer_cmd", "answer questions with an exported checkpoint"),
    "index": ("clqa_jax.cli.index_cmd", "encode a passage corpus and build a search index"),
    "synth": ("clqa_jax.cli.synth_cmd", "synthetic supervision pipelines (Apache Beam)"),
    "inspect": ("clqa_jax.cli.inspect_cmd", "per-language rates, lengths and samples of a task or mixture"),
    "import": ("clqa_jax.cli.import_cmd", "import external checkpoints (Hugging Face mT5, official CLASS, T5X mT5)"),
    "export": ("clqa_jax.cli.export_cmd", "export a training checkpoint for evaluation"),
    "bm25": ("clqa_jax.cli.bm25_cmd", "Lucene BM25 baseline: a retrieval prediction file"),
    "rounds": ("clqa_jax.cli.rounds_cmd", "UMR or self-training rounds, gin-configured, resumable"),
    "rerank": ("clqa_jax.cli.rerank_cmd", "UMR: re-rank retrieved lists by a query-likelihood mT5 (cached scores)"),
    "xpaq": ("clqa_jax.cli.xpaq_cmd", "LEXA: keep the PAQ questions nearest to the XOR questions"),
    "fuse": ("clqa_jax.cli.fuse_cmd", "fuse retrieval prediction files (rank averaging, RRF)"),
    "metrics": ("clqa_jax.cli.metrics_cmd", "official-semantics metrics on prediction files"),
    "vocab": ("clqa_jax.cli.vocab_cmd", "train a small SentencePiece vocabulary"),
}


class OneLineErrorParser(argparse.ArgumentParser):
  """A usage error is ``clqa <command>: error: <message>; see ... --help`` and exit 2, the form
  of every other clqa error (argparse prints the whole usage block)."""

  def error(self, message: str):
    self.exit(cli_errors.INPUT_ERROR_EXIT,
              f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="clqa",
      description=(
          "clqa-jax: cross-lingual open-domain QA with one mT5 retriever-reader (CLASS)."),
      epilog=(
          f"These subcommands take --gin_file (repeatable) and --gin.NAME=VALUE bindings: "
          f"{', '.join(n for n in SUBCOMMANDS if n in GIN_SUBCOMMANDS)}.\n"
          "Every subcommand takes --log_level (DEBUG, INFO, WARNING, ERROR) and -h.\n"
          "An input or usage error is one line on stderr and exit status 2; --debug (before "
          f"or after COMMAND) or {cli_errors.DEBUG_ENV}=1 shows its traceback."),
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument("--version", action="version", version=f"clqa {clqa_jax.__version__}",
                      help="print the package version")
  parser.add_argument(DEBUG_FLAG, action="store_true",
                      help="show the traceback of an error (also CLQA_DEBUG=1)")
  sub = parser.add_subparsers(dest="command", metavar="COMMAND")
  for name, (module_name, help_text) in SUBCOMMANDS.items():
    sub.add_parser(name, help=help_text, add_help=False)
  return parser


def build_subcommand_parser(name: str, module) -> argparse.ArgumentParser:
  """The parser of one subcommand: the module's arguments plus --log_level."""
  parser = OneLineErrorParser(prog=f"clqa {name}", description=SUBCOMMANDS[name][1],
                              formatter_class=help_format.DefaultsHelpFormatter)
  module.add_arguments(parser)
  log_setup.add_log_level_argument(parser)
  return parser


def main(argv: list[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  debug = DEBUG_FLAG in argv or cli_errors.debug_requested()
  argv = [a for a in argv if a != DEBUG_FLAG]
  if not argv or argv[0] in ("-h", "--help"):
    build_parser().print_help()
    return 0
  if argv[0] == "--version":
    print(f"clqa {clqa_jax.__version__}")
    return 0
  name, rest = argv[0], argv[1:]
  if name not in SUBCOMMANDS:
    print(f"clqa: error: unknown command {name!r}; choose one of: {', '.join(SUBCOMMANDS)}",
          file=sys.stderr)
    return cli_errors.INPUT_ERROR_EXIT
  module_name = SUBCOMMANDS[name][0]
  try:
    module = importlib.import_module(module_name)
  except ModuleNotFoundError as e:
    if e.name == module_name:
      return cli_errors.report(name, "this subcommand is not available in this build")
    raise
  parser = build_subcommand_parser(name, module)
  if name in GIN_SUBCOMMANDS:
    try:
      rest, gin_bindings = gin_flags.split_gin_bindings(rest)
    except ValueError as e:
      parser.error(str(e))
  else:
    gin_bindings = []
  args = parser.parse_args(rest)
  if gin_bindings:
    args.gin_bindings = list(getattr(args, "gin_bindings", []) or []) + gin_bindings
  log_setup.configure_logging(args.log_level)
  return cli_errors.run_reporting_errors(name, module.run, args, debug=debug)


if __name__ == "__main__":
  sys.exit(main())
