"""Ahead-of-time fit check: compile the real train step for a TPU topology, without TPUs.

``clqa aot --gin_file=experiments/xor_retrieve_mlqa_pt.gin --topology v4-32`` parses the same
gin files as ``clqa train`` and calls the same gin-configured ``loop.train`` with
``compile_only_on`` set: the model, objective, optimizer, partitioning and microbatching are the
run's own, built by the same functions; instead of training, the step is lowered from abstract
shapes (``jax.ShapeDtypeStruct`` with the run's shardings, no data, no weights) and compiled
by libtpu for the topology's devices (``jax.experimental.topologies``). libtpu is not a
dependency of the project: install it for this check only (``make libtpu``; see README).

The report gives XLA's per-chip buffer assignment (arguments, outputs, temporaries, total vs
HBM), the step's matmul FLOPs per chip (counted on the traced program, every loop at its trip
count: XLA's cost analysis counts a loop body once, which a scanned layer stack or microbatch
loop makes meaningless), the model FLOPs of the step, their ratio (the recompute that remat and
GradCache add), and the ideal step time at the chip's peak.
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Mapping, Sequence

import jax
from jax.extend import core as jax_core
import numpy as np

GiB = 1024 ** 3


@dataclasses.dataclass(frozen=True)
class TpuChip:
  """What a chip offers: HBM usable by XLA and peak dense bf16 FLOP/s."""
  name: str
  hbm_bytes: int
  peak_flops: float


# Usable HBM per chip as the TPU runtime reports it; peak bf16 matmul FLOP/s per chip.
CHIPS = {
    "v4": TpuChip("TPU v4", int(30.75 * GiB), 275e12),
    "v5e": TpuChip("TPU v5e", int(15.75 * GiB), 197e12),
    "v5p": TpuChip("TPU v5p", int(95.74 * GiB), 459e12),
}
# Cores per chip in an accelerator-type name: v4 and v5p count TensorCores (2 per chip),
# v5e counts chips.
_CORES_PER_CHIP = {"v4": 2, "v5p": 2, "v5e": 1}
# Chips per host on these slices.
_CHIPS_PER_HOST = 4


def _chip_grid(chips: int, generation: str) -> str:
  """The physical chip grid of a slice ("2x2x4"), as Cloud TPU lays out these slice sizes."""
  if generation == "v5e":
    grids = {1: "1x1", 4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8", 128: "8x16",
             256: "16x16"}
  else:
    grids = {4: "2x2x1", 8: "2x2x2", 16: "2x2x4", 32: "2x4x4", 64: "4x4x4", 128: "4x4x8",
             256: "4x8x8", 512: "8x8x8"}
  if chips not in grids:
    raise ValueError(f"no {generation} slice of {chips} chips; choose one of "
                     f"{', '.join(f'{generation}-{c * _CORES_PER_CHIP[generation]}' for c in grids)}")
  return grids[chips]


def parse_topology(name: str) -> tuple[str, str, int]:
  """``"v4-32"`` -> (generation, topology name for libtpu, number of chips)."""
  generation, _, size = name.partition("-")
  if generation not in CHIPS or not size.isdigit():
    raise ValueError(f"topology {name!r}: expected <generation>-<size> with generation one of "
                     f"{', '.join(CHIPS)}, e.g. v4-32, v5p-32, v5e-16")
  chips = int(size) // _CORES_PER_CHIP[generation]
  return generation, f"{generation}:{_chip_grid(chips, generation)}", chips


def topology_devices(name: str) -> list[Any]:
  """The devices (one per chip; v4/v5p as megacore) of a named TPU slice, from libtpu."""
  generation, topology_name, chips = parse_topology(name)
  try:
    from jax.experimental import topologies  # pylint: disable=g-import-not-at-top
    kwargs = {} if generation == "v5e" else {"chip_config_name": "megacore"}
    desc = topologies.get_topology_desc(topology_name=topology_name, platform="tpu", **kwargs)
  except Exception as e:  # pylint: disable=broad-except
    raise RuntimeError(
        f"cannot describe TPU topology {name} ({topology_name}): {e}. Ahead-of-time TPU "
        "compilation needs libtpu: run `make libtpu` and put .libtpu on PYTHONPATH (clqa aot "
        "does this by itself when .libtpu exists)") from e
  devices = list(desc.devices)
  if len(devices) != chips:
    raise RuntimeError(f"{name}: libtpu described {len(devices)} devices, expected {chips}")
  return devices


# ---------------------------------------------------------------------------------------------
# Model FLOPs (the useful work of a step, without recompute)


def _linear_flops(tokens: float, d_in: int, d_out: int) -> float:
  return 2.0 * tokens * d_in * d_out


def model_flops_per_step(config: Any, batch_size: int, num_passages: int, query_length: int,
                         passage_length: int, target_length: int, query_copies: int = 1) -> float:
  """Matmul FLOPs of one forward + backward (3x forward) of the unified model on one batch.

  Lower encoder layers run once per query (``query_copies`` queries per question: 2 in stage
  1) and once per passage; upper layers on the K [q; p] pairs; the decoder on T targets with
  cross-attention over K pairs; the LM head over T.
  """
  m = config.mt5
  d, h, dkv, dff, vocab = m.d_model, m.num_heads, m.d_kv, m.d_ff, m.vocab_size
  inner = h * dkv
  r = config.resolved_retriever_layer
  upper = m.num_encoder_layers - r

  def encoder_layer(sequences: float, length: int) -> float:
    tokens = sequences * length
    proj = _linear_flops(tokens, d, 3 * inner) + _linear_flops(tokens, inner, d)
    attn = 2 * 2.0 * sequences * length * length * inner
    mlp = _linear_flops(tokens, d, 2 * dff) + _linear_flops(tokens, dff, d)
    return proj + attn + mlp

  b, k = batch_size, num_passages
  pair = query_length + passage_length
  queries = b * query_copies
  fwd = r * (encoder_layer(queries, query_length) + encoder_layer(b * k, passage_length))
  fwd += upper * encoder_layer(queries * k, pair)
  dec_tokens = queries * target_length
  memory = queries * k * pair
  per_dec = (_linear_flops(dec_tokens, d, 3 * inner) + _linear_flops(dec_tokens, inner, d)
             + 2 * 2.0 * queries * target_length * target_length * inner      # self-attention
             + _linear_flops(dec_tokens, d, inner) + _linear_flops(dec_tokens, inner, d)
             + _linear_flops(memory, d, 2 * inner)                            # cross K/V
             + 2 * 2.0 * dec_tokens * k * pair * inner                        # cross-attention
             + _linear_flops(dec_tokens, d, 2 * dff) + _linear_flops(dec_tokens, dff, d))
  fwd += m.num_decoder_layers * per_dec
  fwd += _linear_flops(dec_tokens, d, vocab)
  return 3.0 * fwd


def _sub_jaxprs(params: Mapping[str, Any]):
  """The jaxprs an equation's parameters hold (jit, remat, custom_jvp/vjp bodies ...)."""
  for value in params.values():
    for v in value if isinstance(value, (tuple, list)) else (value,):
      if isinstance(v, jax_core.ClosedJaxpr):
        yield v.jaxpr
      elif isinstance(v, jax_core.Jaxpr):
        yield v


