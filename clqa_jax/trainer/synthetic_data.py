"""Deterministic synthetic FiD batches with the model features of the contract.

For smoke runs of every gin run file, the trainer tests and the benchmarks: batch ``i`` depends
only on (seed, i, shard), so a resumed run sees exactly the batches an uninterrupted one would.
Real runs plug in the data pipeline's batch source instead (``train.batches``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import gin
import numpy as np


def synthetic_batch(seed: int, batch_size: int = 4, num_passages: int = 3, query_length: int = 6,
                    passage_length: int = 8, target_length: int = 5, vocab_size: int = 128,
                    stage1: bool = True, pad_last_passage: bool = True) -> dict[str, np.ndarray]:
  """One batch of random token ids (pad 0, EOS-free ids >= 3), ragged lengths.

  The last passage of the first question is a padding passage (row -1) when asked.
  """
  rng = np.random.default_rng(seed)

  def tokens(*shape, min_len=2):
    x = rng.integers(3, vocab_size, size=shape).astype(np.int32)
    lengths = rng.integers(min(min_len, shape[-1]), shape[-1] + 1, size=shape[:-1])
    return np.where(np.arange(shape[-1]) < lengths[..., None], x, 0).astype(np.int32)

  passages = tokens(batch_size, num_passages, passage_length)
  rows = rng.permutation(max(1000, 2 * batch_size * num_passages))
  rows = rows[:batch_size * num_passages].reshape(batch_size, num_passages).astype(np.int32)
  if pad_last_passage and num_passages > 1:
    passages[0, -1] = 0
    rows[0, -1] = -1
  targets = tokens(batch_size, target_length, min_len=1)
  weights = (targets > 0).astype(np.float32)
  decoder_inputs = np.concatenate(
      [np.zeros((batch_size, 1), np.int32), targets[:, :-1]], axis=1)
  batch = {"query_tokens": tokens(batch_size, query_length), "passage_tokens": passages,
           "passage_rows": rows, "decoder_input_tokens": decoder_inputs,
           "decoder_target_tokens": targets, "decoder_loss_weights": weights}
  if stage1:
    batch["query_en_tokens"] = tokens(batch_size, query_length)
  return batch


@gin.configurable
@dataclasses.dataclass
class SyntheticBatches:
  """A resumable ``BatchSource`` of synthetic batches (this process's rows).

  ``batch_size`` is the per-process batch; ``shard_id`` keeps processes' rows different.
  """
  batch_size: int = 4
  num_passages: int = 3
  query_length: int = 6
  passage_length: int = 8
  target_length: int = 5
  vocab_size: int = 128
  stage1: bool = False
  seed: int = 0
  shard_id: int = 0
  position: int = 0

  def __iter__(self):
    return self

  def feature_dimensions(self) -> dict[str, int]:
    """The widths of every batch (``aot`` compiles the step from them, without data)."""
    return dict(num_passages=self.num_passages, query_length=self.query_length,
                passage_length=self.passage_length, target_length=self.target_length)

  def __next__(self) -> dict[str, np.ndarray]:
    seed = (self.seed * 1_000_003 + self.position) * 4099 + self.shard_id
    self.position += 1
    return synthetic_batch(seed, self.batch_size, self.num_passages, self.query_length,
                           self.passage_length, self.target_length, self.vocab_size,
                           self.stage1)

  def get_state(self) -> dict[str, Any]:
    return {"position": self.position}

  def set_state(self, state: Mapping[str, Any]) -> None:
    self.position = int(state["position"])


@gin.configurable
def synthetic_batches(layout: Any, **overrides: Any) -> SyntheticBatches:
  """``train.batches`` factory: the per-process rows of ``layout`` (a DataLayout)."""
  return SyntheticBatches(batch_size=layout.per_process_batch_size, shard_id=layout.shard_id,
                          **overrides)
