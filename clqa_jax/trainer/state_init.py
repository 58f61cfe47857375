"""Sharded creation of the train state and partitioning of the train step.

Shape-first: the model's variables are initialised straight into their shards by the
partitioner, the optimizer state takes its parameters' shardings (``optax.tree_map_params``),
and the step is jitted once with those NamedShardings, the state donated.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from clqa_jax.models.model_api import UnifiedModel
from clqa_jax.partitioning.partitioner import Partitioner
from clqa_jax.trainer.train_state import TrainState


@dataclasses.dataclass(frozen=True)
class InitShapes:
  """Shapes of the dummy inputs used to trace the model's init (params do not depend on them)."""
  query_length: int = 8
  num_passages: int = 2
  passage_length: int = 8
  target_length: int = 4

  def input_shapes(self) -> dict[str, tuple[int, ...]]:
    """``UnifiedModel.get_initial_variables``'s input shapes (batch 1)."""
    return {"query_tokens": (1, self.query_length),
            "passage_tokens": (1, self.num_passages, self.passage_length),
            "decoder_input_tokens": (1, self.target_length)}


def model_init_fn(model: UnifiedModel,
                  shapes: InitShapes = InitShapes()) -> Callable[[jax.Array], Any]:
  """``rng -> variables`` of the unified model, on dummy inputs of ``shapes``."""
  input_shapes = shapes.input_shapes()
  return lambda rng: model.get_initial_variables(rng, input_shapes)


def abstract_params_and_shardings(partitioner: Partitioner, model: UnifiedModel,
                                  shapes: InitShapes = InitShapes()) -> tuple[Any, Any]:
  """(abstract params, their NamedShardings) without allocating anything (restore targets)."""
  abstract, logical = partitioner.abstract_init(model_init_fn(model, shapes),
                                                jax.random.PRNGKey(0))
  shardings = partitioner.shardings_for(abstract, logical)
  return abstract["params"], shardings["params"]


def state_shardings(partitioner: Partitioner, optimizer: optax.GradientTransformation,
                    abstract_params: Any, param_shardings: Any) -> TrainState:
  """NamedShardings of every state leaf: optimizer moments follow their parameters."""
  replicated = NamedSharding(partitioner.mesh, P())
  abstract_opt = jax.eval_shape(optimizer.init, abstract_params)
  opt_shardings = optax.tree_map_params(optimizer, lambda _, s: s, abstract_opt, param_shardings,
                                        transform_non_params=lambda _: replicated)
  return TrainState(step=replicated, params=param_shardings, opt_state=opt_shardings,
                    rng=replicated)


def abstract_state(optimizer: optax.GradientTransformation, abstract_params: Any,
                   shardings: TrainState, seed: int = 42) -> TrainState:
  """ShapeDtypeStructs (with shardings) of the whole state: the orbax restore target."""
  tree = jax.eval_shape(lambda p: TrainState.create(p, optimizer, seed), abstract_params)
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                      tree, shardings)


def init_train_state(partitioner: Partitioner, model: UnifiedModel,
                     optimizer: optax.GradientTransformation, *, seed: int = 42,
                     shapes: InitShapes = InitShapes(),
                     params: Any = None) -> tuple[TrainState, TrainState]:
  """Fresh state (params from ``params`` if given, else the model's init), and its shardings.

  The init RNG is derived from ``seed``, so the same seed gives the same initial params on any
  mesh.
  """
  abstract_params, param_shardings = abstract_params_and_shardings(partitioner, model, shapes)
  shardings = state_shardings(partitioner, optimizer, abstract_params, param_shardings)
  if params is None:
    variables, _ = partitioner.initialize(model_init_fn(model, shapes),
                                          jax.random.fold_in(jax.random.PRNGKey(seed), 1))
    params = variables["params"]
  create = partitioner.partition(lambda p: TrainState.create(p, optimizer, seed),
                                 in_shardings=(param_shardings,), out_shardings=shardings)
  return create(params), shardings


def compile_train_step(partitioner: Partitioner, step_fn: Callable, shardings: TrainState,
                       teacher_shardings: Any = None):
  """jit of ``step(state, batch, teacher_params)``: state donated, batch over the data axes."""
  replicated = NamedSharding(partitioner.mesh, P())
  return partitioner.partition(
      step_fn,
      in_shardings=(shardings, partitioner.batch_sharding(), teacher_shardings),
      out_shardings=(shardings, replicated),
      donate_argnums=(0,))


