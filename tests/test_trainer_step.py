"""The pure train step: microbatching and GradCache equal the plain step; the optimizer is
AdamW(0.9, 0.999, 1e-8, wd 0.01 on all params) after clip 1.0 with warm-up/decay; a (4, 2) mesh
gives the single-device result."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from clqa_jax.losses import objectives
from clqa_jax.losses.teacher import Teacher
from clqa_jax.models.model_api import UnifiedModel
from clqa_jax.partitioning.mesh import MeshConfig
from clqa_jax.partitioning.partitioner import Partitioner, PartitioningConfig
from clqa_jax.trainer import optimizer as opt_lib
from clqa_jax.trainer import state_init
from clqa_jax.trainer import train_step
from fixtures.trainer.compile_cache import compilation_cache  # noqa: F401
from fixtures.trainer.standin_model import StandinUnified
from fixtures.trainer.tiny import tiny_config, tiny_model
from fixtures.trainer.synthetic import synthetic_batch

MODEL = tiny_model()
TEACHER = Teacher(model=tiny_model(d_model=16))


def _partitioner(data=1, model=1, rule_set="dp"):
  devices = jax.devices()[:data * model]
  return Partitioner.from_config(PartitioningConfig(MeshConfig(data=data, model=model), rule_set),
                                 devices)


def _teacher_params():
  return state_init.model_init_fn(TEACHER.model)(jax.random.PRNGKey(7))["params"]


def _run(objective, num_microbatches, batches, partitioner=None, enable_dropout=False,
         model=MODEL):
  partitioner = partitioner or _partitioner()
  sched = opt_lib.linear_warmup_decay(1e-2, total_steps=10)
  tx = opt_lib.adamw_with_clipping(sched)
  state, shardings = state_init.init_train_state(partitioner, model, tx, seed=3)
  teacher = TEACHER if objective.needs_teacher else None
  step = train_step.make_train_step(model=model, objective=objective, optimizer=tx,
                                    learning_rate_fn=sched, num_microbatches=num_microbatches,
                                    teacher=teacher, enable_dropout=enable_dropout)
  t_params = _teacher_params() if teacher else None
  compiled = state_init.compile_train_step(partitioner, step, shardings)
  metrics = []
  for b in batches:
    state, m = compiled(state, partitioner.host_local_batch_to_global(b), t_params)
    metrics.append(jax.device_get(m))
  return jax.device_get(state), metrics


def _assert_trees_close(a, b, rtol=2e-5, atol=2e-6):
  for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(a)[0], jax.tree.leaves(b)):
    np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=str(path))


def test_mlqa_accumulation_equals_plain_step():
  # Plain accumulation does not depend on the model: a cheap stand-in keeps compilation short.
  standin = UnifiedModel(StandinUnified())
  batches = [synthetic_batch(s, batch_size=8, stage1=False) for s in range(2)]
  s1, m1 = _run(objectives.MlqaObjective(), 1, batches, model=standin)
  s2, m2 = _run(objectives.MlqaObjective(), 2, batches, model=standin)
  _assert_trees_close(s1.params, s2.params)
  for a, b in zip(m1, m2):
    for k in ("loss", "loss/reader_ce", "loss/retriever_kl", "grad_norm"):
      np.testing.assert_allclose(a[k], b[k], rtol=1e-5, err_msg=k)


def test_clr_pt_grad_cache_equals_plain_step():
  batches = [synthetic_batch(s, batch_size=8) for s in range(2)]
  s1, m1 = _run(objectives.ClrPtObjective(), 1, batches)
  s2, m2 = _run(objectives.ClrPtObjective(), 2, batches)
  assert int(s2.step) == 2
  _assert_trees_close(s1.params, s2.params)
  for a, b in zip(m1, m2):
    assert set(a) == set(b)
    for k in a:
      np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-7, err_msg=k)
  # Every term is a metric and the retrieval part is non-trivial.
  assert m1[0]["loss/retrieval_kd_en"] > 0 and m1[0]["loss/answer_kl"] > 0


def test_clr_pt_grad_cache_equals_plain_step_for_a_maxsim_student():
  """GradCache differentiates a MaxSim student's token vectors (retriever_head) too."""
  config = tiny_config()
  model = UnifiedModel.from_config(type(config)(mt5=config.mt5, retriever_head=1))
  batches = [synthetic_batch(0, batch_size=4)]
  s1, m1 = _run(objectives.ClrPtObjective(), 1, batches, model=model)
  s2, m2 = _run(objectives.ClrPtObjective(), 2, batches, model=model)
  _assert_trees_close(s1.params, s2.params)
  for k in m1[0]:
    np.testing.assert_allclose(m1[0][k], m2[0][k], rtol=1e-5, atol=1e-7, err_msg=k)
  assert m1[0]["loss/retrieval_kd_en"] > 0


def test_two_clr_pt_steps_on_4x2_mesh_equal_single_device():
  """The global retrieval softmax spans passages held by other devices; same numbers."""
  batches = [synthetic_batch(s, batch_size=8) for s in range(2)]
  single, m_single = _run(objectives.ClrPtObjective(), 1, batches)  # cached program
  mesh_state, m_mesh = _run(objectives.ClrPtObjective(), 1, batches,
                            partitioner=_partitioner(4, 2, "2d"))
  _assert_trees_close(single.params, mesh_state.params)
  _assert_trees_close(single.opt_state, mesh_state.opt_state)
  for a, b in zip(m_single, m_mesh):
    for k in a:
      np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-7, err_msg=k)


def test_schedule_warmup_then_linear_decay_to_zero():
  sched = opt_lib.linear_warmup_decay(1e-4, total_steps=64000)
  warm = 6400
  np.testing.assert_allclose(sched(0), 0.0)
  np.testing.assert_allclose(sched(warm // 2), 5e-5, rtol=1e-6)
  np.testing.assert_allclose(sched(warm), 1e-4, rtol=1e-6)
  np.testing.assert_allclose(sched(warm + (64000 - warm) // 2), 5e-5, rtol=1e-5)
  np.testing.assert_allclose(sched(64000), 0.0)
  # HF rounds the warm-up up: ceil(0.1 * 15) = 2 steps.
  np.testing.assert_allclose(opt_lib.linear_warmup_decay(1.0, 15)(1), 0.5)


def test_adamw_with_clipping_matches_torch_formulas():
  params = {"a": jnp.array([1.0, -2.0, 3.0]), "scale": jnp.array([0.5])}
  grads = {"a": jnp.array([3.0, 0.0, 4.0]), "scale": jnp.array([0.0])}  # global norm 5
  lr, wd, eps = 0.1, 0.01, 1e-8
  tx = opt_lib.adamw_with_clipping(lr)
  upd, _ = tx.update(grads, tx.init(params), params)
  new = optax.apply_updates(params, upd)
  for name in params:
    p = np.asarray(params[name], np.float64)
    g = np.asarray(grads[name], np.float64) / 5.0              # clipped to norm 1
    m, v = 0.1 * g, 0.001 * g * g
    m_hat, v_hat = m / 0.1, v / 0.001
    want = p * (1 - lr * wd) - lr * m_hat / (np.sqrt(v_hat) + eps)
    np.testing.assert_allclose(new[name], want, rtol=1e-6, atol=1e-7)
  # Decay applies to every parameter, including norm scales (zero gradient still decays).
  assert float(new["scale"][0]) < 0.5
