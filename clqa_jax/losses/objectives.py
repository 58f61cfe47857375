"""The stage objectives, composed from ``terms`` and selected in gin.

Every objective satisfies ``objective.Objective`` (the train step's contract). Conventions
shared by every objective:
- a loss is returned already divided by the *global* number of questions (``num_questions``),
  so summing the losses of the microbatches of a step gives the step's loss; every metric
  follows the same convention (additive over microbatches);
- every term is reported as its own metric (``loss/<term>``, the unweighted per-question mean)
  next to the total ``loss``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import gin
import jax
import jax.numpy as jnp

from clqa_jax.losses import lexa_objective
from clqa_jax.losses import terms
from clqa_jax.losses.objective import Batch, Metrics, Objective
from clqa_jax.losses.teacher import Teacher
from clqa_jax.models.model_api import UnifiedModel


def passage_mask(batch: Batch) -> jax.Array:
  """True for real passages ([B, K]); passage_rows == -1 marks padding passages."""
  return batch["passage_rows"] >= 0


def student_forward(model: UnifiedModel, params: Any, query_tokens: jax.Array, batch: Batch, *,
                    rng: jax.Array | None, enable_dropout: bool) -> dict[str, jax.Array]:
  """Runs the unified model on ``query_tokens`` [B, Lq] with the batch's passages and answers."""
  return model.forward(params, query_tokens, batch["passage_tokens"],
                       batch["decoder_input_tokens"], rng=rng, enable_dropout=enable_dropout,
                       return_reader_relevance=True)


def is_multi_vector(outputs: Mapping[str, jax.Array]) -> bool:
  """True for a MaxSim student (``UnifiedConfig.retriever_head`` set): it returns token vectors."""
  return "query_token_vectors" in outputs


def query_token_mask(query_tokens: jax.Array) -> jax.Array:
  """Real query tokens (pad id 0, the batch contract)."""
  return query_tokens != 0


