"""LEXA pre-training (reference/peer-methods.md section 3): the retriever-only objective ``lexa_pt``.

A batch holds G topic groups (``data/topic_feed.py``), each the masked first paragraphs of one
topic in up to n distinct languages:

  anchor_tokens       int32 [G, Lp]     the anchor d_j (a masked copy of one of the documents)
  document_tokens     int32 [G, n, Lp]  d_1..d_n; the anchor's own slot holds a second,
                                        independently masked copy of it
  document_mask       bool  [G, n]      real documents (groups are padded to n)
  topic_ids           int32 [G]         the group's topic (two groups may share one)
and, in stage 2, the hard negatives mined for each group (``trainer/lexa_mining.py``):
  negative_tokens     int32 [G, H, Lp]
  negative_mask       bool  [G, H]
  negative_topic_ids  int32 [G, H]

Every text is encoded by the passage encoder (``UnifiedModel.embed_passages``: one encoder,
dot-product similarity, no temperature). Eq. (1) is ``terms.lexa_contrastive`` over the *global*
batch: N_g is every document of the batch (and every mined one) whose topic differs from group
g's, so a same-topic document, including one of a duplicate group, never enters a denominator.
Reduction: the mean over anchors (the spec's recommendation), i.e. the sum over groups divided
by ``num_questions`` = G of the global batch, additive over microbatches.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import gin
import jax
import jax.numpy as jnp

from clqa_jax.losses import terms
from clqa_jax.losses.objective import Batch, Metrics
from clqa_jax.models.model_api import UnifiedModel

NEGATIVE_FEATURES = ("negative_tokens", "negative_mask", "negative_topic_ids")


def _embed(model: UnifiedModel, params: Any, tokens: jax.Array) -> jax.Array:
  """tokens [..., Lp] -> passage vectors [..., D] (one encoder call over all rows)."""
  flat = tokens.reshape(-1, tokens.shape[-1])
  vectors = model.embed_passages(params, flat)
  return vectors.reshape(tokens.shape[:-1] + vectors.shape[-1:])


def has_negatives(batch: Batch) -> bool:
  """Whether the batch carries mined negatives (all three features, or none)."""
  present = [k in batch for k in NEGATIVE_FEATURES]
  if any(present) and not all(present):
    raise KeyError(f"a lexa_pt batch with mined negatives needs all of {NEGATIVE_FEATURES}, "
                   f"got {sorted(k for k in NEGATIVE_FEATURES if k in batch)}")
  return all(present)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class LexaPtObjective:
  """LEXA eq. (1), contrastive pre-training of the passage encoder on topic groups."""
  name: str = "lexa_pt"
  needs_teacher: bool = False

  # -- pieces (the vector cache of the train step needs them separately) -------------------

  def vectors(self, model: UnifiedModel, params: Any, batch: Batch) -> dict[str, jax.Array]:
    """anchors [G, D], documents [G, n, D] and, with mined negatives, negatives [G, H, D]."""
    out = {"anchors": _embed(model, params, batch["anchor_tokens"]),
           "documents": _embed(model, params, batch["document_tokens"])}
    if has_negatives(batch):
      out["negatives"] = _embed(model, params, batch["negative_tokens"])
    return out

  @staticmethod
  def group_losses(vectors: Mapping[str, jax.Array], batch: Batch) -> jax.Array:
    """Eq. (1) of every group against every candidate of the batch -> [G]."""
    docs = vectors["documents"]
    g, n, d = docs.shape
    candidates = [docs.reshape(g * n, d)]
    candidate_topics = [jnp.broadcast_to(batch["topic_ids"][:, None], (g, n)).reshape(-1)]
    candidate_mask = [batch["document_mask"].reshape(-1)]
    if "negatives" in vectors:
      h = vectors["negatives"].shape[1]
      candidates.append(vectors["negatives"].reshape(g * h, d))
      candidate_topics.append(batch["negative_topic_ids"].reshape(-1))
      candidate_mask.append(batch["negative_mask"].reshape(-1))
    return terms.lexa_contrastive(
        vectors["anchors"], docs, batch["document_mask"], jnp.concatenate(candidates),
        jnp.concatenate(candidate_topics), batch["topic_ids"],
        jnp.concatenate(candidate_mask).astype(bool))

  def loss_from_vectors(self, vectors: Mapping[str, jax.Array], batch: Batch,
                        num_questions: int) -> tuple[jax.Array, Metrics]:
    """(sum over groups / num_questions, metrics): ``vectors`` and ``batch`` of the global batch."""
    loss = jnp.sum(self.group_losses(vectors, batch)) / num_questions
    positives = jnp.sum(batch["document_mask"].astype(jnp.float32)) / num_questions
    return loss, {"loss": loss, "loss/lexa_contrastive": loss, "lexa/positives": positives}

  # -- the whole objective in one pass ------------------------------------------------------

  def loss(self, params: Any, batch: Batch, *, model: UnifiedModel, rng: jax.Array | None,
           num_questions: int, teacher: Any = None, teacher_params: Any = None,
           enable_dropout: bool = True, step: jax.Array | None = None
           ) -> tuple[jax.Array, Metrics]:
    # The passage encoder runs in inference mode (see gin/experiments/mini_lexa.gin).
    del rng, teacher, teacher_params, enable_dropout, step
    return self.loss_from_vectors(self.vectors(model, params, batch), batch, num_questions)
