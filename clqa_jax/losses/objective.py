"""The contract of a training objective (``clr_pt``, ``mlqa``, ...), as the train step uses it.

An objective is a frozen (gin-configurable) value with a ``name``, a ``needs_teacher`` flag and
``loss``: the scalar loss of one (micro)batch and its metrics, both already divided by the
*global* number of questions so that microbatch results add up to the step's.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Protocol, runtime_checkable

import jax

if TYPE_CHECKING:
  from clqa_jax.losses.teacher import Teacher
  from clqa_jax.models.model_api import UnifiedModel

# Feature name -> array: query_tokens [B, Lq], passage_tokens [B, K, Lp], passage_rows [B, K],
# decoder_input_tokens / decoder_target_tokens / decoder_loss_weights [B, T] and, for stage 1,
# query_en_tokens [B, Lq] (see clqa_jax.models.model_api).
Batch = Mapping[str, jax.Array]
# Metric name ("loss", "loss/<term>") -> scalar, additive over microbatches.
Metrics = dict[str, jax.Array]


@runtime_checkable
class Objective(Protocol):
  """What ``train_step`` and ``UnifiedModel.loss_fn`` need of an objective."""

  @property
  def name(self) -> str:
    """The gin name (``objective_by_name.name``)."""
    ...

  @property
  def needs_teacher(self) -> bool:
    """True when ``loss`` needs ``teacher`` and ``teacher_params``."""
    ...

  def loss(self, params: Any, batch: Batch, *, model: UnifiedModel, rng: jax.Array | None,
           num_questions: int, teacher: Teacher | None = None, teacher_params: Any = None,
           enable_dropout: bool = True, step: jax.Array | None = None
           ) -> tuple[jax.Array, Metrics]:
    """(scalar loss / num_questions, metrics) of ``model`` with ``params`` on ``batch``.

    Args:
      params: the student's params.
      batch: one (micro)batch of B questions.
      model: the student.
      rng: the dropout key (None: no dropout RNG).
      num_questions: questions in the whole global batch (the divisor).
      teacher, teacher_params: the frozen teacher, for objectives that need one.
      enable_dropout: train-mode dropout in the student.
      step: the optimizer step (int scalar, 0 for the first update), for objectives whose
        terms switch on at a step; None outside training (such an objective then raises).
    """
    ...