@gin.configurable
@dataclasses.dataclass(frozen=True)
class MlqaObjective:
  """Stage 2 and fine-tuning: reader CE + lambda * KL(sg reader relevance || retriever softmax).

  The retriever softmax runs over the question's own K passages only (no in-batch negatives).
  ``distillation_start_steps`` (the official option; its scripts use 0): for optimizer steps
  < N the reader trains alone (loss = reader CE, the KL gets weight 0 and so no gradient);
  the KL is still reported.
  A MaxSim student (``UnifiedConfig.retriever_head``) scores s(q, p) = MaxSim(q, p) / |q|, the
  sum over query tokens divided by the query's token count (the official stage-2 scores).
  """
  retriever_weight: float = 8.0
  distillation_start_steps: int = 0
  name: str = "mlqa"
  needs_teacher: bool = False

  def __post_init__(self):
    n = self.distillation_start_steps
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
      raise ValueError(f"MlqaObjective.distillation_start_steps must be an int >= 0, got {n!r}")

  def distillation_weight(self, step: jax.Array | None) -> jax.Array | float:
    """lambda from step ``distillation_start_steps`` on, 0 before (reader warm-up)."""
    if self.distillation_start_steps == 0:
      return self.retriever_weight
    if step is None:
      raise ValueError(f"MlqaObjective.distillation_start_steps="
                       f"{self.distillation_start_steps} needs the optimizer step (loss(..., "
                       "step=state.step), as the train step passes it)")
    return jnp.where(step >= self.distillation_start_steps, self.retriever_weight, 0.0)

  @staticmethod
  def retrieval_scores(outputs: Mapping[str, jax.Array], batch: Batch) -> jax.Array:
    """The student's scores of each question's own K passages [B, K]."""
    scores = outputs["retrieval_scores"]
    if not is_multi_vector(outputs):
      return scores
    q_len = jnp.sum(query_token_mask(batch["query_tokens"]), axis=-1, dtype=jnp.float32)
    return scores / jnp.maximum(q_len, 1.0)[:, None]

  def loss_from_outputs(self, outputs: Mapping[str, jax.Array], batch: Batch,
                        num_questions: int, step: jax.Array | None = None
                        ) -> tuple[jax.Array, Metrics]:
    mask = passage_mask(batch)
    ce = terms.reader_cross_entropy(outputs["logits"], batch["decoder_target_tokens"],
                                    batch["decoder_loss_weights"])
    kl = terms.reader_to_retriever_distillation(outputs["reader_relevance"],
                                                self.retrieval_scores(outputs, batch), mask)
    ce_sum, kl_sum = jnp.sum(ce) / num_questions, jnp.sum(kl) / num_questions
    loss = ce_sum + self.distillation_weight(step) * kl_sum
    return loss, {"loss": loss, "loss/reader_ce": ce_sum, "loss/retriever_kl": kl_sum}

  def loss(self, params: Any, batch: Batch, *, model: UnifiedModel, rng: jax.Array | None,
           num_questions: int, teacher: Teacher | None = None, teacher_params: Any = None,
           enable_dropout: bool = True, step: jax.Array | None = None
           ) -> tuple[jax.Array, Metrics]:
    del teacher, teacher_params
    outputs = student_forward(model, params, batch["query_tokens"], batch, rng=rng,
                              enable_dropout=enable_dropout)
    return self.loss_from_outputs(outputs, batch, num_questions, step)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class SupervisedRetrievalObjective:
  """The stage-2 loss plus DPR's NLL of each question's labelled passage:

    L = MlqaObjective + dpr_weight * (1/B_g) sum_i -log softmax_n <e_q_i, e_p_n> [positive_i]

  over every passage of the (micro)batch (``terms.dpr_nll``), passage 0 being the question's
  labelled positive (``TrainFeed.source_first``). Not a CLASS stage: it trains a retriever-
  reader with retrieval labels, as the paper's English teacher (ReAtt, trained end-to-end on
  NQ starting from DPR, a retriever trained on labelled passages) was, when no such teacher is
  at hand (the demo's teacher). Single-vector retriever only.
  """
  retriever_weight: float = 8.0
  dpr_weight: float = 1.0
  distillation_start_steps: int = 0
  name: str = "mlqa_supervised_retrieval"
  needs_teacher: bool = False

  def loss(self, params: Any, batch: Batch, *, model: UnifiedModel, rng: jax.Array | None,
           num_questions: int, teacher: Teacher | None = None, teacher_params: Any = None,
           enable_dropout: bool = True, step: jax.Array | None = None
           ) -> tuple[jax.Array, Metrics]:
    del teacher, teacher_params
    outputs = student_forward(model, params, batch["query_tokens"], batch, rng=rng,
                              enable_dropout=enable_dropout)
    if is_multi_vector(outputs):
      raise ValueError(f"the {self.name} objective needs a single-vector retriever "
                       "(UnifiedConfig.retriever_head = None)")
    mlqa = MlqaObjective(self.retriever_weight, self.distillation_start_steps)
    loss, metrics = mlqa.loss_from_outputs(outputs, batch, num_questions, step)
    nll = jnp.sum(terms.dpr_nll(outputs["query_vectors"], outputs["passage_vectors"],
                                passage_mask(batch))) / num_questions
    loss = loss + self.dpr_weight * nll
    return loss, {**metrics, "loss": loss, "loss/dpr_nll": nll}


def _split_copies(tree: Mapping[str, jax.Array]) -> tuple[dict, dict]:
  """Outputs of question-major rows [B * 2, ...] -> (rows 0, 2, 4, ...; rows 1, 3, 5, ...)."""
  return ({k: v[0::2] for k, v in tree.items()}, {k: v[1::2] for k, v in tree.items()})


