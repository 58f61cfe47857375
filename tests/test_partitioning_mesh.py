"""Meshes from explicit sizes, the dp/fsdp/2d rule tables, model-info.txt, data layout, gin."""
from __future__ import annotations


import flax.linen as nn
import gin
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fake_gcs import fake_gcs, object_paths  # noqa: F401  (fake_gcs is a fixture)
from jax.sharding import PartitionSpec as P

from clqa_jax import gin_utils
from clqa_jax import axis_names as ax
from clqa_jax import fileio
from clqa_jax.partitioning import (MeshConfig, MeshShapeError, Partitioner, PartitioningConfig,
                                   create_mesh, logical_axis_rules,
                                   make_partitioner, maybe_initialize_distributed,
                                   write_model_info)
from clqa_jax.partitioning import distributed, mesh as mesh_lib, rules as rules_lib


@pytest.mark.parametrize("config,expected", [
    (MeshConfig(), {"data": 8, "model": 1}),
    (MeshConfig(data=-1, model=2), {"data": 4, "model": 2}),
    (MeshConfig(data=2, model=-1), {"data": 2, "model": 4}),
    (MeshConfig(replica=2, data=-1, model=2), {"replica": 2, "data": 2, "model": 2}),
])
def test_mesh_fills_minus_one(config, expected):
  mesh = create_mesh(config)
  assert dict(mesh.shape) == expected
  assert tuple(mesh.axis_names) == tuple(expected)
  assert sorted(d.id for d in mesh.devices.flat) == list(range(8))


@pytest.mark.parametrize("kwargs,message", [
    (dict(data=3, model=-1), "not divisible"),
    (dict(data=4, model=4), "needs 16 devices but 8"),
    (dict(data=-1, model=-1), "at most one axis may be -1"),
    (dict(data=0), "positive integer"),
])
def test_mesh_errors_say_what_to_do(kwargs, message):
  with pytest.raises(MeshShapeError, match=message):
    create_mesh(MeshConfig(**kwargs))


