"""``model-info.txt``: every parameter's path, shape, logical axes and PartitionSpec.

One line per array, then totals (global and per device). Written by process 0 only, atomically.
"""
from __future__ import annotations

import math
from typing import Sequence

import jax
import numpy as np
from jax.sharding import Mesh

from clqa_jax import fileio
from clqa_jax.partitioning.mesh import describe_mesh
from clqa_jax.partitioning.partitioner import ArrayLayout
from clqa_jax.partitioning.rules import LogicalRules, format_rules


def _fmt_logical(axes) -> str:
  if axes is None:
    return "(none)"
  return "(" + ", ".join("None" if a is None else a for a in axes) + ")"


def _per_device_shape(layout: ArrayLayout, mesh: Mesh) -> tuple[int, ...]:
  shape = list(layout.shape)
  for i, axes in enumerate(layout.spec):
    if axes is None:
      continue
    names = (axes,) if isinstance(axes, str) else tuple(axes)
    shape[i] //= math.prod(mesh.shape[n] for n in names)
  return tuple(shape)


def format_model_info(layouts: Sequence[ArrayLayout], mesh: Mesh, rule_set: str = "",
                      rules: LogicalRules = ()) -> str:
  """The text of model-info.txt."""
  lines = [f"# {describe_mesh(mesh)}; rule set: {rule_set or '?'}"]
  if rules:
    lines.append("# logical axis rules (priority order):")
    lines += ["# " + r for r in format_rules(rules).splitlines()]
  header = ("path", "shape", "dtype", "logical axes", "PartitionSpec", "per-device shape")
  rows = [header]
  total = total_bytes = device_bytes = 0
  for l in layouts:
    per_device = _per_device_shape(l, mesh)
    row = (l.path, str(l.shape), l.dtype, _fmt_logical(l.logical_axes), str(l.spec),
           str(per_device) + (f"  # {l.note}" if l.note else ""))
    rows.append(row)
    itemsize = np.dtype(l.dtype).itemsize
    total += math.prod(l.shape)
    total_bytes += math.prod(l.shape) * itemsize
    device_bytes += math.prod(per_device) * itemsize
  widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
  for r in rows:
    lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
  lines.append(f"# {len(layouts)} arrays, {total:,} parameters, "
               f"{total_bytes / 2**20:.2f} MiB in total, {device_bytes / 2**20:.2f} MiB per device")
  return "\n".join(lines) + "\n"


def write_model_info(path: str, layouts: Sequence[ArrayLayout], mesh: Mesh,
                     rule_set: str = "", rules: LogicalRules = ()) -> str | None:
  """Writes model-info.txt at ``path`` (a file, or a directory to put it in) on process 0.

  Returns the path written, or None on other processes.
  """
  if jax.process_index() != 0:
    return None
  if fileio.isdir(path):
    path = fileio.join(path, "model-info.txt")
  fileio.atomic_write(path, format_model_info(layouts, mesh, rule_set, rules))
  return path