@gin.configurable
@dataclasses.dataclass(frozen=True)
class ClrPtObjective:
  """Stage 1 (CLR-PT), reference/class-method.md section 3.3, lambda = 8.

  L = lambda/B_g sum_i [KL(p_T||r^en) + KL(p_T||r^xx) + KL(sg r^en||r^xx)]      (global batch)
    + 1/(2B_g) sum_j [CE_tokmean_j + KL(a_T||a_S,j)]                             (en and xx rows)
    + 1/B_g sum_i 1/|y_i| sum_t KL(sg P(.|q^en_i) || P(.|q^xx_i))                (xx rows)
  The switches drop terms for the ablations (their metrics are still reported).
  A MaxSim student (``UnifiedConfig.retriever_head``) scores every query against every passage
  of the batch with the MaxSim sum over query tokens, not normalised (the official stage-1
  scores, unlike stage 2's).
  """
  retriever_weight: float = 8.0
  teacher_distillation: bool = True
  cross_lingual_alignment: bool = True
  attention_distillation: bool = True
  answer_alignment: bool = True
  name: str = "clr_pt"
  needs_teacher: bool = True

  # -- pieces (GradCache needs them separately) ---------------------------------------------

  def student_outputs(self, model: UnifiedModel, params: Any, batch: Batch, *,
                      rng: jax.Array | None, enable_dropout: bool) -> tuple[dict, dict]:
    """One forward of both queries of each pair over the pair's passages -> (en, xx).

    Rows are question-major (q^en_i, q^xx_i at rows 2i, 2i + 1), so the model's lower stack
    encodes every passage once for both queries and a device keeps its own questions.
    """
    b = batch["query_tokens"].shape[0]
    queries = jnp.stack([batch["query_en_tokens"], batch["query_tokens"]], axis=1)
    decoder_inputs = jnp.broadcast_to(batch["decoder_input_tokens"][:, None],
                                      (b, 2) + batch["decoder_input_tokens"].shape[1:])
    outputs = model.forward(params, queries.reshape(2 * b, -1), batch["passage_tokens"],
                            decoder_inputs.reshape(2 * b, -1), rng=rng,
                            enable_dropout=enable_dropout, return_reader_relevance=True)
    return _split_copies(outputs)

  @staticmethod
  def token_masks(batch: Batch) -> dict[str, jax.Array]:
    """The MaxSim token masks of a batch: query_en, query_xx [B, Lq], passages [B, K, Lp]."""
    return {"query_en": query_token_mask(batch["query_en_tokens"]),
            "query_xx": query_token_mask(batch["query_tokens"]),
            "passages": batch["passage_tokens"] != 0}

  @staticmethod
  def student_scores(queries: jax.Array, passages: jax.Array, query_mask_BQ: jax.Array | None,
                     passage_mask_BKP: jax.Array | None) -> jax.Array:
    """s(q_i, p) for every query and every passage of the batch given -> [B, B*K].

    Single-vector: queries [B, D], passages [B, K, D]. MaxSim: queries [B, Lq, Dk], passages
    [B, K, Lp, Dk] with their token masks.
    """
    if queries.ndim == 2:
      return terms.global_scores(queries, passages)
    if query_mask_BQ is None or passage_mask_BKP is None:
      raise ValueError("MaxSim retrieval scores need the token masks (ClrPtObjective."
                       "token_masks of the batch)")
    b, k, lp, dk = passages.shape
    return terms.maxsim_scores(queries, query_mask_BQ, passages.reshape(b * k, lp, dk),
                               passage_mask_BKP.reshape(b * k, lp))

  def retrieval_loss(self, vectors: Mapping[str, jax.Array], teacher_scores_BN: jax.Array,
                     passage_mask_N: jax.Array, num_questions: int,
                     token_masks: Mapping[str, jax.Array] | None = None
                     ) -> tuple[jax.Array, Metrics]:
    """The three retrieval KLs over all passages of the batch given (the global batch).

    vectors: query_en [B, D], query_xx [B, D], passages_en [B, K, D], passages_xx [B, K, D]
    (a MaxSim student: query_* [B, Lq, Dk], passages_* [B, K, Lp, Dk], with ``token_masks``).
    """
    m = token_masks or {}
    en_scores = self.student_scores(vectors["query_en"], vectors["passages_en"],
                                    m.get("query_en"), m.get("passages"))
    xx_scores = self.student_scores(vectors["query_xx"], vectors["passages_xx"],
                                    m.get("query_xx"), m.get("passages"))
    kd_en = jnp.sum(terms.retrieval_distillation(teacher_scores_BN, en_scores,
                                                 passage_mask_N)) / num_questions
    kd_xx = jnp.sum(terms.retrieval_distillation(teacher_scores_BN, xx_scores,
                                                 passage_mask_N)) / num_questions
    align = jnp.sum(terms.retrieval_alignment(en_scores, xx_scores,
                                              passage_mask_N)) / num_questions
    total = (kd_en + kd_xx) * self.teacher_distillation
    total = total + align * self.cross_lingual_alignment
    loss = self.retriever_weight * total
    return loss, {"loss/retrieval": loss, "loss/retrieval_kd_en": kd_en,
                  "loss/retrieval_kd_xx": kd_xx, "loss/retrieval_alignment": align}

  def reader_loss(self, en: Mapping[str, jax.Array], xx: Mapping[str, jax.Array], batch: Batch,
                  teacher_relevance_BK: jax.Array, num_questions: int
                  ) -> tuple[jax.Array, Metrics]:
    """Reader CE and attention KL on en and xx rows, answer-distribution KL on xx rows."""
    targets, weights = batch["decoder_target_tokens"], batch["decoder_loss_weights"]
    mask = passage_mask(batch)
    rows = 2 * num_questions
    ce = (jnp.sum(terms.reader_cross_entropy(en["logits"], targets, weights))
          + jnp.sum(terms.reader_cross_entropy(xx["logits"], targets, weights))) / rows
    att = (jnp.sum(terms.attention_distillation(teacher_relevance_BK, en["reader_relevance"],
                                                mask))
           + jnp.sum(terms.attention_distillation(teacher_relevance_BK, xx["reader_relevance"],
                                                  mask))) / rows
    lm = jnp.sum(terms.answer_distribution_alignment(en["logits"], xx["logits"],
                                                     weights)) / num_questions
    loss = ce + att * self.attention_distillation + lm * self.answer_alignment
    return loss, {"loss/reader_ce": ce, "loss/attention_kl": att, "loss/answer_kl": lm}

  @staticmethod
  def vectors_of(en: Mapping[str, jax.Array], xx: Mapping[str, jax.Array]) -> dict:
    """What the retrieval loss scores: the single vectors, or a MaxSim student's token ones."""
    q, p = (("query_token_vectors", "passage_token_vectors") if is_multi_vector(en)
            else ("query_vectors", "passage_vectors"))
    return {"query_en": en[q], "query_xx": xx[q], "passages_en": en[p], "passages_xx": xx[p]}

  # -- the whole objective in one pass ------------------------------------------------------

  def loss(self, params: Any, batch: Batch, *, model: UnifiedModel, rng: jax.Array | None,
           num_questions: int, teacher: Teacher | None = None, teacher_params: Any = None,
           enable_dropout: bool = True, step: jax.Array | None = None
           ) -> tuple[jax.Array, Metrics]:
    del step  # Stage 1 has no reader warm-up (the official distillation trainer has none).
    if teacher is None or teacher_params is None:
      raise ValueError("the clr_pt objective needs a teacher: set train.teacher and its "
                       "checkpoint (Teacher.checkpoint) in gin")
    en, xx = self.student_outputs(model, params, batch, rng=rng, enable_dropout=enable_dropout)
    t_out = teacher.outputs(teacher_params, batch)
    t_scores = teacher.scores(t_out, t_out)
    mask_n = passage_mask(batch).reshape(-1)
    ret_loss, ret_metrics = self.retrieval_loss(self.vectors_of(en, xx), t_scores, mask_n,
                                                num_questions, self.token_masks(batch))
    read_loss, read_metrics = self.reader_loss(en, xx, batch, t_out["reader_relevance"],
                                               num_questions)
    loss = ret_loss + read_loss
    return loss, {"loss": loss, **ret_metrics, **read_metrics}