def _dot_general_flops(eqn) -> float:
  (lhs_contracting, _), _ = eqn.params["dimension_numbers"]
  lhs = eqn.invars[0].aval.shape
  depth = math.prod(lhs[d] for d in lhs_contracting)
  return 2.0 * math.prod(eqn.outvars[0].aval.shape) * depth


def jaxpr_matmul_flops(jaxpr: Any) -> float:
  """Matmul (dot_general) FLOPs a jaxpr executes: ``scan`` bodies times their length, the
  costliest ``cond`` branch, rematerialised recomputation as traced. A ``while`` loop with
  matmuls has no static trip count: an error rather than a wrong count."""
  jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
  total = 0.0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "dot_general":
      total += _dot_general_flops(eqn)
    elif name == "scan":
      total += eqn.params["length"] * jaxpr_matmul_flops(eqn.params["jaxpr"])
    elif name == "cond":
      total += max(jaxpr_matmul_flops(b) for b in eqn.params["branches"])
    elif name == "while":
      if jaxpr_matmul_flops(eqn.params["body_jaxpr"]):
        raise ValueError("a while loop with matmuls has no static trip count to count FLOPs by")
    else:
      total += sum(jaxpr_matmul_flops(sub) for sub in _sub_jaxprs(eqn.params))
  return total


