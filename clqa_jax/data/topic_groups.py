"""LEXA topic groups: the ``linked_paragraphs`` records, their SeqIO source and preprocessors.

Records (``clqa synth linked_paragraphs``, ``linked_paragraphs/paragraphs.jsonl-SSSSS-of-NNNNN``):
one JSON object per document, ``{"topic_id", "lang", "title", "text"}``, the first paragraph of
one article; the documents of a topic are consecutive lines of one shard, in distinct languages.
Hard negatives (``trainer/lexa_mining.py``, ``hard_negatives.jsonl``): one object per topic,
``{"topic_id", "negatives": [{"topic_id", "lang"}, ...], "scores": [float, ...]}``.

The task ``clqa.lexa_pt`` yields one example per topic group (``clqa.lexa_pt.mined`` adds the
group's mined documents from the store bound to ``lexa_hard_negatives.path``):
  format_topic_documents -> tokenize_topic_documents -> CacheDatasetPlaceholder ->
  mask_topic_groups
The masking step draws, per example, a random order of the documents (the anchor is slot 0:
a uniform draw), then masks the anchor and every document independently ([REC] 15% of the
non-pad, non-EOS tokens replaced by a sentinel): slot 0 of ``documents`` is a second,
independently masked copy of the anchor.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator, Mapping, Optional, Sequence

import gin
import seqio
import tensorflow as tf

from clqa_jax import fileio
from clqa_jax.data import formats
from clqa_jax.data import paths
from clqa_jax.data import readers
from clqa_jax.data import wikipedia
from clqa_jax.data.errors import DataFormatError
from clqa_jax.data.preprocessors import PASSAGE_MAX_TOKENS

PARAGRAPH_FIELDS = ("topic_id", "lang", "title", "text")
PARAGRAPHS_PATTERN = "linked_paragraphs/paragraphs.jsonl-*-of-*"


@dataclasses.dataclass(frozen=True)
class LinkedParagraph:
  """The first paragraph of one article, and the topic (interlanguage-link group) it is of."""
  topic_id: str
  lang: str
  title: str
  text: str




def read_topic_groups(path: str) -> Iterator[list[LinkedParagraph]]:
  """The topic groups of one shard: runs of consecutive records with the same ``topic_id``.

  Raises DataFormatError (file, line, field) on a missing/empty field, a topic whose records
  are not consecutive, or two documents of one topic in the same language.
  """
  group: list[LinkedParagraph] = []
  seen: set[str] = set()
  with fileio.open(path) as f:
    for lineno, line in enumerate(f, 1):
      if not line.strip():
        continue
      obj = wikipedia.json_object_line(line, path, lineno)
      for field in PARAGRAPH_FIELDS:
        if not isinstance(obj.get(field), str) or (field != "title" and not obj[field].strip()):
          raise DataFormatError(path, lineno, field, "missing or not a non-empty string")
      doc = LinkedParagraph(*(obj[k] for k in PARAGRAPH_FIELDS))
      if group and doc.topic_id != group[0].topic_id:
        yield group
        group = []
      if not group:
        if doc.topic_id in seen:
          raise DataFormatError(path, lineno, "topic_id",
                                f"topic {doc.topic_id!r} appears again after other topics "
                                "(the documents of a topic must be consecutive)")
        seen.add(doc.topic_id)
      if any(d.lang == doc.lang for d in group):
        raise DataFormatError(path, lineno, "lang",
                              f"topic {doc.topic_id!r} has two documents in {doc.lang!r}")
      group.append(doc)
  if group:
    yield group


def read_hard_negatives(path: str) -> dict[str, list[tuple[str, str]]]:
  """topic_id -> its mined documents as (topic_id, lang), best first."""
  out: dict[str, list[tuple[str, str]]] = {}
  with fileio.open(path) as f:
    for lineno, line in enumerate(f, 1):
      if not line.strip():
        continue
      obj = wikipedia.json_object_line(line, path, lineno)
      if not isinstance(obj.get("topic_id"), str):
        raise DataFormatError(path, lineno, "topic_id", "missing or not a string")
      negatives = obj.get("negatives")
      if not isinstance(negatives, list) or not all(
          isinstance(n, dict) and isinstance(n.get("topic_id"), str)
          and isinstance(n.get("lang"), str) for n in negatives):
        raise DataFormatError(path, lineno, "negatives",
                              "expected a list of {\"topic_id\": str, \"lang\": str}")
      if any(n["topic_id"] == obj["topic_id"] for n in negatives):
        raise DataFormatError(path, lineno, "negatives", "a negative of the group's own topic")
      out[obj["topic_id"]] = [(n["topic_id"], n["lang"]) for n in negatives]
  return out


@gin.configurable
def lexa_hard_negatives(path: str | None = None) -> str:
  """The hard-negative store of ``clqa.lexa_pt.mined`` (relative paths: under the data root)."""
  if not path:
    raise ValueError("clqa.lexa_pt.mined needs its mined negatives: bind "
                     "lexa_hard_negatives.path to a hard_negatives.jsonl "
                     "(python -m clqa_jax.trainer.lexa_mining)")
  return paths.resolve(path)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class LexaMasking:
  """[REC] masking: ``rate`` of the non-pad, non-EOS tokens replaced by ``sentinel_id``.

  ``sentinel_id`` None: the vocabulary's last id (mT5's ``<extra_id_0>``).
  """
  rate: float = 0.15
  sentinel_id: int | None = None

  def __post_init__(self):
    if not 0.0 <= self.rate < 1.0:
      raise ValueError(f"LexaMasking.rate must be in [0, 1), got {self.rate}")


_GROUP_SIGNATURE = {
    "topic_id": tf.TensorSpec([], tf.string),
    "langs": tf.TensorSpec([None], tf.string),
    "titles": tf.TensorSpec([None], tf.string),
    "texts": tf.TensorSpec([None], tf.string),
}
_NEGATIVE_SIGNATURE = {
    "negative_topic_ids": tf.TensorSpec([None], tf.string),
    "negative_titles": tf.TensorSpec([None], tf.string),
    "negative_texts": tf.TensorSpec([None], tf.string),
}


class TopicGroupDataSource(seqio.DataSource):
  """Topic groups of the ``linked_paragraphs`` shards under the data root (>= 2 documents).

  Args:
    mined: add each group's hard negatives from ``lexa_hard_negatives()`` (resolved when read).
  """

  def __init__(self, pattern: str = PARAGRAPHS_PATTERN, mined: bool = False):
    self._pattern = pattern
    self._mined = mined
    super().__init__(splits=("train",), caching_permitted=True)

  @property
  def supports_arbitrary_sharding(self) -> bool:
    return False

  def list_shards(self, split: str) -> Sequence[str]:
    pattern = paths.data_path(self._pattern)
    files = readers.expand_shards(pattern)
    if not files:
      raise FileNotFoundError(f"no files match {pattern!r} (data root {paths.data_root()!r}): "
                              "run `clqa synth linked_paragraphs`")
    return files

  def _groups(self, files: Sequence[str]) -> Iterator[dict]:
    mined, documents = None, None
    if self._mined:
      mined = read_hard_negatives(lexa_hard_negatives())
      documents = {(d.topic_id, d.lang): d for f in self.list_shards("train")
                   for g in read_topic_groups(f) for d in g}
    for f in files:
      for group in read_topic_groups(f):
        if len(group) < 2:
          continue
        out = {"topic_id": group[0].topic_id, "langs": [d.lang for d in group],
               "titles": [d.title for d in group], "texts": [d.text for d in group]}
        if mined is not None:
          negatives = []
          for key in mined.get(group[0].topic_id, []):
            if key not in documents:
              raise KeyError(f"{lexa_hard_negatives()}: mined document {key} of topic "
                             f"{group[0].topic_id!r} is not among the linked paragraphs")
            negatives.append(documents[key])
          out.update(negative_topic_ids=[d.topic_id for d in negatives],
                     negative_titles=[d.title for d in negatives],
                     negative_texts=[d.text for d in negatives])
        yield out

  def get_dataset(self, split: str = "train", shuffle: bool = True, seed: Optional[int] = None,
                  shard_info: Optional[seqio.ShardInfo] = None, *, sequence_length=None,
                  use_cached: bool = False, num_epochs: Optional[int] = 1) -> tf.data.Dataset:
    del sequence_length, use_cached, num_epochs
    files = list(self.list_shards(split))
    if shard_info:
      files = files[shard_info.index::shard_info.num_shards]
    if shuffle:
      import random  # pylint: disable=g-import-not-at-top
      random.Random(seed).shuffle(files)
    signature = dict(_GROUP_SIGNATURE, **(_NEGATIVE_SIGNATURE if self._mined else {}))
    return tf.data.Dataset.from_generator(lambda: self._groups(files),
                                          output_signature=signature)

  def num_input_examples(self, split: str) -> Optional[int]:
    return sum(1 for f in self.list_shards(split) for g in read_topic_groups(f) if len(g) >= 2)


# -- preprocessors ---------------------------------------------------------------------------

def _passage_strings(titles: tf.Tensor, texts: tf.Tensor) -> tf.Tensor:
  prefix, middle = formats.PASSAGE_TEMPLATE.split("{title}")
  middle = middle.split("{text}")[0]
  return tf.strings.join([prefix, titles, middle, texts])


@seqio.map_over_dataset
def format_topic_documents(x):
  """``title: {t} context: {p}`` (the passage template) for every document and negative."""
  x = dict(x)
  x["documents"] = _passage_strings(x.pop("titles"), x.pop("texts"))
  if "negative_texts" in x:
    x["negatives"] = _passage_strings(x.pop("negative_titles"), x.pop("negative_texts"))
  return x


def tokenize_topic_documents(dataset: tf.data.Dataset, output_features) -> tf.data.Dataset:
  """Tokenises ``documents`` (and ``negatives``) to int32 [n, L]: at most 199 pieces + EOS,
  right-padded with 0 to the group's longest."""
  vocab = output_features["documents"].vocabulary

  def tokens(strings):
    ids = tf.cast(vocab.encode_tf(strings), tf.int32)[:, :PASSAGE_MAX_TOKENS - 1]
    eos = tf.fill([tf.shape(strings)[0], 1], vocab.eos_id)
    return tf.concat([ids, tf.RaggedTensor.from_tensor(eos)], axis=1).to_tensor()

  def fn(x):
    x = dict(x)
    for k in ("documents", "negatives"):
      if k in x:
        x[k] = tokens(x[k])
    return x
  return dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE)