def require_relevance_mode(model: UnifiedModel, mode: str, objective: str) -> None:
  """A ValueError unless the model's reader relevance is ``mode`` (the objective needs it)."""
  have = model.config.reader_relevance_mode
  if have != mode:
    raise ValueError(f"the {objective} objective needs UnifiedConfig.reader_relevance_mode = "
                     f"'{mode}' in gin, got '{have}'")


def _relevance_objective_loss(objective: Any, mode: str, model: UnifiedModel, params: Any,
                              batch: Batch, rng: jax.Array | None, num_questions: int,
                              enable_dropout: bool) -> tuple[jax.Array, Metrics]:
  """An objective on the student's forward with reader relevance of ``mode``: the model's mode
  is checked, then ``objective.loss_from_outputs`` scores the outputs."""
  require_relevance_mode(model, mode, objective.name)
  outputs = student_forward(model, params, batch["query_tokens"], batch, rng=rng,
                            enable_dropout=enable_dropout)
  return objective.loss_from_outputs(outputs, batch, num_questions)


def retriever_vectors(model: UnifiedModel, params: Any, batch: Batch, *, rng: jax.Array | None,
                      enable_dropout: bool) -> tuple[jax.Array, jax.Array]:
  """The retrieval head alone (lower encoder and head): (queries [B, D], passages [B, K, D])
  of the batch's query_tokens [B, Lq] and passage_tokens [B, K, Lp]."""
  b, k, lp = batch["passage_tokens"].shape
  q_rng = p_rng = None
  if rng is not None:
    q_rng, p_rng = jax.random.split(rng)
  queries = model.embed_queries(params, batch["query_tokens"], rng=q_rng,
                                enable_dropout=enable_dropout)
  passages = model.embed_passages(params, batch["passage_tokens"].reshape(b * k, lp),
                                  rng=p_rng, enable_dropout=enable_dropout)
  return queries, passages.reshape(b, k, -1)