# ---------------------------------------------------------------------------------------------
# The report


@dataclasses.dataclass
class FitReport:
  """What the compiled step needs on each chip, and what it computes."""
  topology: str
  chip: str
  num_chips: int
  mesh: str
  rule_set: str
  batch_size: int
  num_microbatches: int
  batch_shapes: dict[str, list[int]]
  argument_bytes: int
  output_bytes: int
  temp_bytes: int
  alias_bytes: int
  hbm_bytes: int
  step_flops_per_chip: float
  xla_flops_per_chip: float
  model_flops_per_step: float
  peak_flops_per_chip: float
  largest_arrays: list[str] = dataclasses.field(default_factory=list)
  replicated_large: list[str] = dataclasses.field(default_factory=list)

  @property
  def total_bytes(self) -> int:
    return self.argument_bytes + self.output_bytes + self.temp_bytes - self.alias_bytes

  @property
  def fits(self) -> bool:
    return self.total_bytes <= self.hbm_bytes

  @property
  def hbm_fraction(self) -> float:
    return self.total_bytes / self.hbm_bytes

  @property
  def ideal_step_seconds(self) -> float:
    return self.step_flops_per_chip / self.peak_flops_per_chip

  @property
  def recompute_ratio(self) -> float:
    total = self.step_flops_per_chip * self.num_chips
    return total / self.model_flops_per_step if self.model_flops_per_step else float("nan")

  def to_json(self) -> str:
    d = dataclasses.asdict(self)
    d.update(total_bytes=self.total_bytes, fits=self.fits, hbm_fraction=self.hbm_fraction,
             ideal_step_seconds=self.ideal_step_seconds, recompute_ratio=self.recompute_ratio)
    return json.dumps(d, indent=2)

  def format(self) -> str:
    gib = lambda n: f"{n / GiB:8.2f} GiB"
    lines = [
        f"topology      {self.topology}: {self.num_chips} x {self.chip}",
        f"mesh          {self.mesh}; rule set {self.rule_set}",
        f"batch         {self.batch_size} per step, {self.num_microbatches} microbatch(es); "
        + ", ".join(f"{k} {v}" for k, v in sorted(self.batch_shapes.items())),
        "per-chip memory (XLA buffer assignment):",
        f"  arguments   {gib(self.argument_bytes)}",
        f"  outputs     {gib(self.output_bytes)}  (aliased with arguments: "
        f"{self.alias_bytes / GiB:.2f} GiB)",
        f"  temporaries {gib(self.temp_bytes)}",
        f"  total       {gib(self.total_bytes)} of {self.hbm_bytes / GiB:.2f} GiB HBM "
        f"({100 * self.hbm_fraction:.1f}%)",
        f"FLOPs         {self.step_flops_per_chip:.3e} per chip per step (matmuls of the "
        f"traced step, loops counted); model {self.model_flops_per_step:.3e} per step; "
        f"step/model {self.recompute_ratio:.2f}x (XLA cost analysis, each loop body once: "
        f"{self.xla_flops_per_chip:.3e})",
        f"ideal step    {self.ideal_step_seconds * 1e3:.1f} ms at {self.peak_flops_per_chip:.3g} "
        "FLOP/s per chip",
    ]
    if self.largest_arrays:
      lines.append("largest parameter/state shards per chip:")
      lines += [f"  {a}" for a in self.largest_arrays]
    if self.replicated_large:
      lines.append("replicated arrays of 64 MiB or more (each chip holds all of it):")
      lines += [f"  {a}" for a in self.replicated_large]
    lines.append("FITS" if self.fits else "DOES NOT FIT")
    return "\n".join(lines)


def _shard_bytes(x: jax.ShapeDtypeStruct) -> int:
  shape = x.sharding.shard_shape(x.shape)
  return int(np.prod(shape, dtype=np.int64)) * np.dtype(x.dtype).itemsize


def _path(path) -> str:
  return "/".join(str(getattr(p, "key", getattr(p, "idx", getattr(p, "name", p)))) for p in path)


