"""SeqIO data sources whose paths resolve from the data root at read time.

``JsonlShardsDataSource`` streams our synthetic JSONL shards through the strict readers (typed
errors, or counted skips); ``RootTfdsDataSource`` reads a clqa TFDS builder from
``<data_root>/tfds``, preparing it from the manual directory ``<data_root>/<subdir>`` the first
time (local files only: nothing is downloaded).
"""
from __future__ import annotations

import random
from typing import Callable, Iterator, Mapping, Optional, Sequence

import seqio
import tensorflow as tf

from clqa_jax import fileio
from clqa_jax.data import paths
from clqa_jax.data import readers
from clqa_jax.data import records
from clqa_jax.data import translated_records
from clqa_jax.data.errors import SkipStats

# Raw (untokenized) features every question source yields, with the stage-1 extras.
QA_SIGNATURE = {
    "qid": tf.TensorSpec([], tf.string),
    "lang": tf.TensorSpec([], tf.string),
    "question": tf.TensorSpec([], tf.string),
    "answers": tf.TensorSpec([None], tf.string),
    "source_pid": tf.TensorSpec([], tf.string),
}
STAGE1_SIGNATURE = {
    **QA_SIGNATURE,
    "question_en": tf.TensorSpec([], tf.string),
    "teacher_pids": tf.TensorSpec([None], tf.string),
    "teacher_scores": tf.TensorSpec([None], tf.float32),
}

# clqa synth translate records (data/translated_records.py), read by Algorithm 1.
TRANSLATED_SIGNATURE = {
    **QA_SIGNATURE,
    "passage_lang": tf.TensorSpec([], tf.string),
    "translation_langs": tf.TensorSpec([None], tf.string),
    "translation_questions": tf.TensorSpec([None], tf.string),
    "translation_answers": tf.TensorSpec([None], tf.string),
    "translation_answer_counts": tf.TensorSpec([None], tf.int32),
}


def _stage1_dict(r: records.Stage1Record) -> dict:
  return {"qid": r.id, "lang": r.lang, "question": r.question, "answers": list(r.answers),
          "source_pid": r.source_pid, "question_en": r.question_en,
          "teacher_pids": list(r.teacher_pids), "teacher_scores": list(r.teacher_scores)}


def _stage2_dict(r: records.Stage2Record) -> dict:
  return {"qid": r.id, "lang": r.lang, "question": r.question, "answers": list(r.answers),
          "source_pid": r.source_pid}


def _qa_dict(r: records.Question) -> dict:
  return {"qid": r.qid, "lang": r.lang, "question": r.question, "answers": list(r.answers),
          "source_pid": ""}


# kind -> (reader, record -> feature dict, signature)
_KINDS: dict[str, tuple[Callable, Callable, dict]] = {
    "stage1": (readers.read_stage1_jsonl, _stage1_dict, STAGE1_SIGNATURE),
    "stage2": (readers.read_stage2_jsonl, _stage2_dict, QA_SIGNATURE),
    "xor": (readers.read_xor_jsonl, _qa_dict, QA_SIGNATURE),
    "translated": (translated_records.read_translated_jsonl, dict, TRANSLATED_SIGNATURE),
}