UMR_TEACHER_SCORES = "teacher_scores"  # float32 [B, C]: s_LM of the batch's passages


@gin.configurable
@dataclasses.dataclass(frozen=True)
class FidKdObjective:
  """The capstone's backward step (peer-methods.md 1.3 c): FiD-KD trains the retriever from the
  frozen reader, fidkd_weight * KL(softmax_k sg g || softmax_k s / sqrt(d)) with torch's
  ``KLDivLoss()`` mean over the B * K passages.

  The model's ``reader_relevance_mode`` must be "fidkd_logits" (g). ``reader_weight`` adds the
  reader CE (0, the default, is the spec: the reader only teaches; its CE is still reported).
  No gradient reaches the decoder from the FiD-KD term.
  """
  fidkd_weight: float = 1.0
  reader_weight: float = 0.0
  name: str = "fidkd"
  needs_teacher: bool = False

  def loss_from_outputs(self, outputs: Mapping[str, jax.Array], batch: Batch,
                        num_questions: int) -> tuple[jax.Array, Metrics]:
    ce = terms.reader_cross_entropy(outputs["logits"], batch["decoder_target_tokens"],
                                    batch["decoder_loss_weights"])
    kd = terms.fidkd_distillation(outputs["reader_relevance"], outputs["retrieval_scores"],
                                  passage_mask(batch), outputs["query_vectors"].shape[-1])
    ce_sum, kd_sum = jnp.sum(ce) / num_questions, jnp.sum(kd) / num_questions
    loss = self.reader_weight * ce_sum + self.fidkd_weight * kd_sum
    return loss, {"loss": loss, "loss/reader_ce": ce_sum, "loss/fidkd": kd_sum}

  def loss(self, params: Any, batch: Batch, *, model: UnifiedModel, rng: jax.Array | None,
           num_questions: int, teacher: Teacher | None = None, teacher_params: Any = None,
           enable_dropout: bool = True, step: jax.Array | None = None
           ) -> tuple[jax.Array, Metrics]:
    del teacher, teacher_params, step
    return _relevance_objective_loss(self, "fidkd_logits", model, params, batch, rng, num_questions,
                                     enable_dropout)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class CapstoneForwardObjective:
  """The capstone's forward step (peer-methods.md 1.3 d): reader CE + lambda *
  KL(sg softmax_k s(q, p_k) || a_all), lambda = 0.01, batchmean over questions.

  The model's ``reader_relevance_mode`` must be "all_layers_probs" (a_all: first-position
  attention over all layers and heads). The retriever is the constant teacher: only the reader
  learns from the KL.
  """
  reader_kl_weight: float = 0.01
  name: str = "capstone_forward"
  needs_teacher: bool = False

  def loss_from_outputs(self, outputs: Mapping[str, jax.Array], batch: Batch,
                        num_questions: int) -> tuple[jax.Array, Metrics]:
    ce = terms.reader_cross_entropy(outputs["logits"], batch["decoder_target_tokens"],
                                    batch["decoder_loss_weights"])
    kl = terms.retriever_to_reader_distillation(outputs["retrieval_scores"],
                                                outputs["reader_relevance"], passage_mask(batch))
    ce_sum, kl_sum = jnp.sum(ce) / num_questions, jnp.sum(kl) / num_questions
    loss = ce_sum + self.reader_kl_weight * kl_sum
    return loss, {"loss": loss, "loss/reader_ce": ce_sum, "loss/reader_kl": kl_sum}

  def loss(self, params: Any, batch: Batch, *, model: UnifiedModel, rng: jax.Array | None,
           num_questions: int, teacher: Teacher | None = None, teacher_params: Any = None,
           enable_dropout: bool = True, step: jax.Array | None = None
           ) -> tuple[jax.Array, Metrics]:
    del teacher, teacher_params, step
    return _relevance_objective_loss(self, "all_layers_probs", model, params, batch, rng,
                                     num_questions, enable_dropout)


