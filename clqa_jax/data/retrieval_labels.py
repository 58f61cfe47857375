"""Each question's labelled positive and one hard negative, for the supervised retrieval losses
(DPR NLL, MixCSE; reference/peer-methods.md 2.3, 2.8, 1.8).

From a question's stored top-k passages (a ``RetrievalStore``, best first):
  positive       its source passage (``source_pid``, synthetic questions), else the first of
                 its top-k that contains an answer string;
  hard negative  the first of its top-k, other than the positive, that contains no answer.
The datasets' own positive/hard-negative lists (DPR ``positive_ctxs``) are not read: the XOR
readers keep question and answers only.

Answers are matched on the text the model reads: the stored tokens decoded with the store's
SentencePiece model, after "context: " (the title is not searched), against each answer
normalised the same way (encoded and decoded), case-sensitive substring as R@kt; "yes"/"no"
never match (``xor_retrieve.span_answers``).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from clqa_jax.data import formats
from clqa_jax.data.passage_store import PassageStore, _sp_processor
from clqa_jax.eval.xor_retrieve import span_answers

_CONTEXT = formats.PASSAGE_TEMPLATE.split("{text}")[0].split("{title}")[1]  # " context: "


class RetrievalLabeller:
  """(batch, its top-k rows [B, k]) -> int32 [B, 2]: positive, hard negative (-1: none).

  Args:
    passage_store: the tokenised corpus the rows index.
    vocab: the store's SentencePiece model (path, processor or seqio vocabulary).
  """

  def __init__(self, passage_store: PassageStore, vocab):
    self.passage_store = passage_store
    self.sp = _sp_processor(vocab)

  def normalised(self, text: str) -> str:
    """``text`` as the model's tokens spell it (SentencePiece normalisation)."""
    return self.sp.decode(self.sp.encode(text))

  def passage_body(self, row: int) -> str:
    """The decoded text of a stored passage after its title (its possibly truncated body)."""
    tokens = self.passage_store.tokens(np.array([row]))[0]
    text = self.sp.decode([int(t) for t in tokens if t > 1])  # pad 0, EOS 1
    head, sep, body = text.partition(_CONTEXT.strip())
    return body.strip() if sep else head

  def answers_of(self, answers_A: Sequence[bytes | str]) -> list[str]:
    texts = [a.decode("utf-8") if isinstance(a, bytes) else str(a) for a in answers_A]
    return [self.normalised(a) for a in span_answers([t for t in texts if t])]

  def source_rows(self, source_pids_B: Sequence[bytes | str]) -> np.ndarray:
    """int32 [B]: each source pid's row, -1 for none (""); an unknown pid is a KeyError."""
    out = np.full(len(source_pids_B), -1, np.int32)
    given = [i for i, p in enumerate(source_pids_B) if p not in (b"", "")]
    if given:
      out[given] = self.passage_store.rows([source_pids_B[i] for i in given])
    return out

  def __call__(self, batch: Mapping[str, np.ndarray], rows_BK: np.ndarray) -> np.ndarray:
    for name in ("answers", "source_pid"):
      if name not in batch:
        raise KeyError(f"retrieval labels need the '{name}' feature of the question batch")
    source_B = self.source_rows(batch["source_pid"])
    out = np.full((len(rows_BK), 2), -1, np.int32)
    for i, rows in enumerate(np.asarray(rows_BK)):
      answers = self.answers_of(batch["answers"][i])
      positive = int(source_B[i])
      for row in rows[rows >= 0]:
        row = int(row)
        if row == positive:
          continue
        has_answer = any(a in self.passage_body(row) for a in answers)
        if positive < 0 and has_answer:
          positive = row
        elif not has_answer and out[i, 1] < 0:
          out[i, 1] = row
        if positive >= 0 and out[i, 1] >= 0:
          break
      out[i, 0] = positive
    return out
