"""The ``clqa`` console script: one entry point, one module per subcommand.

Subcommand modules are imported lazily so that ``clqa metrics`` does not pay for TensorFlow and
``clqa --help`` is instant. Each module defines ``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from clqa_jax.cli import errors as cli_errors
from clqa_jax.cli import gin_flags

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
    "metrics": ("clqa_jax.cli.metrics_cmd", "official-semantics metrics on prediction files"),
    "vocab": ("clqa_jax.cli.vocab_cmd", "train a small SentencePiece vocabulary"),
}


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="clqa",
      description=(
          "clqa-jax: cross-lingual open-domain QA with one mT5 retriever-reader (CLASS). "
          "Every subcommand takes --gin_file (repeatable) and --gin.NAME=VALUE bindings."),
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  sub = parser.add_subparsers(dest="command", metavar="COMMAND")
  for name, (module_name, help_text) in SUBCOMMANDS.items():
    sub.add_parser(name, help=help_text, add_help=False)
  return parser


def main(argv: list[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv or argv[0] in ("-h", "--help"):
    build_parser().print_help()
    return 0
  name, rest = argv[0], argv[1:]
  if name not in SUBCOMMANDS:
    build_parser().print_help(sys.stderr)
    print(f"\nclqa: unknown command {name!r}; choose one of: {', '.join(SUBCOMMANDS)}",
          file=sys.stderr)
    return 2
  module_name, help_text = SUBCOMMANDS[name]
  try:
    module = importlib.import_module(module_name)
  except ModuleNotFoundError as e:
    if e.name == module_name:
      print(f"clqa {name}: this subcommand is not available in this build", file=sys.stderr)
      return 2
    raise
  parser = argparse.ArgumentParser(prog=f"clqa {name}", description=help_text,
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  module.add_arguments(parser)
  rest, gin_bindings = gin_flags.split_gin_bindings(rest)
  args = parser.parse_args(rest)
  if gin_bindings:
    args.gin_bindings = list(getattr(args, "gin_bindings", []) or []) + gin_bindings
  return cli_errors.run_reporting_input_errors(name, module.run, args)


if __name__ == "__main__":
  sys.exit(main())