QUERY_TRANSLATED_TOKENS = "query_translated_tokens"  # int32 [B, Lq]: q', a translation of q


@gin.configurable
@dataclasses.dataclass(frozen=True)
class CapstoneJsdObjective:
  """The capstone's JSD regularisers (peer-methods.md 1.3 f, g): reader CE on q +
  jsd_weight * (answer JSD + relevance JSD) between q and its translation q' over the same
  passages and answer, per question, summed over the answer positions for the answer JSD.

  q and q' run as question-major paired rows (``ClrPtObjective.student_outputs``' layout);
  both get gradient from the JSDs. ``jsd_weight`` = 0.1 (spec 1.8; off unless an experiment
  selects this objective: it collapsed the source's reader). The relevance is the model's
  ``reader_relevance`` (a distribution over K: not the "fidkd_logits" mode).
  """
  jsd_weight: float = 0.1
  name: str = "capstone_jsd"
  needs_teacher: bool = False

  def student_outputs(self, model: UnifiedModel, params: Any, batch: Batch, *,
                      rng: jax.Array | None, enable_dropout: bool) -> tuple[dict, dict]:
    """One forward of q and q' (rows 2i, 2i + 1) over the question's passages -> (q, q')."""
    if QUERY_TRANSLATED_TOKENS not in batch:
      raise KeyError(f"the {self.name} objective needs '{QUERY_TRANSLATED_TOKENS}' in the "
                     "batch: a task with question_translated (clqa.algorithm1.*)")
    b = batch["query_tokens"].shape[0]
    queries = jnp.stack([batch["query_tokens"], batch[QUERY_TRANSLATED_TOKENS]], axis=1)
    decoder_inputs = jnp.broadcast_to(batch["decoder_input_tokens"][:, None],
                                      (b, 2) + batch["decoder_input_tokens"].shape[1:])
    outputs = model.forward(params, queries.reshape(2 * b, -1), batch["passage_tokens"],
                            decoder_inputs.reshape(2 * b, -1), rng=rng,
                            enable_dropout=enable_dropout, return_reader_relevance=True)
    return _split_copies(outputs)

  def loss_from_outputs(self, q: Mapping[str, jax.Array], q_translated: Mapping[str, jax.Array],
                        batch: Batch, num_questions: int) -> tuple[jax.Array, Metrics]:
    weights = batch["decoder_loss_weights"]
    ce = terms.reader_cross_entropy(q["logits"], batch["decoder_target_tokens"], weights)
    answer = terms.answer_jsd(q["logits"], q_translated["logits"], weights)
    relevance = terms.relevance_jsd(q["reader_relevance"], q_translated["reader_relevance"],
                                    passage_mask(batch))
    ce_sum = jnp.sum(ce) / num_questions
    answer_sum, relevance_sum = jnp.sum(answer) / num_questions, jnp.sum(relevance) / num_questions
    loss = ce_sum + self.jsd_weight * (answer_sum + relevance_sum)
    return loss, {"loss": loss, "loss/reader_ce": ce_sum, "loss/answer_jsd": answer_sum,
                  "loss/relevance_jsd": relevance_sum}

  def loss(self, params: Any, batch: Batch, *, model: UnifiedModel, rng: jax.Array | None,
           num_questions: int, teacher: Teacher | None = None, teacher_params: Any = None,
           enable_dropout: bool = True, step: jax.Array | None = None
           ) -> tuple[jax.Array, Metrics]:
    del teacher, teacher_params, step
    if model.config.reader_relevance_mode == "fidkd_logits":
      raise ValueError(f"the {self.name} objective needs a reader relevance that is a "
                       "distribution over the passages: UnifiedConfig.reader_relevance_mode "
                       "'class' or 'all_layers_probs', got 'fidkd_logits'")
    q, q_translated = self.student_outputs(model, params, batch, rng=rng,
                                           enable_dropout=enable_dropout)
    return self.loss_from_outputs(q, q_translated, batch, num_questions)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class UmrKdObjective:
  """UMR's retriever-only distillation (peer-methods 4.3): ``terms.inbatch_teacher_kl``.

  The batch holds C passages per question, drawn uniformly from its re-ranked top-N by the
  feed (``TrainFeed.sample_passages``), with their query-likelihood scores
  (``teacher_scores`` [B, C]); every question is scored against all B*C passages of the
  (micro)batch. Only the lower encoder and the retrieval head run. With NUM_MICROBATCHES > 1
  the in-batch passages are the microbatch's (no GradCache for this objective).
  """
  teacher_multiplier: float = 10.0
  name: str = "umr_kd"
  needs_teacher: bool = False

  def loss(self, params: Any, batch: Batch, *, model: UnifiedModel, rng: jax.Array | None,
           num_questions: int, teacher: Teacher | None = None, teacher_params: Any = None,
           enable_dropout: bool = True, step: jax.Array | None = None
           ) -> tuple[jax.Array, Metrics]:
    del teacher, teacher_params, step
    if UMR_TEACHER_SCORES not in batch:
      raise KeyError(f"the umr_kd objective needs '{UMR_TEACHER_SCORES}' in the batch: a "
                     "TrainFeed over re-ranked lists (clqa rerank) with sample_passages set")
    queries, passages = retriever_vectors(model, params, batch, rng=rng,
                                          enable_dropout=enable_dropout)
    scores = terms.global_scores(queries, passages)
    kl = terms.inbatch_teacher_kl(batch[UMR_TEACHER_SCORES], scores, passage_mask(batch),
                                  multiplier=self.teacher_multiplier)
    loss = jnp.sum(kl) / num_questions
    return loss, {"loss": loss, "loss/inbatch_teacher_kl": loss}


