"""Device meshes from explicit axis sizes.

The mesh axes are ``replica`` (optional, outermost: across slices over DCN), ``data`` and
``model`` (innermost: the axis with the most communication, kept on the fastest links). One
size may be ``-1``; it takes whatever the other sizes leave of the device count.

A two-slice v4-128 run with 4-way model parallelism is ``MeshConfig(replica=2, data=-1,
model=4)``: ``replica`` crosses the slices, ``data`` (16) and ``model`` (4) stay inside one.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from typing import Sequence

import gin
import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh

logger = logging.getLogger(__name__)

REPLICA = "replica"
DATA = "data"
MODEL = "model"


class MeshShapeError(ValueError):
  """The requested axis sizes cannot be laid out on the available devices."""


@gin.configurable
@dataclasses.dataclass(frozen=True)
class MeshConfig:
  """Mesh axis sizes; one of them may be ``-1`` (fill with the remaining devices).

  Attributes:
    data: size of the ``data`` axis (batch; parameters too under ``fsdp``/``2d``).
    model: size of the ``model`` axis (heads / mlp / vocab under ``2d``).
    replica: size of the ``replica`` axis over DCN (multi-slice), or None for no such axis.
  """
  data: int = -1
  model: int = 1
  replica: int | None = None

  def __post_init__(self):
    sizes = self.named_sizes()
    for name, size in sizes.items():
      if not isinstance(size, int) or isinstance(size, bool) or (size < 1 and size != -1):
        raise MeshShapeError(
            f"mesh axis {name!r} has size {size!r}; use a positive integer, or -1 for "
            "'whatever the other axes leave'")
    fill = [n for n, s in sizes.items() if s == -1]
    if len(fill) > 1:
      raise MeshShapeError(
          f"mesh axes {fill} are all -1; at most one axis may be -1: give the others "
          "explicit sizes")

  @property
  def axis_names(self) -> tuple[str, ...]:
    return tuple(self.named_sizes())

  def named_sizes(self) -> dict[str, int]:
    sizes = {DATA: self.data, MODEL: self.model}
    if self.replica is not None:
      sizes = {REPLICA: self.replica, **sizes}
    return sizes

  def resolve(self, num_devices: int) -> dict[str, int]:
    """Axis name -> size with the ``-1`` filled in, checked against ``num_devices``."""
    sizes = self.named_sizes()
    known = math.prod(s for s in sizes.values() if s != -1)
    if -1 in sizes.values():
      fill = next(n for n, s in sizes.items() if s == -1)
      if num_devices % known:
        raise MeshShapeError(
            f"cannot fill mesh axis {fill!r}: {num_devices} devices are not divisible by the "
            f"product {known} of the other axes {_fmt(sizes)}; choose sizes whose product "
            f"divides {num_devices}")
      sizes[fill] = num_devices // known
    total = math.prod(sizes.values())
    if total != num_devices:
      raise MeshShapeError(
          f"mesh {_fmt(sizes)} needs {total} devices but {num_devices} are available; make "
          f"the product of the axis sizes equal {num_devices}, or set one axis to -1")
    return sizes


def _fmt(sizes: dict[str, int]) -> str:
  return "(" + ", ".join(f"{n}={s}" for n, s in sizes.items()) + ")"


def _num_slices(devices: Sequence[jax.Device]) -> int:
  return len({getattr(d, "slice_index", 0) for d in devices})


def topology_ordered_grid(shape: tuple[int, ...], devices: Sequence[jax.Device]) -> np.ndarray:
  """``mesh_utils.create_device_mesh``, splitting physical axes when a logical axis is not a
  product of whole ones (e.g. model=2 on a v5e 4x8 slice)."""
  try:
    return mesh_utils.create_device_mesh(shape, devices)
  except NotImplementedError:
    return mesh_utils.create_device_mesh(shape, devices, allow_split_physical_axes=True)


def group_data_axis_by_process(grid: np.ndarray, data_axis: int) -> np.ndarray:
  """Reorders the positions along ``data_axis`` so that each process's devices are adjacent.

  A topology-aware layout follows the torus, so on a multi-host slice one host's chips can sit
  at data positions 0, 4, 8, 12 of a 16-way axis, and that host would have to feed batch rows
  0-3, 16-19, 32-35, 48-51. Each host feeds one contiguous block of rows, so positions are
  sorted (stably) by the lowest process index they hold; within a host the topology order
  stays. Axes before ``data_axis`` (``replica``) are reordered independently per index.
  """
  if data_axis > 0:
    return np.stack([group_data_axis_by_process(g, data_axis - 1) for g in grid])
  keys = [min(d.process_index for d in np.ravel(grid[i])) for i in range(grid.shape[0])]
  order = sorted(range(grid.shape[0]), key=lambda i: keys[i])
  return grid[order]


def device_grid(config: MeshConfig, devices: Sequence[jax.Device]) -> np.ndarray:
  """The devices arranged in the mesh's shape (axis order: [replica,] data, model).

  On a multi-slice system ``replica`` must equal the number of slices and is laid over DCN,
  with ``data``/``model`` inside each slice; otherwise the layout is topology-aware
  (``mesh_utils.create_device_mesh``), falling back to device order where that refuses.
  """
  sizes = config.resolve(len(devices))
  slices = _num_slices(devices)
  if slices > 1:
    if sizes.get(REPLICA, 1) != slices:
      raise MeshShapeError(
          f"the devices span {slices} slices, so the mesh needs replica={slices} (the DCN "
          f"axis) but got {_fmt(sizes)}; set MeshConfig.replica={slices}")
    ici = tuple(1 if n == REPLICA else s for n, s in sizes.items())
    dcn = tuple(s if n == REPLICA else 1 for n, s in sizes.items())
    grid = mesh_utils.create_hybrid_device_mesh(ici, dcn, devices)
  else:
    shape = tuple(sizes.values())
    try:
      grid = topology_ordered_grid(shape, devices)
    except (ValueError, NotImplementedError, AssertionError) as e:
      # Topology-aware layout can refuse odd shapes on TPU; plain device order is still
      # correct, only possibly slower, so say so.
      logger.warning("topology-aware mesh layout failed for %s (%s); using device order",
                     _fmt(sizes), e)
      grid = np.asarray(devices).reshape(shape)
  return group_data_axis_by_process(grid, list(sizes).index(DATA))


@gin.configurable
def create_mesh(config: MeshConfig | None = None,
                devices: Sequence[jax.Device] | None = None) -> Mesh:
  """Builds the global device mesh (every process calls this with the same config).

  Axis types are left Auto (GSPMD propagation), which is what logical-rule sharding expects.
  """
  config = config or MeshConfig()
  devices = list(jax.devices() if devices is None else devices)
  sizes = config.resolve(len(devices))
  mesh = Mesh(device_grid(config, devices), tuple(sizes))
  logger.info("mesh %s over %d devices (%s, %d process(es), %d slice(s))", _fmt(sizes),
              len(devices), devices[0].platform, jax.process_count(), _num_slices(devices))
  return mesh


def describe_mesh(mesh: Mesh) -> str:
  """One line such as ``mesh(data=4, model=2) on 8 cpu devices``."""
  sizes = dict(mesh.shape)
  return f"mesh{_fmt(sizes)} on {mesh.devices.size} {mesh.devices.flat[0].platform} devices"