def mask_tokens(tokens: tf.Tensor, seed: tf.Tensor, rate: float, sentinel_id: int) -> tf.Tensor:
  """Each token other than pad (0) and EOS (1) replaced by ``sentinel_id`` with probability
  ``rate``, independently (stateless: the same seed gives the same mask)."""
  draw = tf.random.stateless_uniform(tf.shape(tokens), seed=seed)
  return tf.where((tokens > 1) & (draw < rate), tf.constant(sentinel_id, tokens.dtype), tokens)


def mask_topic_groups(dataset: tf.data.Dataset, output_features) -> tf.data.Dataset:
  """Anchor drawn uniformly (a random order, slot 0), then every copy masked independently:
  ``anchor`` [L] and ``documents`` [n, L] (slot 0: the anchor re-masked), ``negatives``."""
  masking = LexaMasking()
  vocab = output_features["documents"].vocabulary
  sentinel = vocab.vocab_size - 1 if masking.sentinel_id is None else masking.sentinel_id

  @seqio.map_over_dataset(num_seeds=4)
  def fn(x, seeds):
    x = dict(x)
    n = tf.shape(x["documents"])[0]
    order = tf.argsort(tf.random.stateless_uniform([n], seed=seeds[0]))
    docs = tf.gather(x["documents"], order)
    x["langs"] = tf.gather(x["langs"], order)
    x["anchor"] = mask_tokens(docs[0], seeds[1], masking.rate, sentinel)
    x["documents"] = mask_tokens(docs, seeds[2], masking.rate, sentinel)
    if "negatives" in x:
      x["negatives"] = mask_tokens(x["negatives"], seeds[3], masking.rate, sentinel)
    return x
  return fn(dataset)


def output_features(vocabulary: seqio.Vocabulary, mined: bool) -> dict[str, seqio.Feature]:
  """The task's token features (rank 2 for the document stacks)."""
  out = {"anchor": seqio.Feature(vocabulary, add_eos=True, required=True),
         "documents": seqio.Feature(vocabulary, add_eos=True, required=True, rank=2)}
  if mined:
    out["negatives"] = seqio.Feature(vocabulary, add_eos=True, required=True, rank=2)
  return out


PREPROCESSORS = (format_topic_documents, tokenize_topic_documents,
                 seqio.CacheDatasetPlaceholder(), mask_topic_groups)