@gin.configurable
@dataclasses.dataclass(frozen=True)
class DprNllObjective:
  """DPR's retriever-only loss (peer-methods 2.3): ``terms.dpr_nll`` of each question's positive
  (passage 0) among every passage of the (micro)batch, dot-product scores.

  Fed K = 2 passages per question, its positive and one hard negative (``TrainFeed.
  labelled_pairs``: DPR's default), so the other questions' positives and hard negatives are
  its in-batch negatives. Only the lower encoder and the retrieval head run. A question without
  a positive (passage 0 padding) adds 0 and still counts in the divisor.
  """
  name: str = "dpr_nll"
  needs_teacher: bool = False

  def loss(self, params: Any, batch: Batch, *, model: UnifiedModel, rng: jax.Array | None,
           num_questions: int, teacher: Teacher | None = None, teacher_params: Any = None,
           enable_dropout: bool = True, step: jax.Array | None = None
           ) -> tuple[jax.Array, Metrics]:
    del teacher, teacher_params, step
    queries, passages = retriever_vectors(model, params, batch, rng=rng,
                                          enable_dropout=enable_dropout)
    loss = jnp.sum(terms.dpr_nll(queries, passages, passage_mask(batch))) / num_questions
    return loss, {"loss": loss, "loss/dpr_nll": loss}


@gin.configurable
@dataclasses.dataclass(frozen=True)
class MixcseObjective:
  """MixCSE as ZusammenQA states it (peer-methods 2.3 [S]): ``terms.mixcse_contrastive``,
  cosine / ``temperature`` over every passage of the (micro)batch plus one mixed negative
  normalise(mix_weight * positive + (1 - mix_weight) * hard negative j*), held constant.

  Batches as ``DprNllObjective``'s (positive, one hard negative per question); j* is drawn
  uniformly among the question's real hard negatives (``terms.draw_hard_negative``) with a key
  split from the step's ``rng``, so training needs one.
  """
  mix_weight: float = 0.2
  temperature: float = 0.05
  name: str = "mixcse"
  needs_teacher: bool = False

  def loss(self, params: Any, batch: Batch, *, model: UnifiedModel, rng: jax.Array | None,
           num_questions: int, teacher: Teacher | None = None, teacher_params: Any = None,
           enable_dropout: bool = True, step: jax.Array | None = None
           ) -> tuple[jax.Array, Metrics]:
    del teacher, teacher_params, step
    if rng is None:
      raise ValueError("the mixcse objective draws its mixed negative's hard negative: it "
                       "needs an rng")
    draw_rng, dropout_rng = jax.random.split(rng)
    queries, passages = retriever_vectors(model, params, batch, rng=dropout_rng,
                                          enable_dropout=enable_dropout)
    mask = passage_mask(batch)
    j_star = terms.draw_hard_negative(draw_rng, mask)
    per_question = terms.mixcse_contrastive(queries, passages, j_star, mask,
                                            mix_weight=self.mix_weight,
                                            temperature=self.temperature)
    loss = jnp.sum(per_question) / num_questions
    return loss, {"loss": loss, "loss/mixcse": loss}


