"""The partitioner: shape-first sharded init, jit with NamedShardings, global batches.

    partitioner = Partitioner.from_config(PartitioningConfig(MeshConfig(data=-1, model=2), "2d"))
    variables, info = partitioner.initialize(lambda rng: model.init(rng, enc, dec), rng)
    step = partitioner.partition(train_step, in_shardings=(info.shardings, partitioner.batch_spec()),
                                 out_shardings=(info.shardings, None), donate_argnums=(0,))
    batch = partitioner.host_local_batch_to_global(numpy_batch)   # this process's rows

Parameters are never materialised unsharded: their shapes and logical axes come from
``jax.eval_shape``, their shardings from the rule table, and the jitted init writes each shard
straight onto its devices. Every call of a partitioned function runs with the mesh set and the
logical rules active, so ``nn.with_logical_constraint`` inside models resolves the same way.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import math
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import gin
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from clqa_jax.partitioning import mesh as mesh_lib
from clqa_jax.partitioning import rules as rules_lib

logger = logging.getLogger(__name__)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class PartitioningConfig:
  """How a run is laid out: the mesh shape and the logical rule set.

  Attributes:
    mesh: axis sizes (``-1`` fills).
    rule_set: ``dp`` (replicated params), ``fsdp`` (params' embed over ``data``) or ``2d``
      (fsdp plus heads/mlp/vocab/joined_kv over ``model``).
    additional_rules: extra ``(logical, mesh)`` pairs taking priority over the set's rules.
    strict_divisibility: if True, a parameter dimension that its mesh axes do not divide is an
      error; if False (default) that dimension is replicated and the fact is logged and shown
      in model-info.txt.
  """
  mesh: mesh_lib.MeshConfig = dataclasses.field(default_factory=mesh_lib.MeshConfig)
  rule_set: str = "dp"
  additional_rules: tuple[tuple[str, Any], ...] = ()
  strict_divisibility: bool = False

  def __post_init__(self):
    if self.rule_set not in rules_lib.RULE_SETS:
      raise rules_lib.UnknownRuleSetError(
          f"unknown partitioning rule set {self.rule_set!r}; choose one of "
          f"{', '.join(rules_lib.RULE_SETS)}")


@dataclasses.dataclass(frozen=True)
class ArrayLayout:
  """How one array (parameter or state leaf) is laid out.

  ``note`` says why the layout differs from what the rules asked for (e.g. a dimension the
  mesh axes do not divide, replicated instead).
  """
  path: str
  shape: tuple[int, ...]
  dtype: str
  logical_axes: tuple[str | None, ...] | None
  spec: P
  note: str = ""


@dataclasses.dataclass(frozen=True)
class InitInfo:
  """What ``Partitioner.initialize`` decided, mirrored onto the variables' tree."""
  logical_axes: Any        # tree of logical PartitionSpecs (P() where a leaf has none)
  shardings: Any           # tree of NamedSharding, same structure as the unboxed variables
  layouts: list[ArrayLayout]


@dataclasses.dataclass(frozen=True)
class DataLayout:
  """Which rows of the global batch this process feeds (T5X's DataLayout).

  ``shard_id`` of ``num_shards``: the data pipeline of this process reads that shard and
  yields ``per_process_batch_size`` rows per step. Processes that hold the same batch rows
  (model axis across hosts) get the same ``shard_id`` and must feed identical data.
  """
  global_batch_size: int
  per_process_batch_size: int
  shard_id: int
  num_shards: int


def _path_str(path) -> str:
  parts = []
  for k in path:
    if isinstance(k, jax.tree_util.DictKey):
      parts.append(str(k.key))
    elif isinstance(k, jax.tree_util.GetAttrKey):
      parts.append(k.name)
    elif isinstance(k, jax.tree_util.SequenceKey):
      parts.append(str(k.idx))
    else:
      parts.append(str(k))
  return "/".join(parts)


def _is_spec_leaf(x) -> bool:
  return x is None or isinstance(x, (P, NamedSharding))


class Partitioner:
  """Lays computations out on a mesh with a logical rule set (T5X's PjitPartitioner, on jit)."""

  def __init__(self, mesh: Mesh, rule_set: str = "dp",
               additional_rules: Sequence[tuple[str, Any]] = (),
               strict_divisibility: bool = False,
               compiler_options: Mapping[str, Any] | None = None):
    self.mesh = mesh
    # XLA options for every partitioned function (e.g. {"xla_backend_optimization_level": 0}
    # to compile faster on CPU in tests); None keeps XLA's defaults.
    self.compiler_options = dict(compiler_options) if compiler_options else None
    self.rule_set = rule_set
    self.rules = rules_lib.logical_axis_rules(rule_set, mesh.axis_names, additional_rules)
    self.strict_divisibility = strict_divisibility
    model_size = dict(mesh.shape).get(mesh_lib.MODEL, 1)
    if model_size > 1 and not rules_lib.uses_model_axis(rule_set):
      logger.warning(
          "rule set %r shards nothing over the model axis (size %d): its devices repeat the "
          "same work; use rule set '2d' or fold the model axis into data", rule_set, model_size)
    logger.info("partitioner: %s, rule set %r\n%s", mesh_lib.describe_mesh(mesh), rule_set,
                rules_lib.format_rules(self.rules))

  @classmethod
  def from_config(cls, config: PartitioningConfig,
                  devices: Sequence[jax.Device] | None = None,
                  compiler_options: Mapping[str, Any] | None = None) -> "Partitioner":
    return cls(mesh_lib.create_mesh(config.mesh, devices), config.rule_set,
               config.additional_rules, config.strict_divisibility, compiler_options)

  # ---- logical axes -> shardings ------------------------------------------------------------

  def logical_to_mesh_spec(self, logical: P | Sequence[str | None] | None) -> P:
    """Mesh PartitionSpec for one array's logical axes (no shape check)."""
    if logical is None:
      return P()
    return nn.logical_to_mesh_axes(tuple(logical), self.rules)

  def _layout(self, path: str, shape: Sequence[int], dtype, logical) -> ArrayLayout:
    logical_axes = None if logical is None or len(logical) == 0 and len(shape) else tuple(logical)
    spec = list(self.logical_to_mesh_spec(logical))
    spec += [None] * (len(shape) - len(spec))
    notes = []
    for i, (dim, axes) in enumerate(zip(shape, spec)):
      if axes is None:
        continue
      names = (axes,) if isinstance(axes, str) else tuple(axes)
      ways = math.prod(self.mesh.shape[n] for n in names)
      if dim % ways:
        msg = (f"{path}: dimension {i} ({logical_axes[i] if logical_axes else '?'}) of size "
               f"{dim} is not divisible by {'x'.join(names)}={ways}")
        if self.strict_divisibility:
          raise ValueError(msg + "; change the mesh or model size, or turn off "
                           "PartitioningConfig.strict_divisibility to replicate it")
        logger.warning("%s; replicating that dimension", msg)
        notes.append(f"dim {i} replicated ({dim} % {ways} != 0)")
        spec[i] = None
    while spec and spec[-1] is None:
      spec.pop()
    return ArrayLayout(path, tuple(int(d) for d in shape), str(np.dtype(dtype)), logical_axes,
                       P(*spec), "; ".join(notes))

  def layouts_for(self, abstract_tree: Any, logical_tree: Any) -> list[ArrayLayout]:
    """ArrayLayouts for an unboxed tree of arrays/ShapeDtypeStructs and its logical specs."""
    leaves = jax.tree_util.tree_flatten_with_path(abstract_tree)[0]
    logical_leaves = jax.tree.leaves(logical_tree, is_leaf=_is_spec_leaf)
    if len(leaves) != len(logical_leaves):
      raise ValueError(f"{len(leaves)} arrays but {len(logical_leaves)} logical specs: the "
                       "logical tree must mirror the array tree")
    return [self._layout(_path_str(path), x.shape, x.dtype, logical)
            for (path, x), logical in zip(leaves, logical_leaves)]

  def shardings_for(self, abstract_tree: Any, logical_tree: Any) -> Any:
    """NamedSharding tree (same structure as ``abstract_tree``) from logical specs."""
    return self._shardings(abstract_tree, self.layouts_for(abstract_tree, logical_tree))

  def _shardings(self, abstract_tree: Any, layouts: Sequence[ArrayLayout]) -> Any:
    treedef = jax.tree.structure(abstract_tree)
    return jax.tree.unflatten(treedef, [NamedSharding(self.mesh, l.spec) for l in layouts])

  def abstract_info(self, init_fn: Callable[..., Any], *args) -> tuple[Any, InitInfo]:
    """``(abstract unboxed variables, InitInfo)`` from shapes only: to restore a checkpoint
    into, or to place existing host values with ``jax.device_put(values, info.shardings)``."""
    abstract, logical = self.abstract_init(init_fn, *args)
    layouts = self.layouts_for(abstract, logical)
    return abstract, InitInfo(logical, self._shardings(abstract, layouts), layouts)

  # ---- shape-first sharded init ---------------------------------------------------------------

  def abstract_init(self, init_fn: Callable[..., Any], *args) -> tuple[Any, Any]:
    """``(abstract unboxed variables, logical specs)`` without allocating anything."""
    with self.rules_context():
      boxed = jax.eval_shape(init_fn, *args)
    logical = nn.get_partition_spec(boxed)
    return nn.unbox(boxed), logical

  def initialize(self, init_fn: Callable[..., Any], *args) -> tuple[Any, InitInfo]:
    """Runs ``init_fn(*args)`` (returning flax-boxed variables) straight into shards.

    Leaves without logical axes (e.g. a step counter) are replicated and listed in the info.
    Returns the unboxed, sharded variables and their ``InitInfo``.
    """
    abstract, info = self.abstract_info(init_fn, *args)
    layouts, shardings = info.layouts, info.shardings
    unannotated = [l.path for l in layouts if l.logical_axes is None and l.shape]
    if unannotated:
      logger.warning("%d arrays have no logical axes and are replicated: %s",
                     len(unannotated), ", ".join(unannotated[:10]))
    init_jit = self.partition(lambda *a: nn.unbox(init_fn(*a)), out_shardings=shardings)
    variables = init_jit(*args)
    return variables, info

  # ---- jit ------------------------------------------------------------------------------------

  def rules_context(self):
    return nn.logical_axis_rules(self.rules)

  def to_sharding(self, tree: Any) -> Any:
    """PartitionSpec leaves -> NamedSharding on this mesh; NamedSharding and None kept."""
    def convert(x):
      if isinstance(x, P):
        return NamedSharding(self.mesh, x)
      return x
    return jax.tree.map(convert, tree, is_leaf=_is_spec_leaf)

  def partition(self, fn: Callable[..., Any], in_shardings: Any = None,
                out_shardings: Any = None, donate_argnums: int | Sequence[int] = (),
                static_argnums: int | Sequence[int] = ()) -> "PartitionedFunction":
    """``jax.jit`` with NamedShardings (PartitionSpec leaves are taken on this mesh).

    ``None`` for in/out shardings leaves the layout to the compiler (inputs: as they come).
    The function is traced with this partitioner's logical rules and mesh active.
    """
    rules = self.rules

    @functools.wraps(fn)
    def with_rules(*args, **kwargs):
      with nn.logical_axis_rules(rules):
        return fn(*args, **kwargs)

    kwargs = dict(donate_argnums=donate_argnums, static_argnums=static_argnums,
                  compiler_options=self.compiler_options)
    if in_shardings is not None:
      kwargs["in_shardings"] = self.to_sharding(in_shardings)
    if out_shardings is not None:
      kwargs["out_shardings"] = self.to_sharding(out_shardings)
    return PartitionedFunction(jax.jit(with_rules, **kwargs), self.mesh)

  # ---- data -----------------------------------------------------------------------------------

  @property
  def batch_axes(self) -> str | tuple[str, ...]:
    return rules_lib.batch_mesh_axes(self.mesh.axis_names)

  def batch_spec(self) -> P:
    """Leading (batch) dimension over data (and replica); other dimensions replicated."""
    return P(self.batch_axes)

  def batch_sharding(self) -> NamedSharding:
    return NamedSharding(self.mesh, self.batch_spec())

  @property
  def data_parallel_size(self) -> int:
    axes = self.batch_axes
    names = (axes,) if isinstance(axes, str) else axes
    return math.prod(self.mesh.shape[n] for n in names)

  def data_layout(self, global_batch_size: int) -> DataLayout:
    """The rows of a ``global_batch_size`` batch that this process must feed."""
    if global_batch_size % self.data_parallel_size:
      raise ValueError(
          f"global batch size {global_batch_size} is not divisible by the data-parallel size "
          f"{self.data_parallel_size} of {mesh_lib.describe_mesh(self.mesh)}; use a multiple")
    index_map = self.batch_sharding().addressable_devices_indices_map((global_batch_size,))
    rows = sorted({(s[0].start or 0, s[0].stop or global_batch_size)
                   for s in index_map.values()})
    start, stop = rows[0][0], rows[-1][1]
    covered = sum(b - a for a, b in rows)
    if covered != stop - start:
      raise ValueError(
          f"this process's devices hold non-contiguous batch rows {rows}; order the mesh so "
          "that each process's devices are adjacent along the data axes")
    per_process = stop - start
    return DataLayout(global_batch_size, per_process, start // per_process,
                      global_batch_size // per_process)

  def host_local_batch_to_global(self, batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    """This process's rows (numpy, leading dim = per-process batch) -> global jax.Arrays.

    Every array is split over the batch axes on its first dimension; the global batch is
    ``per-process rows x number of data shards``.
    """
    sharding = self.batch_sharding()
    out = {}
    for name, value in batch.items():
      value = np.asarray(value)
      if value.ndim == 0:
        raise ValueError(f"batch feature {name!r} is a scalar; every feature needs a leading "
                         "batch dimension")
      layout = self.data_layout_for_local(value.shape[0])
      global_shape = (layout.global_batch_size,) + value.shape[1:]
      out[name] = jax.make_array_from_process_local_data(sharding, value, global_shape)
    return out

  def data_layout_for_local(self, per_process_batch_size: int) -> DataLayout:
    """The DataLayout implied by this process holding ``per_process_batch_size`` rows."""
    # Number of data shards does not depend on the batch size: probe with one row per
    # data-parallel slot.
    probe = self.data_layout(self.data_parallel_size)
    return self.data_layout(per_process_batch_size * probe.num_shards)


class PartitionedFunction:
  """A jitted function that always runs (and traces) with its mesh set."""

  def __init__(self, jitted: Callable[..., Any], mesh: Mesh):
    self._jitted = jitted
    self.mesh = mesh

  def __call__(self, *args, **kwargs):
    with jax.set_mesh(self.mesh):
      return self._jitted(*args, **kwargs)

  def lower(self, *args, **kwargs):
    with jax.set_mesh(self.mesh):
      return self._jitted.lower(*args, **kwargs)

  def trace(self, *args, **kwargs):
    """``jax.jit(...).trace``: the jaxpr (``.jaxpr``) and, from it, ``.lower()``."""
    with jax.set_mesh(self.mesh):
      return self._jitted.trace(*args, **kwargs)


@gin.configurable(denylist=["devices"])
def make_partitioner(config: PartitioningConfig | None = None,
                     devices: Sequence[jax.Device] | None = None) -> Partitioner:
  """The run's partitioner from gin (``gin/partitioning/{dp,fsdp,2d}.gin``), over ``devices``
  (default: all)."""
  return Partitioner.from_config(config or PartitioningConfig(), devices)