def test_replica_axis_spans_slices_over_dcn():
  """With devices in 2 slices, `replica` indexes the slice and data/model stay inside one."""
  import dataclasses

  @dataclasses.dataclass(frozen=True)
  class FakeDevice:
    id: int
    slice_index: int
    process_index: int
    platform: str = "cpu"
    device_kind: str = "cpu"

  devices = [FakeDevice(i, slice_index=i // 4, process_index=i // 2) for i in range(8)]
  grid = mesh_lib.device_grid(MeshConfig(replica=2, data=-1, model=2), devices)
  assert grid.shape == (2, 2, 2)
  for r in range(2):
    assert {d.slice_index for d in grid[r].flat} == {r}
  with pytest.raises(MeshShapeError, match="set MeshConfig.replica=2"):
    mesh_lib.device_grid(MeshConfig(data=-1, model=2), devices)


def test_mesh_creation_is_logged(caplog):
  caplog.set_level("INFO", logger="clqa_jax.partitioning.mesh")
  create_mesh(MeshConfig(data=-1, model=2))
  assert "mesh (data=4, model=2) over 8 devices" in caplog.text


def _spec(names, rule_set, mesh_axes=("data", "model")):
  return nn.logical_to_mesh_axes(names, logical_axis_rules(rule_set, mesh_axes))


@pytest.mark.parametrize("rule_set,param_spec,act_spec", [
    ("dp", P(None, None), P("data", None, None)),
    ("fsdp", P("data", None), P("data", None, None)),
    ("2d", P("data", "model"), P("data", None, "model")),
])
def test_rules_params_vs_activations(rule_set, param_spec, act_spec):
  # A kernel (embed, mlp) vs. an activation (batch, length, mlp).
  assert _spec((ax.EMBED, ax.MLP), rule_set) == param_spec
  assert _spec((ax.BATCH, ax.LENGTH, ax.MLP), rule_set) == act_spec
  # `embed` in an activation never takes `data`: batch claims it first.
  assert _spec((ax.BATCH, ax.LENGTH, ax.EMBED), rule_set) == P("data", None, None)
  assert _spec((ax.BATCH, ax.PASSAGES, ax.LENGTH, ax.EMBED), rule_set) == P("data", None,
                                                                              None, None)


def test_rules_2d_layouts():
  assert _spec((ax.VOCAB, ax.EMBED), "2d") == P("model", "data")
  assert _spec((ax.JOINED_KV, ax.EMBED), "2d") == P("model", "data")
  assert _spec((ax.RELPOS_BUCKETS, ax.HEADS), "2d") == P(None, "model")
  assert _spec((ax.LAYERS, ax.EMBED, ax.MLP), "2d") == P(None, "data", "model")
  assert _spec((ax.BATCH, ax.LENGTH, ax.HEADS, ax.KV), "2d") == P("data", None, "model", None)
  assert _spec((ax.CORPUS, ax.RETRIEVAL), "fsdp") == P("data", None)


def test_rules_replica_axis_for_batch_only():
  mesh_axes = ("replica", "data", "model")
  assert _spec((ax.BATCH, ax.LENGTH), "fsdp", mesh_axes) == P(("replica", "data"), None)
  # Params are sharded inside a slice and replicated across slices.
  assert _spec((ax.EMBED, ax.MLP), "2d", mesh_axes) == P("data", "model")


def test_rules_cover_every_axis_name_and_reject_unknown_sets():
  for rule_set in rules_lib.RULE_SETS:
    names = {name for name, _ in logical_axis_rules(rule_set)}
    assert set(ax.ALL) <= names
  with pytest.raises(ValueError, match="choose one of dp, fsdp, 2d"):
    logical_axis_rules("zero3")
  with pytest.raises(ValueError, match="choose one of"):
    PartitioningConfig(rule_set="tp")


class _Tiny(nn.Module):
  """Parameters with logical axes, one dimension (6) not divisible by a 4-way model axis."""

  @nn.compact
  def __call__(self, x):
    w = self.param("w", nn.with_logical_partitioning(nn.initializers.ones, (ax.EMBED, ax.MLP)),
                   (16, 8))
    b = self.param("b", nn.with_logical_partitioning(nn.initializers.zeros, (ax.HEADS,)), (6,))
    s = self.param("s", nn.initializers.ones, (3,))  # no logical axes
    return nn.with_logical_constraint(x @ w, (ax.BATCH, ax.MLP)), b, s


def test_partitioner_init_model_info_and_divisibility(tmp_path, caplog):
  partitioner = Partitioner.from_config(
      PartitioningConfig(MeshConfig(data=2, model=4), "2d"))
  x = jnp.ones((8, 16))
  caplog.set_level("WARNING", logger="clqa_jax.partitioning.partitioner")
  variables, info = partitioner.initialize(lambda r: _Tiny().init(r, x), jax.random.key(0))
  assert "not divisible by model=4" in caplog.text
  w, b, s = (variables["params"][k] for k in "wbs")
  assert w.sharding.spec == P("data", "model")
  assert w.addressable_shards[0].data.shape == (8, 2)
  assert b.sharding.spec == P() and s.sharding.spec == P()

  path = write_model_info(str(tmp_path), info.layouts, partitioner.mesh,
                          partitioner.rule_set, partitioner.rules)
  text = open(path).read()
  assert path.endswith("model-info.txt")
  line_w = next(l for l in text.splitlines() if l.startswith("params/w "))
  assert "(16, 8)" in line_w and "(embed, mlp)" in line_w
  assert "P('data', 'model')" in line_w and "(8, 2)" in line_w
  line_b = next(l for l in text.splitlines() if l.startswith("params/b "))
  assert "dim 0 replicated (6 % 4 != 0)" in line_b
  assert "(none)" in next(l for l in text.splitlines() if l.startswith("params/s "))
  assert "mesh(data=2, model=4)" in text and "rule set: 2d" in text
  assert "3 arrays, 137 parameters" in text

  strict = Partitioner(partitioner.mesh, "2d", strict_divisibility=True)
  with pytest.raises(ValueError, match="params/b: dimension 0 .* not divisible"):
    strict.initialize(lambda r: _Tiny().init(r, x), jax.random.key(0))



def test_model_info_to_gs_path_writes_no_local_dir(fake_gcs):
  partitioner = Partitioner.from_config(PartitioningConfig(MeshConfig(data=2, model=4), "2d"))
  x = jnp.ones((8, 16))
  _, info = partitioner.initialize(lambda r: _Tiny().init(r, x), jax.random.key(0))
  fileio.atomic_write("gs://bucket/run/config.gin", "")  # the run "directory" exists
  path = write_model_info("gs://bucket/run", info.layouts, partitioner.mesh, "2d")
  assert path == "gs://bucket/run/model-info.txt"
  assert object_paths(fake_gcs) == ["gs://bucket/run/config.gin", path]
  assert "3 arrays, 137 parameters" in fileio.read_text(path)

def test_partition_donates_and_applies_rules():
  partitioner = Partitioner.from_config(PartitioningConfig(MeshConfig(data=4, model=2), "2d"))
  x = jnp.ones((8, 16))
  variables, info = partitioner.initialize(lambda r: _Tiny().init(r, x), jax.random.key(0))

  def step(v, batch):
    y, _, _ = _Tiny().apply(v, batch)
    return jax.tree.map(lambda p: p + 1.0, v), y

  fn = partitioner.partition(step, in_shardings=(info.shardings, partitioner.batch_spec()),
                             out_shardings=(info.shardings, None), donate_argnums=(0,))
  batch = partitioner.host_local_batch_to_global({"x": np.ones((8, 16), np.float32)})["x"]
  old_w = variables["params"]["w"]
  new, y = fn(variables, batch)
  assert old_w.is_deleted()  # donated
  assert new["params"]["w"].sharding.spec == P("data", "model")
  # The activation constraint (batch, mlp) resolved through the rules inside jit.
  assert y.sharding.spec == P("data", "model")
  np.testing.assert_allclose(np.asarray(y), np.full((8, 8), 16.0))


def test_data_layout_single_process():
  partitioner = Partitioner(create_mesh(MeshConfig(data=4, model=2)), "dp")
  layout = partitioner.data_layout(16)
  assert (layout.per_process_batch_size, layout.shard_id, layout.num_shards) == (16, 0, 1)
  with pytest.raises(ValueError, match="not divisible by the data-parallel size 4"):
    partitioner.data_layout(6)
  arr = partitioner.host_local_batch_to_global({"t": np.arange(8 * 3).reshape(8, 3)})["t"]
  assert arr.sharding.spec == P("data")
  np.testing.assert_array_equal(np.asarray(arr), np.arange(24).reshape(8, 3))


def test_maybe_initialize_distributed_single_process(monkeypatch):
  for name in (distributed.ENV_COORDINATOR, distributed.ENV_NUM_PROCESSES,
               distributed.ENV_PROCESS_ID, "JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS",
               "OMPI_COMM_WORLD_SIZE"):
    monkeypatch.delenv(name, raising=False)
  monkeypatch.setattr(distributed, "_on_cloud_tpu_vm", lambda: False)
  info = maybe_initialize_distributed()
  assert (info.initialized, info.reason) == (False, "single-process")
  monkeypatch.setenv(distributed.ENV_COORDINATOR, "127.0.0.1:1")
  with pytest.raises(ValueError, match="needs all of coordinator_address, num_processes"):
    maybe_initialize_distributed()
  monkeypatch.setenv(distributed.ENV_NUM_PROCESSES, "1")
  monkeypatch.setenv(distributed.ENV_PROCESS_ID, "0")
  assert maybe_initialize_distributed().reason == "single-process"


@pytest.mark.parametrize("name,rule_set,shape", [
    ("dp", "dp", {"data": 8, "model": 1}),
    ("fsdp", "fsdp", {"data": 8, "model": 1}),
    ("2d", "2d", {"data": 4, "model": 2}),
])
def test_gin_files(name, rule_set, shape):
  gin.clear_config()
  try:
    gin_utils.parse_gin([f"partitioning/{name}.gin"], [])
    partitioner = make_partitioner()
  finally:
    gin.clear_config()
  assert partitioner.rule_set == rule_set
  assert dict(partitioner.mesh.shape) == shape