def _state_summaries(abstract_state: Any, top: int = 8) -> tuple[list[str], list[str]]:
  leaves = jax.tree_util.tree_flatten_with_path(abstract_state)[0]
  rows = []
  replicated = []
  for path, x in leaves:
    if not hasattr(x, "sharding") or x.sharding is None:
      continue
    per_chip = _shard_bytes(x)
    full = int(np.prod(x.shape, dtype=np.int64)) * np.dtype(x.dtype).itemsize
    rows.append((per_chip, f"{_path(path)} {tuple(x.shape)} {x.dtype}: "
                           f"{per_chip / 2**20:.1f} MiB per chip ({x.sharding.spec})"))
    if full >= 64 * 2**20 and per_chip == full and x.sharding.mesh.size > 1:
      replicated.append(f"{_path(path)} {tuple(x.shape)}: {full / 2**20:.0f} MiB")
  rows.sort(key=lambda r: -r[0])
  return [r[1] for r in rows[:top]], replicated


def batch_feature_shapes(batches: Any, batch_size: int, stage1: bool,
                         vocab_size: int) -> dict[str, jax.ShapeDtypeStruct]:
  """The global batch's features as a step sees them (shapes and dtypes only).

  ``batches`` is the run's batch-source factory (``TrainFeed`` or ``SyntheticBatches``); its
  widths are the feed's own (query 50, passage 200, answer 50 for a ``TrainFeed``).
  """
  from clqa_jax.trainer.synthetic_data import synthetic_batch  # pylint: disable=g-import-not-at-top

  if hasattr(batches, "feature_dimensions"):
    dims = batches.feature_dimensions()
  else:
    raise TypeError(f"{type(batches).__name__} cannot describe its batches without data: "
                    "it needs a feature_dimensions() method")
  example = synthetic_batch(0, batch_size=1, stage1=stage1, vocab_size=vocab_size, **dims)
  return {name: jax.ShapeDtypeStruct((batch_size,) + value.shape[1:], value.dtype)
          for name, value in example.items()}


def compile_step_for_topology(*, topology: str, devices: Sequence[Any], partitioner: Any,
                              step_fn: Any, shardings: Any, abstract_state: Any,
                              teacher_abstract: Any, teacher_shardings: Any,
                              batch_shapes: Mapping[str, jax.ShapeDtypeStruct],
                              model_flops: float, batch_size: int,
                              num_microbatches: int) -> FitReport:
  """Lowers and compiles ``step_fn`` with the run's shardings; reads XLA's analyses."""
  from clqa_jax.partitioning.mesh import describe_mesh  # pylint: disable=g-import-not-at-top
  from clqa_jax.trainer import state_init  # pylint: disable=g-import-not-at-top

  compiled_fn = state_init.compile_train_step(partitioner, step_fn, shardings, teacher_shardings)
  batch_sharding = partitioner.batch_sharding()
  batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=batch_sharding)
           for k, v in batch_shapes.items()}
  traced = compiled_fn.trace(abstract_state, batch, teacher_abstract)
  # The step's work is split evenly over the chips (data and FSDP parallel).
  step_flops_per_chip = jaxpr_matmul_flops(traced.jaxpr) / len(devices)
  with jax.set_mesh(partitioner.mesh):
    compiled = traced.lower().compile()
  memory = compiled.memory_analysis()
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  generation = parse_topology(topology)[0]
  chip = CHIPS[generation]
  largest, replicated = _state_summaries(abstract_state)
  return FitReport(
      topology=topology, chip=chip.name, num_chips=len(devices),
      mesh=describe_mesh(partitioner.mesh), rule_set=partitioner.rule_set,
      batch_size=batch_size, num_microbatches=num_microbatches,
      batch_shapes={k: list(v.shape) for k, v in batch_shapes.items()},
      argument_bytes=int(memory.argument_size_in_bytes),
      output_bytes=int(memory.output_size_in_bytes),
      temp_bytes=int(memory.temp_size_in_bytes),
      alias_bytes=int(memory.alias_size_in_bytes),
      hbm_bytes=chip.hbm_bytes,
      step_flops_per_chip=step_flops_per_chip,
      xla_flops_per_chip=float(cost.get("flops", math.nan)),
      model_flops_per_step=model_flops,
      peak_flops_per_chip=chip.peak_flops,
      largest_arrays=largest, replicated_large=replicated)
