"""The PyTorch official-formulation step of benchmarks/gpu_stage2_step.py computes the same
stage-2 loss as our unified model on the same weights, before and after one AdamW step."""
import os
import sys

import flax.linen as nn
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

torch = pytest.importorskip("torch")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))
import torch_official  # pylint: disable=wrong-import-position

B, K, LQ, LP, T = 2, 3, 6, 10, 5
LR = 1e-3


def _torch_batch(batch):
  return {k: torch.from_numpy(np.asarray(v)) for k, v in batch.items()}


def _random_params(model, batch):
  """Random weights of the model's shapes (numpy: no XLA compile of the initialisers)."""
  shapes = nn.unbox(jax.eval_shape(
      model.module.init, {"params": jax.random.PRNGKey(0)}, batch["query_tokens"],
      batch["passage_tokens"], batch["decoder_input_tokens"])["params"])
  rng = np.random.default_rng(0)

  def draw(path, leaf):
    if jax.tree_util.keystr(path).endswith("['scale']"):
      return jnp.asarray(1.0 + 0.1 * rng.standard_normal(leaf.shape), jnp.float32)
    fan_in = leaf.shape[0] if len(leaf.shape) > 1 else 1
    return jnp.asarray(rng.standard_normal(leaf.shape) / np.sqrt(fan_in), jnp.float32)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def test_torch_official_step_matches_unified_model():
  # Two steps (dropout off): the second step's loss is computed on the weights the first
  # step's gradient, clipping and AdamW update produced.
  mt5 = MT5Config.preset("tiny", num_encoder_layers=2, num_decoder_layers=1, dropout_rate=0.0)
  model = UnifiedModel.from_config(UnifiedConfig(mt5=mt5))
  r = model.config.resolved_retriever_layer
  batches = [synthetic_batch(s, B, K, LQ, LP, T, mt5.vocab_size, stage1=False,
                             pad_last_passage=False) for s in range(2)]
  params = _random_params(model, batches[0])
  tx = opt_lib.adamw_with_clipping(opt_lib.linear_warmup_decay(LR, 10, warmup_fraction=0.0))
  step = jax.jit(train_step.make_train_step(model=model, objective=objectives.MlqaObjective(),
                                            optimizer=tx, enable_dropout=False))
  state = TrainState.create(jax.tree.map(jnp.copy, params), tx)
  ours = []
  for batch in batches:
    state, metrics = step(state, batch, None)
    ours.append(float(metrics["loss"]))

  c = mt5
  torch_model = torch_official.OfficialClassModel(torch_official.OfficialConfig(
      vocab_size=c.vocab_size, d_model=c.d_model, d_kv=c.d_kv, d_ff=c.d_ff,
      num_heads=c.num_heads, num_encoder_layers=c.num_encoder_layers,
      num_decoder_layers=c.num_decoder_layers, retriever_layer=r, dropout_rate=0.0),
      checkpointed_layers=torch_official.official_checkpointed_layers(r, c.num_encoder_layers))
  torch_official.load_flax_params(torch_model, jax.device_get(params))
  trainer = torch_official.OfficialTrainer(torch_model, peak_learning_rate=LR, total_steps=10,
                                           warmup_fraction=0.0)
  tb = [_torch_batch(b) for b in batches]
  pairs = [torch_official.official_pairs(b["query_tokens"], b["passage_tokens"]) for b in tb]
  with torch.no_grad():
    before_update = float(trainer.loss(pairs[1], tb[1], B)[0])
  theirs = [trainer.step(p, b)["loss"] for p, b in zip(pairs, tb)]
  np.testing.assert_allclose(theirs, ours, rtol=1e-4)
  # The update moved the second loss by far more than the tolerance.
  assert abs(theirs[1] - before_update) > 1e-2 * abs(before_update)
