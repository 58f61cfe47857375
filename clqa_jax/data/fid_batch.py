"""FiD batch assembly: question batches + stores -> the model features of the contract.

Runs in numpy on each host, after SeqIO, on the host's own shard of the global batch:
  query_tokens           int32 [B, Lq]     "question: {q}" without EOS, pad 0
  passage_tokens         int32 [B, K, Lp]  "title: {t} context: {p}" + EOS, pad 0
  passage_rows           int32 [B, K]      PassageStore rows (-1: padding passage); with a
                                           ``labeller`` K = 2: positive, hard negative
  decoder_input_tokens   int32 [B, T]      answer shifted right, starting with 0
  decoder_target_tokens  int32 [B, T]      answer + EOS, pad 0
  decoder_loss_weights   float32 [B, T]    1.0 on real target tokens
  teacher_scores         float32 [B, C]    with ``sample``: the store's scores of the C drawn
                                           passages (UMR: query-likelihood pseudo-labels)
  positive_labels        float32 [B, K]    with ``labels``: 1 where the store's score is > 0
                                           (a self-training store: gold 1, hard negative 0)
  query_en_tokens        int32 [B, Lq]     stage 1 only: the English cloze query
  query_translated_tokens int32 [B, Lq]    Algorithm-1 tasks only: q', a translation of the query
  teacher_query_tokens   int32 [B, Lq]     stage 1 with a TeacherInputs: the English cloze query
  teacher_passage_tokens int32 [B, K, Lp]  in the teacher's (English T5) vocabulary, same limits
Passages come from the example's ``teacher_pids`` (stage 1: the teacher's fixed retrieval) or
from a ``RetrievalStore`` (stage 2 / fine-tuning: refreshed results, source passage excluded at
write time). ``make_global_batch`` turns host-local features into global ``jax.Array``s.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

from clqa_jax.data.passage_store import PassageStore, same_corpus
from clqa_jax.data.retrieval_labels import RetrievalLabeller
from clqa_jax.data.retrieval_store import RetrievalStore, RetrievalVersion

TEACHER_PIDS = "teacher_pids"
FID_FEATURES = ("query_tokens", "passage_tokens", "passage_rows", "decoder_input_tokens",
                "decoder_target_tokens", "decoder_loss_weights")
STAGE1_FEATURES = FID_FEATURES + ("query_en_tokens",)


def _fit(tokens: np.ndarray, length: int) -> np.ndarray:
  """int32 [B, length]: truncated or right-padded with 0."""
  tokens = np.asarray(tokens, np.int32)
  if tokens.shape[1] >= length:
    return np.ascontiguousarray(tokens[:, :length])
  return np.pad(tokens, ((0, 0), (0, length - tokens.shape[1])))


def shift_right(targets: np.ndarray) -> np.ndarray:
  """Decoder inputs: [0, y_0, ..., y_{T-2}] (padding stays 0 because targets pad with 0)."""
  out = np.zeros_like(targets)
  out[:, 1:] = targets[:, :-1]
  return out


class TeacherInputs:
  """The stage-1 teacher's view of a batch: its own vocabulary, the same passages.

  Args:
    passage_store: a PassageStore of the same corpus built with the teacher's vocabulary (rows
      coincide with the student store's, which is checked).
    vocab: the teacher's SentencePiece model (path or processor).
  """

  def __init__(self, passage_store: PassageStore, vocab):
    from clqa_jax.data.passage_store import _sp_processor

    self.passage_store = passage_store
    self.sp = _sp_processor(vocab)

  def check_compatible(self, student: PassageStore) -> None:
    if (not same_corpus(self.passage_store.manifest["corpus_fingerprint"],
                        student.manifest["corpus_fingerprint"])
        or len(self.passage_store) != len(student)):
      raise ValueError("the teacher passage store was built from another corpus than the student's")

  def query_tokens(self, texts: Sequence[bytes | str], length: int) -> np.ndarray:
    """int32 [B, length]: "question: {q}" (already templated) without EOS, pad 0."""
    texts = [t.decode("utf-8") if isinstance(t, bytes) else t for t in texts]
    out = np.zeros((len(texts), length), np.int32)
    for i, ids in enumerate(self.sp.encode(texts, out_type=int)):
      ids = ids[:length]
      out[i, :len(ids)] = ids
    return out


@dataclasses.dataclass
class FiDBatchAssembler:
  """Turns a question batch (``get_question_dataset`` output) into FiD features [B, K, ...].

  Attributes:
    passage_store: token ids of the corpus.
    retrieval: "teacher_pids" (use the example's teacher pids: stage 1), a RetrievalStore
      (its latest version is re-read per batch, so refreshes take effect), or a fixed
      RetrievalVersion.
    k: passages per question.
    query_length: Lq (the spec's 50).
    answer_length: T (the spec's 50).
    passage_length: Lp: stored passage tokens are cut to it (None: as stored, the spec's 200).
    teacher: stage 1: also emit the teacher's tokens (``teacher_query_tokens``,
      ``teacher_passage_tokens``) for the same queries and passages.
    sample: 0, or C: draw C of each question's top-k uniformly (without replacement, anew for
      every batch; ``draw_seed`` makes a batch reproducible) and emit their stored scores as
      ``teacher_scores`` (UMR's 16 of 100 re-ranked passages).
    source_first: put each question's source passage (``source_pid``) at position 0, followed
      by its first K-1 retrieved passages other than the source: the positive of a supervised
      retrieval loss (``terms.dpr_nll``), e.g. for a demo teacher standing in for a
      retriever pre-trained with labelled passages.
    labeller: emit K = 2 passages per question, its positive and one answer-free hard negative
      picked from its top-k stored passages (``RetrievalLabeller``: DPR NLL / MixCSE).
    labels: emit ``positive_labels`` from the store's scores (a self-training round's store
      scores its gold passages 1 and its hard negatives 0).
  """
  passage_store: PassageStore
  retrieval: RetrievalStore | RetrievalVersion | str
  k: int = 100
  query_length: int = 50
  answer_length: int = 50
  teacher: TeacherInputs | None = None
  sample: int = 0
  source_first: bool = False
  passage_length: int | None = None
  labeller: RetrievalLabeller | None = None
  labels: bool = False

  def __post_init__(self):
    if self.sample and (self.sample > self.k or isinstance(self.retrieval, str)):
      raise ValueError(f"sample={self.sample} draws from the top k={self.k} of a retrieval "
                       "store: needs sample <= k and a store with scores")
    if self.teacher is not None:
      self.teacher.check_compatible(self.passage_store)
    if isinstance(self.retrieval, str) and self.retrieval != TEACHER_PIDS:
      raise ValueError(f"retrieval must be {TEACHER_PIDS!r} or a retrieval store, "
                       f"got {self.retrieval!r}")
    if self.source_first and self.sample:
      raise ValueError("source_first and sample are exclusive: sampled passages carry the "
                       "store's scores, which the source passage has none of")
    if self.labeller is not None and (self.sample or self.source_first
                                      or isinstance(self.retrieval, str)):
      raise ValueError("labelled pairs pick from a retrieval store's top-k (the source passage "
                       "first where there is one): exclusive with sample, source_first and "
                       f"retrieval={TEACHER_PIDS!r}")
    if self.labels and (self.sample or self.source_first or isinstance(self.retrieval, str)):
      raise ValueError("labels read a retrieval store's scores of the stored passages: not with "
                       "sample, source_first or the teacher's pids")

  def passage_rows(self, batch: Mapping[str, np.ndarray]) -> np.ndarray:
    """int32 [B, K] rows of each question's passages (-1 where fewer than K exist)."""
    if isinstance(self.retrieval, str):
      if TEACHER_PIDS not in batch:
        raise KeyError("retrieval='teacher_pids' needs a 'teacher_pids' feature (stage-1 tasks)")
      return self.passage_store.rows_padded(batch[TEACHER_PIDS], self.k)
    version = self.retrieval
    if isinstance(version, RetrievalStore):
      version = version.latest()
    rows = version.lookup(batch["qid"], self.k)
    if rows.shape[1] < self.k:
      rows = np.pad(rows, ((0, 0), (0, self.k - rows.shape[1])), constant_values=-1)
    return rows

  def positive_labels(self, batch: Mapping[str, np.ndarray]) -> np.ndarray:
    """float32 [B, K]: 1 where the stored score of the question's passage is > 0."""
    version = self.retrieval
    if isinstance(version, RetrievalStore):
      version = version.latest()
    scores = version.lookup_scores(batch["qid"], self.k)
    if scores.shape[1] < self.k:
      scores = np.pad(scores, ((0, 0), (0, self.k - scores.shape[1])), constant_values=-np.inf)
    return (scores > 0).astype(np.float32)

  def with_source_first(self, batch: Mapping[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """int32 [B, K]: each question's source passage, then its ``rows`` other than the source
    (the last ones dropped to keep K). A question without a source pid is a KeyError."""
    if "source_pid" not in batch:
      raise KeyError("source_first needs the 'source_pid' feature (synthetic tasks)")
    source = self.passage_store.rows(batch["source_pid"])  # KeyError names unknown pids
    out = np.full_like(rows, -1)
    for i in range(len(rows)):
      rest = rows[i][(rows[i] >= 0) & (rows[i] != source[i])][:rows.shape[1] - 1]
      out[i, 0] = source[i]
      out[i, 1:1 + len(rest)] = rest
    return out

  def sampled_rows(self, batch: Mapping[str, np.ndarray],
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(int32 [B, C] rows, float32 [B, C] scores): C of each question's real top-k drawn
    uniformly, in their ranked order; -1 rows (score 0) where fewer than C exist."""
    version = self.retrieval
    if isinstance(version, RetrievalStore):
      version = version.latest()
    rows = version.lookup(batch["qid"], self.k)
    scores = version.lookup_scores(batch["qid"], self.k)
    out_rows = np.full((len(rows), self.sample), -1, np.int32)
    out_scores = np.zeros((len(rows), self.sample), np.float32)
    for i in range(len(rows)):
      real = np.flatnonzero(rows[i] >= 0)
      pick = np.sort(rng.choice(real, size=min(self.sample, len(real)), replace=False))
      out_rows[i, :len(pick)] = rows[i, pick]
      out_scores[i, :len(pick)] = scores[i, pick]
    return out_rows, out_scores

  def __call__(self, batch: Mapping[str, np.ndarray],
               draw_seed: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    teacher_scores = None
    if self.sample:
      rows, teacher_scores = self.sampled_rows(batch, np.random.default_rng(draw_seed))
    else:
      rows = self.passage_rows(batch)
    if self.source_first:
      rows = self.with_source_first(batch, rows)
    if self.labeller is not None:
      rows = self.labeller(batch, rows)
    targets = _fit(batch["answer"], self.answer_length)
    out = {
        "query_tokens": _fit(batch["question"], self.query_length),
        "passage_tokens": self._passages(self.passage_store, rows),
        "passage_rows": rows,
        "decoder_input_tokens": shift_right(targets),
        "decoder_target_tokens": targets,
        "decoder_loss_weights": (targets != 0).astype(np.float32),
    }
    if teacher_scores is not None:
      out["teacher_scores"] = teacher_scores
    if self.labels:
      out["positive_labels"] = self.positive_labels(batch)
    if "question_en" in batch:
      out["query_en_tokens"] = _fit(batch["question_en"], self.query_length)
    if "question_translated" in batch:
      out["query_translated_tokens"] = _fit(batch["question_translated"], self.query_length)
    if self.teacher is not None:
      if "question_en_pretokenized" not in batch:
        raise KeyError("teacher inputs need 'question_en_pretokenized' (stage-1 tasks)")
      out["teacher_query_tokens"] = self.teacher.query_tokens(batch["question_en_pretokenized"],
                                                              self.query_length)
      out["teacher_passage_tokens"] = self._passages(self.teacher.passage_store, rows)
    return out

  def _passages(self, store: PassageStore, rows: np.ndarray) -> np.ndarray:
    """int32 [B, K, Lp] token ids of ``rows``, cut to ``passage_length`` (a passage longer
    than that loses its tail and EOS)."""
    tokens = store.tokens(rows)
    if self.passage_length is None or tokens.shape[-1] <= self.passage_length:
      return tokens
    return np.ascontiguousarray(tokens[..., :self.passage_length])


def batch_partition_spec(mesh, batch_axes: Sequence[str] | None = None):
  """PartitionSpec sharding the leading (batch) dimension over the data-parallel mesh axes."""
  from jax.sharding import PartitionSpec

  if batch_axes is None:
    batch_axes = tuple(a for a in ("replica", "data") if a in mesh.axis_names)
  return PartitionSpec(tuple(batch_axes) if len(batch_axes) != 1 else batch_axes[0])


def make_global_batch(local: Mapping[str, np.ndarray], mesh,
                      batch_axes: Sequence[str] | None = None) -> dict:
  """Host-local features [B_local, ...] -> global jax.Arrays [B_local * hosts, ...].

  Every host passes its own shard (same B_local on all hosts); the leading dimension is
  sharded over ``batch_axes`` (default: the mesh's "replica" and "data" axes).
  """
  import jax
  from jax.sharding import NamedSharding

  sharding = NamedSharding(mesh, batch_partition_spec(mesh, batch_axes))
  out = {}
  for name, value in local.items():
    value = np.asarray(value)
    if value.dtype.kind in "OSU":
      continue  # strings stay on the host
    global_shape = (value.shape[0] * jax.process_count(),) + value.shape[1:]
    out[name] = jax.make_array_from_process_local_data(sharding, value, global_shape)
  return out