POSITIVE_LABELS = "positive_labels"  # float32 [B, K]: 1 on a question's gold passages


def inbatch_candidates(passage_rows_BK: jax.Array, positive_labels_BK: jax.Array
                       ) -> tuple[jax.Array, jax.Array]:
  """The capstone's P+ and P+ u P- of every question over the B*K passages of the batch.

  Returns (positive_BN, candidate_BN), both bool [B, B*K]. Question i's P+ are its own passages
  labelled positive; its candidates are its own real passages (positives and hard negatives)
  plus the other questions' real passages (in-batch negatives), each corpus row counted once:
  a row that is one of i's own passages, or a repeat of an earlier column, is left out of i's
  other columns (questions in several languages share their gold article).
  """
  b, k = passage_rows_BK.shape
  rows_N = passage_rows_BK.reshape(b * k)
  real_N = rows_N >= 0
  own_BN = jnp.repeat(jnp.eye(b, dtype=bool), k, axis=1)
  same_NN = (rows_N[:, None] == rows_N[None, :]) & real_N[:, None] & real_N[None, :]
  first_N = ~jnp.any(jnp.tril(same_NN, k=-1), axis=1)
  own_row_BN = jnp.any(own_BN[:, :, None] & same_NN[None], axis=1)
  candidate = real_N[None, :] & (own_BN | (~own_row_BN & first_N[None, :]))
  positive = own_BN & (positive_labels_BK.reshape(1, b * k) > 0) & real_N[None, :]
  return positive, candidate


@gin.configurable
@dataclasses.dataclass(frozen=True)
class MultiPositiveObjective:
  """The capstone's retriever loss L_sim (peer-methods 1.3 a): ``terms.multi_positive_contrastive``
  over every passage of the (micro)batch, dot-product scores, no temperature.

  The batch holds each question's gold passages (``positive_labels`` 1) and its hard negatives
  (``positive_labels`` 0), from a self-training round's store (``TrainFeed.positive_labels``);
  the other questions' passages are the in-batch negatives (``inbatch_candidates``). Only the
  lower encoder and the retrieval head run. A question without a gold passage adds 0. With
  NUM_MICROBATCHES > 1 the in-batch negatives are the microbatch's (no GradCache here).
  """
  name: str = "multi_positive"
  needs_teacher: bool = False

  def loss(self, params: Any, batch: Batch, *, model: UnifiedModel, rng: jax.Array | None,
           num_questions: int, teacher: Teacher | None = None, teacher_params: Any = None,
           enable_dropout: bool = True, step: jax.Array | None = None
           ) -> tuple[jax.Array, Metrics]:
    del teacher, teacher_params, step
    if POSITIVE_LABELS not in batch:
      raise KeyError(f"the multi_positive objective needs '{POSITIVE_LABELS}' in the batch: a "
                     "TrainFeed over a self-training store with positive_labels = True")
    queries, passages = retriever_vectors(model, params, batch, rng=rng,
                                          enable_dropout=enable_dropout)
    scores = terms.global_scores(queries, passages)
    positive, candidate = inbatch_candidates(batch["passage_rows"], batch[POSITIVE_LABELS])
    loss = jnp.sum(terms.multi_positive_contrastive(scores, positive, candidate)) / num_questions
    return loss, {"loss": loss, "loss/multi_positive": loss}


OBJECTIVES: dict[str, type[Objective]] = {"mlqa": MlqaObjective, "clr_pt": ClrPtObjective,
                                          "mlqa_supervised_retrieval":
                                              SupervisedRetrievalObjective,
                                          "fidkd": FidKdObjective,
                                          "capstone_forward": CapstoneForwardObjective,
                                          "capstone_jsd": CapstoneJsdObjective,
                                          "umr_kd": UmrKdObjective,
                                          "dpr_nll": DprNllObjective,
                                          "mixcse": MixcseObjective,
                                          "multi_positive": MultiPositiveObjective,
                                          "lexa_pt": lexa_objective.LexaPtObjective}


@gin.configurable
def objective_by_name(name: str = gin.REQUIRED) -> Objective:
  """gin-friendly selector: ``objective_by_name.name = 'clr_pt'`` (defaults of the dataclass)."""
  if name not in OBJECTIVES:
    raise ValueError(f"unknown objective {name!r}; choose one of {sorted(OBJECTIVES)}")
  return OBJECTIVES[name]()
