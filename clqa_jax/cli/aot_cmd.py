"""``clqa aot``: will this run fit a TPU slice? Compile its train step ahead of time and see.

    clqa aot --gin_file=experiments/xor_retrieve_mlqa_pt.gin --topology v4-32

Takes the same gin files and bindings as ``clqa train`` (MODEL_DIR and the data paths may be
left out: nothing is read or written). The step is built exactly as ``clqa train`` builds it
and compiled by libtpu for the named slice on this machine, from abstract shapes. Prints the
per-chip memory, FLOPs, ideal step time and the largest shards; exit status 0 when the step
fits in HBM (with ``--headroom`` to spare), 1 when it does not, 2 on a usage error.

libtpu is not a dependency: ``make libtpu`` installs it into ``.libtpu/``, which this command
puts on the import path by itself (or set ``CLQA_LIBTPU_DIR``).
"""
from __future__ import annotations

import argparse
import os
import re
import sys

from clqa_jax import gin_utils
from clqa_jax.cli import gin_flags
from clqa_jax.cli import outputs
from clqa_jax.cli.errors import UsageError

EXIT_DOES_NOT_FIT = 1

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def add_arguments(parser: argparse.ArgumentParser) -> None:
  gin_flags.add_gin_arguments(parser)
  parser.add_argument("--topology", required=True,
                      help="TPU slice as Cloud TPU names it: v4-8 ... v4-512, v5p-8 ..., "
                           "v5e-4 ... (v4/v5p sizes count TensorCores, v5e sizes chips)")
  parser.add_argument("--headroom", type=float, default=0.0,
                      help="fraction of HBM that must stay free for the step to count as "
                           "fitting (0.1: at most 90%% of HBM)")
  parser.add_argument("--json", default=None,
                      help="also write the report as JSON to this path (local or gs://)")


def _use_libtpu(topology: str) -> None:
  """Makes libtpu importable and keeps JAX's default backend on the CPU."""
  libtpu_dir = os.environ.get("CLQA_LIBTPU_DIR", os.path.join(_REPO, ".libtpu"))
  if os.path.isdir(libtpu_dir) and libtpu_dir not in sys.path:
    sys.path.insert(0, libtpu_dir)
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  os.environ.setdefault("TPU_ACCELERATOR_TYPE", topology)
  os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")


_REQUIRED_MACRO = re.compile(r"^(\w+)/macro\.value set to `%gin\.REQUIRED`")


def _parse_with_placeholder_paths(gin_files: list[str], bindings: list[str]) -> None:
  """Parses the run's gin; the macros it requires (MODEL_DIR, data directories: nothing is
  read or written here) get empty placeholders unless the command line binds them."""
  import gin  # pylint: disable=g-import-not-at-top

  placeholders: list[str] = []
  for _ in range(32):
    gin.clear_config()
    try:
      gin_utils.parse_gin(gin_files, bindings + placeholders)
      return
    except ValueError as e:
      missing = _REQUIRED_MACRO.match(str(e))
      if missing is None:
        raise
      placeholders.append(f"{missing.group(1)} = ''")
  raise ValueError(f"too many required gin macros: {placeholders}")


def run(args: argparse.Namespace) -> int:
  if not args.gin_file:
    raise UsageError("give at least one --gin_file (the run's experiment file)")
  if not 0.0 <= args.headroom < 1.0:
    raise UsageError(f"--headroom must be in [0, 1), got {args.headroom}")
  if args.json:
    outputs.check_writable("--json", args.json, is_file=True)
  _use_libtpu(args.topology)
  from clqa_jax import fileio  # pylint: disable=g-import-not-at-top
  from clqa_jax.trainer import aot  # pylint: disable=g-import-not-at-top
  from clqa_jax.trainer import loop  # pylint: disable=g-import-not-at-top
  from clqa_jax.trainer import register_configurables  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import

  try:
    aot.parse_topology(args.topology)
  except ValueError as e:
    raise UsageError(f"--topology: {e}") from e
  _parse_with_placeholder_paths(args.gin_file, list(args.gin_bindings or []))
  report = loop.train(compile_only_on=args.topology)
  print(report.format())
  fits = report.total_bytes <= (1.0 - args.headroom) * report.hbm_bytes
  if args.headroom:
    print(f"headroom {100 * args.headroom:.0f}%: "
          f"{'kept' if fits else 'not kept'} ({100 * (1 - report.hbm_fraction):.1f}% free)")
  if args.json:
    fileio.atomic_write(args.json, report.to_json() + "\n")
  return 0 if fits else EXIT_DOES_NOT_FIT
