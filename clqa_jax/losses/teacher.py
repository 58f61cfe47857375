"""The frozen stage-1 teacher: retrieval scores over the global passages and reader relevance.

Any unified-model checkpoint can teach (``scorer='dense'``: its single-vector retriever), or a
ReAtt-style model imported into the unified architecture (``scorer='maxsim'``: ColBERT MaxSim
over one head's query/key states at the retrieval layer, summed over query tokens). The teacher
runs in eval mode (no dropout) and everything it returns is behind ``stop_gradient``. Its params
are loaded by the training loop from ``Teacher.checkpoint`` (``clqa_jax.checkpoints``) and
passed in: this module reads no checkpoint.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Mapping

import gin
import jax
import jax.numpy as jnp

from clqa_jax.losses import terms
from clqa_jax.models.model_api import UnifiedModel, check_model

logger = logging.getLogger(__name__)

SCORERS = ("dense", "maxsim")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class Teacher:
  """A frozen unified retriever-reader used as the CLR-PT teacher.

  Attributes:
    model: the teacher's ``UnifiedModel`` (its own config; may differ from the student's).
    checkpoint: where its params come from: a training run (or its checkpoints or one step
      directory) or an exported checkpoint (``clqa export``, ``clqa import class`` / ``clqa
      import hf_mt5 --unified``); the training loop loads it
      (``checkpoints.unified_params.load_unified_params``).
    scorer: 'dense' (dot product of the retrieval vectors) or 'maxsim'.
    maxsim_head: the attention head whose states MaxSim uses (ReAtt: 6).
  """
  model: UnifiedModel = gin.REQUIRED
  checkpoint: str | None = None
  scorer: str = "dense"
  maxsim_head: int = 6

  def __post_init__(self):
    check_model(self.model, "Teacher.model")
    if self.scorer not in SCORERS:
      raise ValueError(f"Teacher.scorer={self.scorer!r}; choose one of {SCORERS}")
    head = getattr(self.model.config, "retriever_head", None)
    if self.scorer == "dense" and head is not None:
      raise ValueError(f"Teacher.scorer='dense' needs a single-vector teacher, but its model "
                       f"scores with MaxSim (UnifiedConfig.retriever_head={head}): use "
                       f"scorer='maxsim' and maxsim_head={head}")

  def outputs(self, params: Any, batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """Teacher representations of the English queries and the batch's passages.

    Returns query_repr [B, ...], passage_repr [B*K, ...] (flattened so microbatches
    concatenate), passage_token_mask [B*K, Lp] (maxsim), query_token_mask [B, Lq] (maxsim) and
    reader_relevance [B, K].
    """
    query_tokens = batch.get("teacher_query_tokens", batch["query_en_tokens"])
    passage_tokens = batch.get("teacher_passage_tokens", batch["passage_tokens"])
    decoder_input = batch.get("teacher_decoder_input_tokens", batch["decoder_input_tokens"])
    out = self.model.forward(params, query_tokens, passage_tokens, decoder_input,
                             enable_dropout=False, return_reader_relevance=True)
    b, k, lp = passage_tokens.shape
    result = {"reader_relevance": out["reader_relevance"]}
    if self.scorer == "dense":
      result["query_repr"] = out["query_vectors"]
      result["passage_repr"] = out["passage_vectors"].reshape(b * k, -1)
    else:
      num_heads = self.model.config.mt5.num_heads
      if not 0 <= self.maxsim_head < num_heads:
        raise ValueError(f"Teacher.maxsim_head={self.maxsim_head} outside [0, {num_heads})")
      # Passage key states once per passage, so every query scores every passage of the
      # global batch.
      q_states = self.model.token_states(params, query_tokens, head=self.maxsim_head,
                                         is_query=True)                    # [B, Lq, Dk]
      p_states = self.model.token_states(params, passage_tokens.reshape(b * k, lp),
                                         head=self.maxsim_head, is_query=False)  # [B*K, Lp, Dk]
      result["query_repr"] = q_states
      result["passage_repr"] = p_states
      result["query_token_mask"] = query_tokens > 0
      result["passage_token_mask"] = passage_tokens.reshape(b * k, lp) > 0
    return jax.tree.map(jax.lax.stop_gradient, result)

  def scores(self, query_out: Mapping[str, jax.Array],
             passage_out: Mapping[str, jax.Array]) -> jax.Array:
    """s_T(q_i, p) for the queries of ``query_out`` and every passage of ``passage_out``."""
    if self.scorer == "dense":
      s = jnp.einsum("bd,nd->bn", query_out["query_repr"].astype(jnp.float32),
                     passage_out["passage_repr"].astype(jnp.float32))
    else:
      s = terms.maxsim_scores(query_out["query_repr"], query_out["query_token_mask"],
                              passage_out["passage_repr"], passage_out["passage_token_mask"])
    return jax.lax.stop_gradient(s)
