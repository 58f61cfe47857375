"""Numpy question batches from any registered task or mixture (the trainer's entry point).

  for batch in get_question_dataset("clqa.mlqa_pt.xor_full", "train", batch_size=64,
                                    shard_index=jax.process_index(),
                                    num_shards=jax.process_count()):
    features = assembler(batch)                  # FiDBatchAssembler
    arrays = make_global_batch(features, mesh)   # global jax.Arrays

Each host reads a disjoint shard of the data (``seqio.ShardInfo``) and builds batches of
``batch_size`` (the per-host batch; global batch = batch_size x num_shards).
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import seqio

from clqa_jax.data import preprocessors as pp

# Fixed padded shapes (the spec's limits); variable-length features pad to the batch maximum.
_FIXED = {"question": pp.QUERY_MAX_TOKENS, "question_en": pp.QUERY_MAX_TOKENS,
          "question_translated": pp.QUERY_MAX_TOKENS, "answer": pp.ANSWER_MAX_TOKENS}
QA_PASSTHROUGH = ("qid", "lang", "answers", "source_pid")
STAGE1_PASSTHROUGH = QA_PASSTHROUGH + ("teacher_pids", "teacher_scores")


def _ensure_tasks_registered() -> None:
  from clqa_jax import tasks  # noqa: F401  pylint: disable=unused-import (registers them)


def get_question_dataset(task_or_mixture: str, split: str, batch_size: int, *,
                         shuffle: bool | None = None, seed: int | None = None,
                         num_epochs: int | None | str = "auto", shard_index: int = 0,
                         num_shards: int = 1,
                         use_cached: bool = False, drop_remainder: bool | None = None,
                         prefetch: int = 2) -> Iterator[dict[str, np.ndarray]]:
  """Yields numpy question batches (the host's shard).

  Args:
    task_or_mixture: a registered name ("clqa.clr_pt", "clqa.xor_full.ja", ...).
    split: "train", "validation" or "test".
    batch_size: examples per host batch.
    shuffle: default True for "train", else False.
    seed: shuffling / answer-sampling seed.
    num_epochs: None repeats forever (train mixtures must: seqio stops a mixture when its
      smallest task runs out otherwise); "auto": None for "train", 1 otherwise.
    shard_index, num_shards: this host's shard of the data.
    use_cached: read the offline SeqIO cache.
    drop_remainder: default True for "train" (static shapes), else False.

  Yields:
    dict with question int32 [B, 50], answer int32 [B, 50], question_en int32 [B, 50]
    (stage 1), qid/lang/source_pid bytes [B], answers bytes [B, A] (b"" padded),
    teacher_pids bytes [B, Kt], teacher_scores float32 [B, Kt] (stage 1), *_pretokenized.
  """
  _ensure_tasks_registered()
  train = split == "train"
  shuffle = train if shuffle is None else shuffle
  if num_epochs == "auto":
    num_epochs = None if train else 1
  drop_remainder = train if drop_remainder is None else drop_remainder
  provider = seqio.get_mixture_or_task(task_or_mixture)
  shard_info = seqio.ShardInfo(shard_index, num_shards) if num_shards > 1 else None
  kwargs = {}
  if isinstance(provider, seqio.Mixture):
    # A mixture keeps only the output features unless told otherwise.
    stage1 = "question_en" in provider.tasks[0].output_features
    kwargs = dict(copy_pretokenized=True,
                  passthrough_features=list(STAGE1_PASSTHROUGH if stage1 else QA_PASSTHROUGH))
  ds = provider.get_dataset(sequence_length=dict(pp.SEQUENCE_LENGTH), split=split,
                            use_cached=use_cached, shuffle=shuffle, seed=seed,
                            shard_info=shard_info, num_epochs=num_epochs, **kwargs)
  padded_shapes = {k: ([_FIXED[k]] if k in _FIXED else [None] * len(spec.shape))
                   for k, spec in ds.element_spec.items()}
  ds = ds.padded_batch(batch_size, padded_shapes=padded_shapes, drop_remainder=drop_remainder)
  ds = ds.prefetch(prefetch)
  yield from ds.as_numpy_iterator()



def fid_batches(task_or_mixture: str, split: str, batch_size: int, assembler, *, mesh=None,
                **kwargs) -> Iterator[tuple[dict[str, np.ndarray], dict]]:
  """(question batch, FiD features) pairs; features are global jax.Arrays when ``mesh`` is given.

  Args:
    task_or_mixture, split, batch_size, **kwargs: as ``get_question_dataset`` (per-host batch,
      shard_index / num_shards for this host).
    assembler: a ``FiDBatchAssembler``.
    mesh: a jax Mesh; features become global arrays sharded over its data axes.
  """
  from clqa_jax.data import fid_batch

  for batch in get_question_dataset(task_or_mixture, split, batch_size, **kwargs):
    features = assembler(batch)
    if mesh is not None:
      features = fid_batch.make_global_batch(features, mesh)
    yield batch, features
