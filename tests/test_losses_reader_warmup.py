"""MlqaObjective.distillation_start_steps: the reader trains alone for the first N optimizer
steps (the official ``--distillation_start_steps``), then the retriever distillation joins."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clqa_jax.losses import objectives
from clqa_jax.models import MT5Config, UnifiedConfig, UnifiedModel
from clqa_jax.trainer import optimizer as opt_lib
from clqa_jax.trainer import train_step
from clqa_jax.trainer.synthetic_data import synthetic_batch
from clqa_jax.trainer.train_state import TrainState
from models_testutil import random_params

B, K, START = 2, 3, 2


@pytest.fixture(scope="module")
def setup():
  config = UnifiedConfig(mt5=MT5Config.preset("tiny", vocab_size=128, num_encoder_layers=2,
                                              num_decoder_layers=1))
  model = UnifiedModel.from_config(config)
  batch = synthetic_batch(0, B, K, stage1=False)
  params = random_params(model.module, batch["query_tokens"], batch["passage_tokens"],
                         batch["decoder_input_tokens"])
  return model, jax.tree.map(jnp.asarray, params), batch


def _grad(model, objective, params, batch, step):
  fn = jax.jit(jax.value_and_grad(
      lambda p, s: model.loss_fn(p, batch, None, objective=objective, num_questions=B,
                                 enable_dropout=False, step=s), has_aux=True))
  return fn(params, None if step is None else jnp.int32(step))


def test_before_start_the_loss_and_gradient_are_the_reader_s(setup):
  model, params, batch = setup
  warm = objectives.MlqaObjective(distillation_start_steps=START)
  (reader_loss, _), reader_grads = _grad(model, objectives.MlqaObjective(retriever_weight=0.0),
                                         params, batch, None)
  (full_loss, _), full_grads = _grad(model, objectives.MlqaObjective(), params, batch, None)
  for step in (0, START - 1):
    (loss, metrics), grads = _grad(model, warm, params, batch, step)
    assert float(loss) == float(metrics["loss/reader_ce"]) == float(reader_loss)
    assert float(metrics["loss/retriever_kl"]) > 0     # still reported
    jax.tree.map(np.testing.assert_array_equal, grads, reader_grads)
  for step in (START, START + 5):
    (loss, metrics), grads = _grad(model, warm, params, batch, step)
    np.testing.assert_allclose(
        loss, metrics["loss/reader_ce"] + 8.0 * metrics["loss/retriever_kl"], rtol=1e-6)
    np.testing.assert_allclose(loss, full_loss, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
                 grads, full_grads)
  # The distillation term moves some parameter (the retriever head) once it is on.
  head = lambda g: g["retriever"]["query_proj"]
  assert not np.allclose(head(full_grads), head(reader_grads))


def test_the_train_step_passes_its_step(setup):
  model, params, batch = setup
  tx = opt_lib.adamw_with_clipping(opt_lib.linear_warmup_decay(1e-4, 10))
  step_fn = jax.jit(train_step.make_train_step(
      model=model, objective=objectives.MlqaObjective(distillation_start_steps=START),
      optimizer=tx, enable_dropout=False))
  state = TrainState.create(params, tx, seed=0)
  for step in range(START + 1):
    state, m = step_fn(state, batch, None)
    m = jax.device_get(m)
    if step < START:
      assert m["loss"] == m["loss/reader_ce"], step
    else:
      np.testing.assert_allclose(m["loss"], m["loss/reader_ce"] + 8.0 * m["loss/retriever_kl"],
                                 rtol=1e-6)
      assert m["loss"] > m["loss/reader_ce"]


def test_a_warm_up_needs_the_step(setup):
  model, params, batch = setup
  with pytest.raises(ValueError, match="distillation_start_steps=2 needs the optimizer step"):
    _grad(model, objectives.MlqaObjective(distillation_start_steps=START), params, batch, None)
  with pytest.raises(ValueError, match="distillation_start_steps must be an int >= 0"):
    objectives.MlqaObjective(distillation_start_steps=-1)
