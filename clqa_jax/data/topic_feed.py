"""The trainer's batch source of LEXA topic groups (``train.batches`` of ``lexa_pt``).

  FEED = @feed/gin.singleton()
  feed/gin.singleton.constructor = @topic_feed.TopicGroupFeed
  topic_feed.TopicGroupFeed.task = 'clqa.lexa_pt'      # 'clqa.lexa_pt.mined' in stage 2
  topic_feed.TopicGroupFeed.n_max = 8

Each process reads its shard of the task (``pipeline.get_question_dataset``: seeded shuffle,
repeated) and turns a batch of G groups into fixed shapes (``lexa_objective`` features):
anchor_tokens [G, Lp], document_tokens [G, n_max, Lp], document_mask [G, n_max], topic_ids [G]
and, for the mined task, negative_tokens [G, H, Lp], negative_mask [G, H],
negative_topic_ids [G, H]. Groups of more than n_max documents keep their first n_max slots
(the task's random order, anchor at slot 0: a uniform subset that contains the anchor).
Topic ids are a stable 31-bit hash of the topic string (two topics sharing one would only
lose each other as negatives).

Position: the number of batches consumed, as ``train_feed.FeedSource``.
"""
from __future__ import annotations

import dataclasses
import itertools
import zlib
from typing import Any, Iterator, Mapping

import gin
import numpy as np

from clqa_jax.data import pipeline
from clqa_jax.data.preprocessors import PASSAGE_MAX_TOKENS

# Registers the tasks before a run's config is locked.
from clqa_jax import tasks  # noqa: F401  pylint: disable=unused-import


def topic_hash(topic: bytes | str) -> int:
  """The int32 topic id of a topic string (stable across processes and runs)."""
  data = topic.encode("utf-8") if isinstance(topic, str) else bytes(topic)
  return zlib.crc32(data) & 0x7FFFFFFF


def _fit(tokens: np.ndarray, rows: int, length: int) -> np.ndarray:
  """[B, r, l] -> [B, rows, length]: cut or zero-padded on both trailing axes."""
  out = np.zeros((tokens.shape[0], rows, length), np.int32)
  r, l = min(rows, tokens.shape[1]), min(length, tokens.shape[2])
  out[:, :r, :l] = tokens[:, :r, :l]
  return out


def group_features(batch: Mapping[str, np.ndarray], n_max: int, negatives_per_group: int,
                   passage_length: int = PASSAGE_MAX_TOKENS) -> dict[str, np.ndarray]:
  """A batch of the task (padded to its own maxima) -> the objective's fixed-shape features."""
  documents = _fit(batch["documents"], n_max, passage_length)
  out = {"anchor_tokens": _fit(batch["anchor"][:, None], 1, passage_length)[:, 0],
         "document_tokens": documents,
         # Every real document ends in EOS, so it has a non-pad token.
         "document_mask": (documents != 0).any(axis=-1),
         "topic_ids": np.array([topic_hash(t) for t in batch["topic_id"]], np.int32)}
  if "negatives" in batch:
    negatives = _fit(batch["negatives"], negatives_per_group, passage_length)
    ids = np.zeros(negatives.shape[:2], np.int32)
    for i, row in enumerate(batch["negative_topic_ids"]):
      for j, t in enumerate(row[:negatives_per_group]):
        ids[i, j] = topic_hash(t) if t else 0
    out.update(negative_tokens=negatives, negative_mask=(negatives != 0).any(axis=-1),
               negative_topic_ids=ids)
  return out


@gin.configurable
@dataclasses.dataclass
class TopicGroupFeed:
  """``train.batches``: the factory of this process's topic-group batches.

  Attributes:
    task: 'clqa.lexa_pt' (stage 1) or 'clqa.lexa_pt.mined' (stage 2, mined negatives).
    n_max: documents per group (padding with a mask below, the first n_max above).
    negatives_per_group: mined documents per group (the spec's recommendation: 3).
    split: the split to train on.
    seed: shuffling and masking seed of the stream.
    passage_length: tokens per document (the spec's recommendation: 200).
  """
  task: str = "clqa.lexa_pt"
  n_max: int = 8
  negatives_per_group: int = 3
  split: str = "train"
  seed: int = 0
  passage_length: int = PASSAGE_MAX_TOKENS

  def __post_init__(self):
    if self.n_max < 2:
      raise ValueError(f"TopicGroupFeed.n_max must be at least 2, got {self.n_max}")
    if self.negatives_per_group < 1:
      raise ValueError("TopicGroupFeed.negatives_per_group must be positive, got "
                       f"{self.negatives_per_group}")
    self.source: TopicGroupSource | None = None

  def group_batches(self, batch_size: int, *, shard_index: int = 0,
                    num_shards: int = 1) -> Iterator[dict[str, np.ndarray]]:
    """This shard's stream of task batches (shuffled, repeated, seeded)."""
    return pipeline.get_question_dataset(self.task, self.split, batch_size,
                                         shard_index=shard_index, num_shards=num_shards,
                                         seed=self.seed)

  def __call__(self, layout: Any) -> "TopicGroupSource":
    self.source = TopicGroupSource(self, layout.per_process_batch_size, layout.shard_id,
                                   layout.num_shards)
    return self.source


class TopicGroupSource:
  """A resumable ``BatchSource`` of host-local topic-group features."""

  def __init__(self, feed: TopicGroupFeed, batch_size: int, shard_index: int, num_shards: int):
    self.feed = feed
    self.batch_size = batch_size
    self.shard_index = shard_index
    self.num_shards = num_shards
    self._position = 0
    self._it = self._batches(0)

  def _batches(self, position: int) -> Iterator[dict[str, np.ndarray]]:
    it = self.feed.group_batches(self.batch_size, shard_index=self.shard_index,
                                 num_shards=self.num_shards)
    return itertools.islice(it, position, None) if position else it

  def next_with_groups(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(the task's batch, its features)."""
    groups = next(self._it)
    self._position += 1
    return groups, group_features(groups, self.feed.n_max, self.feed.negatives_per_group,
                                  self.feed.passage_length)

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    return self.next_with_groups()[1]

  def get_state(self) -> dict[str, Any]:
    return {"position": self._position}

  def set_state(self, state: Mapping[str, Any]) -> None:
    self._position = int(state["position"])
    self._it = self._batches(self._position)
