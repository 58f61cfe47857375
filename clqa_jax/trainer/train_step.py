"""One pure train step: gradients (plain, accumulated, or GradCache), clip + AdamW, new state.

``make_train_step`` returns ``step(state, batch, teacher_params) -> (state, metrics)``; it has no
side effects and is partitioned once by ``state_init.compile_train_step`` (jit with
NamedSharding in/out shardings, state donated). The dropout RNG of a step is
``fold_in(state.rng, state.step)`` (microbatch m: ``fold_in`` of that with m), so a resumed run
draws the same masks as an uninterrupted one.

Microbatching:
- objectives whose loss is a sum over questions (mlqa) accumulate per-microbatch gradients;
- clr_pt's retrieval softmax spans the whole global batch, so it uses GradCache: (1) a
  gradient-free pass over the microbatches computes every query/passage vector (and the
  teacher's outputs); (2) the retrieval loss and its gradient with respect to those vectors are
  computed once on the whole batch; (3) a per-microbatch pass backpropagates the reader losses
  plus the surrogate <v, sg[dL_ret/dv]>, whose parameter gradient is exactly L_ret's.
  Pass (1) runs the same forward as pass (3) with the same dropout RNG, so the cached vectors
  are exactly the ones pass (3) differentiates, dropout on or off (the price: one extra
  gradient-free forward per microbatch).
- lexa_pt (retriever only) has the same global softmax and no reader: the same vector cache
  without the teacher and the reader terms (``vector_cache_gradients``).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from clqa_jax.losses import lexa_objective
from clqa_jax.losses import objectives as objectives_lib
from clqa_jax.losses.objective import Batch, Metrics, Objective
from clqa_jax.losses.teacher import Teacher
from clqa_jax.models.model_api import UnifiedModel, check_model
from clqa_jax.trainer import microbatch
from clqa_jax.trainer.train_state import TrainState

StepFn = Callable[[TrainState, Batch, Any], tuple[TrainState, dict[str, jax.Array]]]


def _tree_add(a, b):
  return jax.tree.map(jnp.add, a, b)


def _tree_vdot(a: Mapping[str, jax.Array], b: Mapping[str, jax.Array]) -> jax.Array:
  return sum(jnp.sum(a[k].astype(jnp.float32) * b[k].astype(jnp.float32)) for k in a)


def _microbatch_rng(rng: jax.Array, m, num_microbatches: int) -> jax.Array:
  return rng if num_microbatches == 1 else jax.random.fold_in(rng, m)


def accumulated_gradients(objective: Objective, model: UnifiedModel, params: Any, batch: Batch,
                          rng: jax.Array, *, num_microbatches: int, teacher: Teacher | None,
                          teacher_params: Any, enable_dropout: bool = True,
                          step: jax.Array | None = None) -> tuple[Any, Metrics]:
  """Gradient and metrics of ``objective.loss`` summed over microbatches (plain accumulation)."""
  num_questions = microbatch.num_rows(batch)

  def loss_fn(p, mb, r):
    return model.loss_fn(p, mb, r, objective=objective, num_questions=num_questions,
                         teacher=teacher, teacher_params=teacher_params,
                         enable_dropout=enable_dropout, step=step)

  grad_fn = jax.grad(loss_fn, has_aux=True)
  if num_microbatches == 1:
    return grad_fn(params, batch, rng)

  mbs = microbatch.split(batch, num_microbatches)
  grads0 = microbatch.zeros_like_tree(params)
  metrics0 = jax.eval_shape(lambda: loss_fn(params, jax.tree.map(lambda x: x[0], mbs), rng)[1])
  metrics0 = microbatch.zeros_like_tree(metrics0)

  def body(carry, xs):
    mb, m = xs
    g, met = grad_fn(params, mb, _microbatch_rng(rng, m, num_microbatches))
    return (_tree_add(carry[0], g), _tree_add(carry[1], met)), None

  (grads, metrics), _ = jax.lax.scan(body, (grads0, metrics0),
                                     (mbs, jnp.arange(num_microbatches)))
  return grads, metrics


def grad_cache_gradients(objective: objectives_lib.ClrPtObjective, model: UnifiedModel,
                         params: Any, batch: Batch, rng: jax.Array, *, num_microbatches: int,
                         teacher: Teacher, teacher_params: Any, enable_dropout: bool = True
                         ) -> tuple[Any, Metrics]:
  """clr_pt gradients with the retrieval softmax over the whole batch, microbatched (GradCache)."""
  if teacher is None or teacher_params is None:
    raise ValueError("the clr_pt objective needs a teacher (train.teacher in gin)")
  num_questions = batch["query_tokens"].shape[0]
  n_mb = num_microbatches
  mbs = microbatch.split(batch, n_mb)
  ms = jnp.arange(n_mb)

  # (1) Vectors and teacher outputs, no gradient. The same RNG as pass (3) gives the same
  # dropout masks, hence the same vectors.
  def cache_body(_, xs):
    mb, m = xs
    en, xx = objective.student_outputs(model, params, mb,
                                       rng=_microbatch_rng(rng, m, n_mb),
                                       enable_dropout=enable_dropout)
    vectors = jax.lax.stop_gradient(objective.vectors_of(en, xx))
    return None, (vectors, teacher.outputs(teacher_params, mb))

  _, (vectors, t_out) = jax.lax.scan(cache_body, None, (mbs, ms))

  # (2) The retrieval loss on every vector of the batch, and its gradient w.r.t. them.
  flat_vectors = jax.tree.map(microbatch.merge, vectors)
  flat_teacher = jax.tree.map(microbatch.merge, t_out)
  t_scores = teacher.scores(flat_teacher, flat_teacher)
  mask_n = microbatch.merge(objectives_lib.passage_mask(mbs)).reshape(-1)
  token_masks = objective.token_masks(
      {k: microbatch.merge(mbs[k]) for k in ("query_en_tokens", "query_tokens",
                                             "passage_tokens")})
  (ret_loss, ret_metrics), vector_grads = jax.value_and_grad(
      objective.retrieval_loss, has_aux=True)(flat_vectors, t_scores, mask_n, num_questions,
                                              token_masks)
  vector_grads = jax.tree.map(lambda g: microbatch.unmerge(g, n_mb), vector_grads)

  # (3) Per-microbatch backprop of the reader losses plus the surrogate <v, g>.
  def surrogate(p, mb, r, g, relevance):
    en, xx = objective.student_outputs(model, p, mb, rng=r, enable_dropout=enable_dropout)
    read_loss, read_metrics = objective.reader_loss(en, xx, mb, relevance, num_questions)
    return read_loss + _tree_vdot(objective.vectors_of(en, xx), g), (read_loss, read_metrics)

  grad_fn = jax.grad(surrogate, has_aux=True)
  first = jax.tree.map(lambda x: x[0], (mbs, vector_grads, t_out["reader_relevance"]))
  aux_shape = jax.eval_shape(lambda: surrogate(params, first[0], rng, first[1], first[2])[1])

  def body(carry, xs):
    mb, m, g, relevance = xs
    grads, aux = grad_fn(params, mb, _microbatch_rng(rng, m, n_mb), g, relevance)
    return (_tree_add(carry[0], grads), _tree_add(carry[1], aux)), None

  init = (microbatch.zeros_like_tree(params), microbatch.zeros_like_tree(aux_shape))
  (grads, (read_loss, read_metrics)), _ = jax.lax.scan(
      body, init, (mbs, ms, vector_grads, t_out["reader_relevance"]))
  loss = ret_loss + read_loss
  return grads, {"loss": loss, **ret_metrics, **read_metrics}


def vector_cache_gradients(objective: lexa_objective.LexaPtObjective, model: UnifiedModel,
                           params: Any, batch: Batch, *, num_microbatches: int
                           ) -> tuple[Any, Metrics]:
  """lexa_pt gradients with eq. (1) over the whole batch, encoded microbatch by microbatch.

  (1) every vector of every microbatch without gradient; (2) the loss on all of them and its
  gradient with respect to them; (3) per microbatch, the parameter gradient of the surrogate
  <v, sg[dL/dv]>, which sums to dL/dparams. The passage encoder is deterministic, so the
  vectors of pass (3) are those of pass (1).
  """
  num_groups = microbatch.num_rows(batch)
  n_mb = num_microbatches
  mbs = microbatch.split(batch, n_mb)

  def cache_body(_, mb):
    return None, jax.lax.stop_gradient(objective.vectors(model, params, mb))

  _, vectors = jax.lax.scan(cache_body, None, mbs)
  flat_vectors = jax.tree.map(microbatch.merge, vectors)
  flat_batch = jax.tree.map(microbatch.merge, mbs)
  (_, metrics), vector_grads = jax.value_and_grad(objective.loss_from_vectors, has_aux=True)(
      flat_vectors, flat_batch, num_groups)
  vector_grads = jax.tree.map(lambda g: microbatch.unmerge(g, n_mb), vector_grads)

  def surrogate(p, mb, g):
    return _tree_vdot(objective.vectors(model, p, mb), g)

  grad_fn = jax.grad(surrogate)

  def body(carry, xs):
    mb, g = xs
    return _tree_add(carry, grad_fn(params, mb, g)), None

  grads, _ = jax.lax.scan(body, microbatch.zeros_like_tree(params), (mbs, vector_grads))
  return grads, metrics


def make_train_step(*, model: UnifiedModel, objective: Objective,
                    optimizer: optax.GradientTransformation,
                    learning_rate_fn: Callable | None = None, num_microbatches: int = 1,
                    teacher: Teacher | None = None, enable_dropout: bool = True) -> StepFn:
  """Builds the pure step ``(state, batch, teacher_params) -> (state, metrics)``."""
  check_model(model, "train.model")
  if not isinstance(objective, Objective):
    raise TypeError(f"train.objective must satisfy clqa_jax.losses.objective.Objective (name, "
                    f"needs_teacher, loss), got {type(objective).__name__}")
  if num_microbatches < 1:
    raise ValueError(f"num_microbatches must be >= 1, got {num_microbatches}")
  use_grad_cache = isinstance(objective, objectives_lib.ClrPtObjective) and num_microbatches > 1
  use_vector_cache = (isinstance(objective, lexa_objective.LexaPtObjective)
                      and num_microbatches > 1)

  def step(state: TrainState, batch: Batch, teacher_params: Any = None):
    rng = jax.random.fold_in(state.rng, state.step)
    kwargs = dict(num_microbatches=num_microbatches, teacher=teacher,
                  teacher_params=teacher_params, enable_dropout=enable_dropout)
    if use_grad_cache:
      grads, metrics = grad_cache_gradients(objective, model, state.params, batch, rng, **kwargs)
    elif use_vector_cache:
      grads, metrics = vector_cache_gradients(objective, model, state.params, batch,
                                              num_microbatches=num_microbatches)
    else:
      grads, metrics = accumulated_gradients(objective, model, state.params, batch, rng,
                                             step=state.step, **kwargs)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics)
    metrics["grad_norm"] = optax.tree.norm(grads)
    # Non-finite updates (not only losses) must stop training before the state is saved.
    metrics["update_norm"] = optax.tree.norm(updates)
    if learning_rate_fn is not None:
      metrics["learning_rate"] = jnp.asarray(learning_rate_fn(state.step), jnp.float32)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, metrics

  return step
