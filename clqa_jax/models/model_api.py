"""The one way to run a unified retriever-reader: ``UnifiedModel`` (the T5X ``BaseModel`` idea).

A frozen wrapper around the flax module (``UnifiedRetrieverReader``, or any module with its
call contract) whose methods are pure functions of ``params`` and arrays. Training, evaluation,
index building, the passage refresh and both teachers call these methods; none of them calls
``module.apply`` itself. Callers jit and partition the methods where they did before (the
wrapper adds no jit, sharding or logical-axis rules of its own).

Batches are the trainer's feature dicts:
  query_tokens          int32 [B, Lq]
  passage_tokens        int32 [B, K, Lp]
  decoder_input_tokens  int32 [B, T]
  decoder_target_tokens int32 [B, T]
  decoder_loss_weights  [B, T] (1 on answer tokens, 0 on padding)
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from clqa_jax.losses import divergences
from clqa_jax.models import decoding
from clqa_jax.models.unified import UnifiedConfig, UnifiedRetrieverReader

if TYPE_CHECKING:
  from clqa_jax.losses.objective import Metrics, Objective
  from clqa_jax.losses.teacher import Teacher

Params = Any
Batch = Mapping[str, jax.Array]
# Names and shapes of the inputs ``get_initial_variables`` traces the module on.
INIT_INPUTS = ("query_tokens", "passage_tokens", "decoder_input_tokens")


@dataclasses.dataclass(frozen=True)
class UnifiedModel:
  """The unified module and the pure functions every caller runs it through.

  Attributes:
    module: ``UnifiedRetrieverReader`` (or a module with its ``__call__``, ``encode_queries``,
      ``encode_passages`` contract; decoding and token states need the real one).
  """
  module: nn.Module

  def __post_init__(self):
    if not isinstance(self.module, nn.Module):
      raise TypeError(f"UnifiedModel.module must be a flax module, got "
                      f"{type(self.module).__name__}")

  @classmethod
  def from_config(cls, config: UnifiedConfig) -> "UnifiedModel":
    return cls(UnifiedRetrieverReader(config))

  @property
  def config(self) -> UnifiedConfig:
    """The module's ``UnifiedConfig`` (AttributeError for a module without one)."""
    return self.module.config

  # -- variables -----------------------------------------------------------------------------

  def get_initial_variables(self, rng: jax.Array,
                            input_shapes: Mapping[str, Sequence[int]]) -> dict[str, Any]:
    """Fresh variables ({"params": ...}, logically boxed) traced on ones of ``input_shapes``.

    input_shapes: query_tokens (B, Lq), passage_tokens (B, K, Lp), decoder_input_tokens (B, T);
    the params do not depend on them.
    """
    missing = [k for k in INIT_INPUTS if k not in input_shapes]
    if missing:
      raise ValueError(f"get_initial_variables: input_shapes lacks {missing}")
    inputs = [jnp.ones(tuple(input_shapes[k]), jnp.int32) for k in INIT_INPUTS]
    return self.module.init({"params": rng, "dropout": rng}, *inputs, enable_dropout=False,
                            return_reader_relevance=True)

  # -- training ------------------------------------------------------------------------------

  def forward(self, params: Params, query_tokens: jax.Array, passage_tokens: jax.Array,
              decoder_input_tokens: jax.Array, *, rng: jax.Array | None = None,
              enable_dropout: bool = False,
              return_reader_relevance: bool = True) -> dict[str, jax.Array]:
    """The full retriever-reader on query_tokens [N, Lq], passage_tokens [B, K, Lp],
    decoder_input_tokens [N, T], N = B * C: C >= 1 queries per question, question-major, share
    its passages (their lower stack runs once; ``UnifiedRetrieverReader.encode_for_reader``).

    Returns logits [N, T, V], query_vectors [N, D], passage_vectors [N, K, D],
    retrieval_scores [N, K] and, when asked, reader_relevance [N, K]; a MaxSim model
    (``UnifiedConfig.retriever_head``) also query_token_vectors [N, Lq, Dk] and
    passage_token_vectors [N, K, Lp, Dk], and its retrieval_scores are the MaxSim sums.
    ``rng`` seeds dropout (used only with ``enable_dropout``).
    """
    rngs = {"dropout": rng} if (enable_dropout and rng is not None) else {}
    return self.module.apply({"params": params}, query_tokens, passage_tokens,
                             decoder_input_tokens, enable_dropout=enable_dropout,
                             return_reader_relevance=return_reader_relevance, rngs=rngs)

  def loss_fn(self, params: Params, batch: Batch, rng: jax.Array | None, *,
              objective: "Objective", num_questions: int, teacher: "Teacher | None" = None,
              teacher_params: Params = None, enable_dropout: bool = True,
              step: jax.Array | None = None) -> tuple[jax.Array, "Metrics"]:
    """``objective``'s (loss, metrics) of this model on ``batch`` (see ``losses.objective``)."""
    return objective.loss(params, batch, model=self, rng=rng, num_questions=num_questions,
                          teacher=teacher, teacher_params=teacher_params,
                          enable_dropout=enable_dropout, step=step)

  # -- reading -------------------------------------------------------------------------------

  def _encode_for_decoding(self, params: Params, batch: Batch) -> dict[str, jax.Array]:
    """memory, memory_mask and (with the attention offset) memory_bias for ``generate``."""
    return self.module.apply({"params": params}, batch["query_tokens"], batch["passage_tokens"],
                             method="encode_for_decoding")

  def predict_batch(self, params: Params, batch: Batch, *,
                    max_length: int = decoding.MAX_ANSWER_LENGTH, beam_size: int = 1,
                    length_penalty: float = 1.0) -> jax.Array:
    """Answers for batch query_tokens [B, Lq] over passage_tokens [B, K, Lp] (FiD).

    Greedy for beam_size 1, else the best beam. Returns tokens int32 [B, max_length], padding
    after EOS.
    """
    if beam_size == 1:
      enc = self._encode_for_decoding(params, batch)
      return decoding.generate(self.module, params, enc["memory"], enc["memory_mask"],
                               max_length=max_length, memory_bias=enc.get("memory_bias"))
    tokens, _ = self.predict_beams(params, batch, beam_size=beam_size, max_length=max_length,
                                   length_penalty=length_penalty)
    return tokens[:, 0]

  def predict_beams(self, params: Params, batch: Batch, *, beam_size: int,
                    max_length: int = decoding.MAX_ANSWER_LENGTH,
                    length_penalty: float = 1.0) -> tuple[jax.Array, jax.Array]:
    """Beam search (``decoding.beam_search``): tokens [B, W, max_length] and their
    length-normalised scores [B, W], best first."""
    if beam_size < 2:
      raise ValueError(f"predict_beams needs beam_size >= 2, got {beam_size}")
    enc = self._encode_for_decoding(params, batch)
    return decoding.generate(self.module, params, enc["memory"], enc["memory_mask"],
                             max_length=max_length, beam_size=beam_size,
                             length_penalty=length_penalty, memory_bias=enc.get("memory_bias"))

  def score_batch(self, params: Params, batch: Batch) -> jax.Array:
    """Answer log-likelihood per example, sum_t w_t log p(y_t | y_<t, q, P) -> float32 [B].

    Uses decoder_input_tokens / decoder_target_tokens / decoder_loss_weights [B, T] (eval mode).
    """
    out = self.forward(params, batch["query_tokens"], batch["passage_tokens"],
                       batch["decoder_input_tokens"], return_reader_relevance=False)
    token_ll = -divergences.token_cross_entropy(out["logits"], batch["decoder_target_tokens"])
    return jnp.sum(token_ll * batch["decoder_loss_weights"].astype(jnp.float32), axis=-1)

  # -- retrieval -----------------------------------------------------------------------------

  def _check_single_vector(self, what: str) -> None:
    head = getattr(getattr(self.module, "config", None), "retriever_head", None)
    if head is not None:
      raise ValueError(f"{what}: the passage index and refresh are single-vector, but this model "
                       f"scores with MaxSim (UnifiedConfig.retriever_head={head}); train it with "
                       "fixed passages (retrieval='teacher_pids') and no dev evaluation")

  def embed_queries(self, params: Params, query_tokens: jax.Array, *,
                    rng: jax.Array | None = None, enable_dropout: bool = False) -> jax.Array:
    """query_tokens int32 [N, Lq] -> query vectors [N, D] (lower stack and head only).
    ``rng`` seeds dropout (used only with ``enable_dropout``: retriever-only training)."""
    self._check_single_vector("embed_queries")
    return self._embed("encode_queries", params, query_tokens, rng, enable_dropout)

  def embed_passages(self, params: Params, passage_tokens: jax.Array, *,
                     rng: jax.Array | None = None, enable_dropout: bool = False) -> jax.Array:
    """passage_tokens int32 [N, Lp] -> passage vectors [N, D] (lower stack and head only)."""
    self._check_single_vector("embed_passages")
    return self._embed("encode_passages", params, passage_tokens, rng, enable_dropout)

  def _embed(self, method: str, params: Params, tokens: jax.Array, rng: jax.Array | None,
             enable_dropout: bool) -> jax.Array:
    if not enable_dropout:  # the eval-mode call every module of the contract takes
      return self.module.apply({"params": params}, tokens, method=method)
    rngs = {"dropout": rng} if rng is not None else {}
    return self.module.apply({"params": params}, tokens, enable_dropout=True, method=method,
                             rngs=rngs)

  def token_states(self, params: Params, tokens: jax.Array, *, head: int,
                   is_query: bool) -> jax.Array:
    """One head's layer-R query (``is_query``) or key states of segments tokens [..., L] ->
    [..., L, Dk]: the MaxSim teacher's token vectors
    (``UnifiedRetrieverReader.retrieval_token_states``)."""
    return self.module.apply({"params": params}, tokens, head=head, is_query=is_query,
                             method="retrieval_token_states")


def check_model(model: Any, field: str) -> UnifiedModel:
  """``model`` if it is a UnifiedModel, else a TypeError naming the (gin) ``field``."""
  if not isinstance(model, UnifiedModel):
    raise TypeError(f"{field} must be a clqa_jax.models.model_api.UnifiedModel (gin: "
                    f"@refresh.unified_model()), got {type(model).__name__}")
  return model