class JsonlShardsDataSource(seqio.DataSource):
  """Sharded JSONL files under the data root, read with a strict reader.

  Args:
    split_to_pattern: split -> glob relative to the data root (e.g.
      ``{"train": "stage1/clr_pt.fi.jsonl-*-of-*"}``).
    kind: "stage1", "stage2", "xor" or "translated" (which reader and schema).
    skip_errors: drop malformed records (counted, logged) instead of failing.
  """

  def __init__(self, split_to_pattern: Mapping[str, str], kind: str, skip_errors: bool = False):
    if kind not in _KINDS:
      raise ValueError(f"unknown kind {kind!r}; one of {sorted(_KINDS)}")
    self._patterns = dict(split_to_pattern)
    self._kind = kind
    self._skip_errors = skip_errors
    self._count_cache: dict[tuple[str, tuple[str, ...]], int] = {}
    super().__init__(splits=tuple(self._patterns), caching_permitted=True)

  @property
  def kind(self) -> str:
    return self._kind

  @property
  def signature(self) -> dict:
    return _KINDS[self._kind][2]

  @property
  def supports_arbitrary_sharding(self) -> bool:
    return False

  def list_shards(self, split: str) -> Sequence[str]:
    pattern = paths.data_path(self._patterns[split])
    files = readers.expand_shards(pattern)
    if not files:
      raise FileNotFoundError(f"no files match {pattern!r} (data root {paths.data_root()!r})")
    return files

  def iter_records(self, files: Sequence[str], stats: SkipStats | None = None) -> Iterator[dict]:
    read, to_dict, _ = _KINDS[self._kind]
    for f in files:
      local = SkipStats()
      for r in read(f, skip_errors=self._skip_errors, stats=local):
        yield to_dict(r)
      local.log(f)
      if stats is not None:
        stats.read += local.read
        stats.skipped += local.skipped
        stats.by_field.update(local.by_field)

  def get_dataset(self, split: str = "train", shuffle: bool = True, seed: Optional[int] = None,
                  shard_info: Optional[seqio.ShardInfo] = None, *, sequence_length=None,
                  use_cached: bool = False, num_epochs: Optional[int] = 1) -> tf.data.Dataset:
    del sequence_length, use_cached, num_epochs
    files = list(self.list_shards(split))
    if shard_info:
      files = files[shard_info.index::shard_info.num_shards]
    if shuffle:
      random.Random(seed).shuffle(files)
    signature = self.signature
    # tf.data's per-element cost of from_generator dominates a Python reader, so records cross
    # into TF in chunks (list features padded, with their lengths) and are unbatched there.
    chunk_signature = {}
    for k, spec in signature.items():
      chunk_signature[k] = tf.TensorSpec([None] + spec.shape.as_list(), spec.dtype)
      if spec.shape.rank == 1:
        chunk_signature[f"{k}__len"] = tf.TensorSpec([None], tf.int32)

    def chunks():
      buf = []
      for rec in self.iter_records(files):
        buf.append(rec)
        if len(buf) == _CHUNK:
          yield _to_chunk(buf, signature)
          buf = []
      if buf:
        yield _to_chunk(buf, signature)

    def trim(x):
      out = {}
      for k, spec in signature.items():
        out[k] = x[k][:x[f"{k}__len"]] if spec.shape.rank == 1 else x[k]
      return out

    ds = tf.data.Dataset.from_generator(chunks, output_signature=chunk_signature)
    return ds.unbatch().map(trim, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

  def num_input_examples(self, split: str) -> Optional[int]:
    """Records in the split: the MANIFEST count when the stage wrote one, else a line count."""
    files = tuple(self.list_shards(split))
    key = (split, files)
    if key not in self._count_cache:
      self._count_cache[key] = _manifest_count(files) or sum(_count_lines(f) for f in files)
    return self._count_cache[key]


_CHUNK = 256


def _to_chunk(records: list[dict], signature: dict) -> dict:
  """Column arrays for a list of records; list features padded, with a ``<k>__len`` column."""
  import numpy as np

  out = {}
  for k, spec in signature.items():
    np_dtype = object if spec.dtype == tf.string else spec.dtype.as_numpy_dtype
    pad = b"" if spec.dtype == tf.string else 0
    if spec.shape.rank == 0:
      out[k] = np.array([r[k] for r in records], dtype=object if np_dtype is object else np_dtype)
    else:
      lengths = [len(r[k]) for r in records]
      width = max(lengths) if lengths else 0
      col = np.full((len(records), width), pad, dtype=np_dtype)
      for i, r in enumerate(records):
        col[i, :len(r[k])] = r[k]
      out[k] = col
      out[f"{k}__len"] = np.array(lengths, np.int32)
  return out


def _count_lines(path: str) -> int:
  with fileio.open(path, "rb") as f:
    return sum(1 for line in f if line.strip())


def _manifest_count(files: Sequence[str]) -> int | None:
  """Sum of MANIFEST.json ``counts[<file name>]`` for the files, when all are listed."""
  if not files:
    return None
  manifest = fileio.join(fileio.dirname(files[0]), "MANIFEST.json")
  try:
    counts = fileio.read_json(manifest).get("counts", {})
  except (OSError, ValueError):
    return None
  names = [fileio.basename(f) for f in files]
  if all(isinstance(counts.get(n), int) for n in names):
    return sum(counts[n] for n in names)
  return None


class _RootTfdsLoader(seqio.utils.LazyTfdsLoader):
  """A LazyTfdsLoader whose data dir is ``<data_root>/tfds``, preparing from the manual dir."""

  def __init__(self, name: str, manual_subdir: str, split_map: Mapping[str, str] | None):
    super().__init__(name, data_dir=None, split_map=split_map, read_only=True)
    self._manual_subdir = manual_subdir

  @property
  def data_dir(self) -> str:
    return paths.data_path("tfds")

  def _get_builder(self, split: Optional[str] = None):
    from clqa_jax.data import tfds_builders

    key = self._get_builder_key(self.name, self.data_dir)
    if key not in seqio.utils.LazyTfdsLoader._MEMOIZED_BUILDERS:
      builder = tfds_builders.prepare(self.name, self.data_dir,
                                      paths.data_path(self._manual_subdir))
      seqio.utils.LazyTfdsLoader._MEMOIZED_BUILDERS[key] = builder
    return seqio.utils.LazyTfdsLoader._MEMOIZED_BUILDERS[key]

  def size(self, split: str) -> Optional[int]:
    return self.builder.info.splits[self._map_split(split)].num_examples


class RootTfdsDataSource(seqio.TfdsDataSource):
  """``seqio.TfdsDataSource`` over a clqa TFDS builder under the (lazily resolved) data root.

  Args:
    tfds_name: e.g. "clqa_xor_tydi/full:1.1.0".
    manual_subdir: directory under the data root holding the downloaded files.
    splits: canonical split -> TFDS split.
    lang: the language the task keeps (its preprocessors filter on it); the example count is
      then that language's, which the mixing rates need.
  """

  def __init__(self, tfds_name: str, manual_subdir: str, splits: Mapping[str, str],
               lang: str | None = None):
    super().__init__(tfds_name=tfds_name, splits=dict(splits), read_only=True)
    self._tfds_dataset = _RootTfdsLoader(tfds_name, manual_subdir, dict(splits))
    self._lang = lang
    self._lang_counts: dict[tuple[str, str], int] = {}

  def num_input_examples(self, split: str) -> Optional[int]:
    if self._lang is None:
      return self._tfds_dataset.size(split)
    key = (self._tfds_dataset.data_dir, split)
    if key not in self._lang_counts:
      tfds_split = self._tfds_dataset._map_split(split)  # pylint: disable=protected-access
      ds = self._tfds_dataset.builder.as_dataset(split=tfds_split)
      langs = ds.map(lambda x: x["lang"]).batch(4096)
      self._lang_counts[key] = int(sum((b == self._lang.encode()).sum()
                                       for b in langs.as_numpy_iterator()))
    return self._lang_counts[key]
