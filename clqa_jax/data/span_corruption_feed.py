"""Reader pre-training by span corruption on passages (ZusammenQA's continued mT5 pre-training,
peer-methods.md 2.4): the ``train.batches`` factory of gin/experiments/mini_span_corruption.gin.

Every passage of the corpus, as the PassageStore tokenises it for the reader ("title: {t}
context: {p}"), is corrupted by ``preprocessors.span_corruption`` (noise density 0.15, mean span
3; masks drawn anew per example and epoch) and fed as FiD features with one passage:

  query_tokens           int32 [B, Lq]     "question: " (the empty question of the FiD template)
  passage_tokens         int32 [B, 1, Lp]  the corrupted passage (sentinels for the spans) + EOS
  passage_rows           int32 [B, 1]      its PassageStore row
  decoder_input_tokens   int32 [B, T]      targets shifted right
  decoder_target_tokens  int32 [B, T]      each sentinel followed by its span, then EOS
  decoder_loss_weights   float32 [B, T]

so the reader's encoder-decoder learns the objective through its usual input layout; the loss is
the reader's cross-entropy alone (``MlqaObjective`` with ``retriever_weight = 0``). Passages are
cut to the longest prefix whose targets fit in T.
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
from typing import Any, Iterator, Mapping, Sequence

import gin
import numpy as np
import seqio
import tensorflow as tf

from clqa_jax.data import fid_batch
from clqa_jax.data import formats
from clqa_jax.data import preprocessors as pp
from clqa_jax.data import vocab as vocab_lib
from clqa_jax.data.passage_store import MAX_PASSAGE_TOKENS, PassageStore

logger = logging.getLogger(__name__)


def max_tokens_for_targets(target_length: int, noise_density: float,
                           mean_noise_span_length: float, limit: int) -> int:
  """The longest sequence (<= ``limit``) whose span-corruption targets (noise tokens, one
  sentinel per span, EOS) fit in ``target_length``."""
  for n in range(limit, 1, -1):
    noise = min(max(round(n * noise_density), 1), n - 1)
    if noise + max(round(noise / mean_noise_span_length), 1) + 1 <= target_length:
      return n
  raise ValueError(f"no passage length fits span-corruption targets in {target_length} tokens")


@gin.configurable
@dataclasses.dataclass
class SpanCorruptionFeed:
  """``train.batches``: span-corrupted passages of ``corpus`` as one-passage FiD features.

  Attributes:
    corpus: the passage TSV (relative: under the data root).
    languages: keep passages whose id starts with ``<lang>_`` (the synth corpus's pids);
      None: every passage.
    noise_density, mean_noise_span_length: T5's span-corruption settings (mT5's defaults).
    seed: shuffling and noise-mask seed.
    passage_store_dir: the PassageStore directory (default under ``<data_root>/stores``).
    sentinel_end: sentinels count down from ``sentinel_end - 1``. None: the task vocabulary's
      size, as mT5, whose SentencePiece model ends with its 100 ``<extra_id_*>`` pieces. A
      small vocabulary without such pieces binds the model's larger embedding size instead
      (the mini experiment: 2560 over 2500 pieces), so that sentinels are ids no text has.
  """
  corpus: str = gin.REQUIRED
  languages: Sequence[str] | None = None
  noise_density: float = 0.15
  mean_noise_span_length: float = 3.0
  seed: int = 0
  passage_store_dir: str | None = None
  sentinel_end: int | None = None

  def feature_dimensions(self) -> dict[str, int]:
    return dict(num_passages=1, query_length=pp.QUERY_MAX_TOKENS,
                passage_length=MAX_PASSAGE_TOKENS, target_length=pp.ANSWER_MAX_TOKENS)

  def rows(self, store: PassageStore, shard_index: int, num_shards: int) -> np.ndarray:
    """int32 [N]: this shard's passage rows (of the chosen languages)."""
    rows = np.arange(shard_index, len(store), num_shards, dtype=np.int32)
    if self.languages is not None:
      prefixes = tuple(f"{lang}_" for lang in self.languages)
      rows = np.array([r for r in rows if store.pid(r).startswith(prefixes)], np.int32)
    if not len(rows):
      raise ValueError(f"SpanCorruptionFeed: no passage of {self.corpus} for shard "
                       f"{shard_index}/{num_shards} (languages {self.languages})")
    return rows

  def __call__(self, layout: Any) -> "SpanCorruptionSource":
    from clqa_jax.data import train_feed  # the one PassageStore opener
    store = train_feed.open_passage_store(self.corpus, self.passage_store_dir)
    return SpanCorruptionSource(self, store, layout.per_process_batch_size, layout.shard_id,
                                layout.num_shards)


