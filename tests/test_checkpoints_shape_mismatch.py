"""Resuming a run whose model dimensions changed: a typed error naming the arrays and shapes."""
import flax.struct
import jax
import jax.numpy as jnp
import pytest

from clqa_jax.checkpoints import training


@flax.struct.dataclass
class _State:
  step: jax.Array
  params: dict
  opt_state: dict
  rng: jax.Array


def _state(d_model: int) -> _State:
  return _State(step=jnp.asarray(1, jnp.int32),
                params={"encoder": {"kernel": jnp.ones((4, d_model))}, "bias": jnp.zeros(3)},
                opt_state={"mu": jnp.zeros((4, d_model))}, rng=jax.random.PRNGKey(0))


def _abstract(state: _State) -> _State:
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return jax.tree_util.tree_map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state)


def test_restore_into_other_shapes_names_the_parameter_and_both_shapes(tmp_path):
  config = training.CheckpointConfig(async_save=False)
  saver = training.Checkpointer(str(tmp_path / "ckpt"), config)
  saver.save(_state(8), {"model": "small"})
  saver.close()
  restorer = training.Checkpointer(str(tmp_path / "ckpt"), config)
  restored, _ = restorer.restore(_abstract(_state(8)))
  assert restored.params["encoder"]["kernel"].shape == (4, 8)
  with pytest.raises(training.CheckpointShapeError) as e:
    restorer.restore(_abstract(_state(16)))
  message = str(e.value)
  assert "params['encoder']['kernel']: checkpoint (4, 8), model (4, 16)" in message
  assert "['bias']" not in message
  assert "MODEL_DIR" in message
  restorer.close()