class SpanCorruptionSource:
  """A resumable ``BatchSource`` (position = batches consumed; a resume replays the seeded
  stream and skips them)."""

  def __init__(self, feed: SpanCorruptionFeed, store: PassageStore, batch_size: int,
               shard_index: int, num_shards: int):
    self.feed, self.store, self.batch_size = feed, store, batch_size
    self.rows = feed.rows(store, shard_index, num_shards)
    self.seed = (feed.seed, shard_index)
    vocab = vocab_lib.task_vocabulary()
    self.eos_id = vocab.eos_id
    self.sentinel_end = feed.sentinel_end or vocab.vocab_size
    prefix = vocab.encode(formats.QUESTION_PREFIX.strip())[:pp.QUERY_MAX_TOKENS]
    self.query = np.zeros([pp.QUERY_MAX_TOKENS], np.int32)
    self.query[:len(prefix)] = prefix
    self.max_tokens = max_tokens_for_targets(pp.ANSWER_MAX_TOKENS, feed.noise_density,
                                             feed.mean_noise_span_length,
                                             MAX_PASSAGE_TOKENS - 1)
    spans = max(round(round(self.max_tokens * feed.noise_density) / feed.mean_noise_span_length), 1)
    if feed.sentinel_end is not None and feed.sentinel_end - spans < vocab.vocab_size:
      raise ValueError(f"SpanCorruptionFeed.sentinel_end = {feed.sentinel_end}: up to {spans} "
                       f"sentinels below it would reach the vocabulary's {vocab.vocab_size} "
                       "pieces; bind the model's vocabulary size or leave it None")
    self._position = 0
    self._it = self._batches(0)

  def _dataset(self) -> tf.data.Dataset:
    tokens = self.store.tokens(self.rows)                        # [N, Lp], EOS-terminated
    lengths = self.store.lengths(self.rows) - 1                  # without EOS
    ds = tf.data.Dataset.from_tensor_slices({"row": self.rows, "tokens": tokens,
                                             "length": lengths})
    shuffle_seed = int(np.random.SeedSequence(self.seed).generate_state(1)[0])
    ds = ds.shuffle(len(self.rows), seed=shuffle_seed, reshuffle_each_iteration=True).repeat()
    ds = ds.map(lambda x: {"row": x["row"],
                           "targets": x["tokens"][:tf.minimum(x["length"], self.max_tokens)]})
    with seqio.utils.map_seed_manager(self.seed[0] * 1000003 + self.seed[1]):
      ds = pp.span_corruption(ds, self.sentinel_end, self.eos_id, self.feed.noise_density,
                              self.feed.mean_noise_span_length)
    return ds.padded_batch(self.batch_size, padded_shapes={
        "row": [], "inputs": [MAX_PASSAGE_TOKENS], "targets": [pp.ANSWER_MAX_TOKENS]},
        drop_remainder=True)

  def _batches(self, position: int) -> Iterator[dict[str, np.ndarray]]:
    return itertools.islice(self._dataset().as_numpy_iterator(), position, None)

  def features(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    targets = batch["targets"].astype(np.int32)
    return {"query_tokens": np.tile(self.query, (len(targets), 1)),
            "passage_tokens": batch["inputs"].astype(np.int32)[:, None, :],
            "passage_rows": batch["row"].astype(np.int32)[:, None],
            "decoder_input_tokens": fid_batch.shift_right(targets),
            "decoder_target_tokens": targets,
            "decoder_loss_weights": (targets != 0).astype(np.float32)}

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    out = self.features(next(self._it))
    self._position += 1
    return out

  def get_state(self) -> dict[str, Any]:
    return {"position": self._position}

  def set_state(self, state: Mapping[str, Any]) -> None:
    self._position = int(state["position"])
    self._it = self._batches(self._position)
