"""The trainer's batch source over the SeqIO tasks and the passage / retrieval stores.

``TrainFeed`` is the gin-configurable ``train.batches`` factory (``DataLayout -> BatchSource``)
of the experiment files: each process reads its shard of a task or mixture with
``pipeline.get_question_dataset`` and turns every question batch into the FiD model features
with ``fid_batch.FiDBatchAssembler`` over a ``PassageStore`` (built once per corpus and
vocabulary) and either the stage-1 teacher's ``teacher_pids`` or a ``RetrievalStore``.

  FEED = @feed/gin.singleton()
  feed/gin.singleton.constructor = @train_feed.TrainFeed
  train_feed.TrainFeed.task = 'clqa.mlqa_pt.xor_retrieve'
  train_feed.TrainFeed.corpus = 'passages/psgs_w100.tsv'
  train_feed.TrainFeed.retrieval = 'retrieval'        # a RetrievalStore under MODEL_DIR-like root
  TRAIN_BATCHES = %FEED

The same singleton is handed to the refresh hook (``trainer/refresh.py``), which peeks at the
questions of the next window (``FeedSource.peek``) and pins the store version the batches read
(``FeedSource.use_version``). Passages are looked up when a batch is taken, never ahead, so a
batch taken after a refresh carries the refreshed passages.

Position: the number of batches consumed; resuming re-creates the (seeded, deterministic)
question stream and skips that many batches.
"""
from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import os
import unicodedata
from typing import Any, Iterator, Mapping, Sequence

import gin
import numpy as np

# Registers the tasks (and their gin configurables) before a run's config is locked.
from clqa_jax import fileio
from clqa_jax import tasks
from clqa_jax.data import fid_batch
from clqa_jax.data import paths
from clqa_jax.data import pipeline
from clqa_jax.data.passage_store import MAX_PASSAGE_TOKENS, PassageStore
from clqa_jax.data.retrieval_labels import RetrievalLabeller
from clqa_jax.data.retrieval_store import RetrievalStore, RetrievalVersion

logger = logging.getLogger(__name__)

QUERY_FEATURES = ("question", "question_en")
QuestionBatch = dict[str, np.ndarray]


def _resolve(path: str) -> str:
  """Absolute paths stay; relative ones are under the data root."""
  return paths.resolve(path)


def _without_question_mark(text: str) -> str:
  """The text without its trailing "?" (and the spaces around it). The full-width forms
  (U+FF1F, U+FE56) count: the vocabulary's NFKC normalisation makes them "?" anyway."""
  text = text.rstrip()
  while text and unicodedata.normalize("NFKC", text[-1]) == "?":
    text = text[:-1].rstrip()
  return text


def _barrier(name: str) -> None:
  import jax  # pylint: disable=g-import-not-at-top

  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


def open_passage_store(corpus: str, store_dir: str | None = None,
                       vocab_path: str | None = None) -> PassageStore:
  """The PassageStore of (corpus, vocabulary), built by process 0 on first use.

  Args:
    corpus: the DPR passage TSV (relative paths are under the data root).
    store_dir: where the store lives (default ``<data_root>/stores/<tsv name>.<vocab sha8>``).
    vocab_path: the SentencePiece model (default: the configured ``vocabulary_path``).
  """
  import hashlib  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top

  corpus_path = _resolve(corpus)
  vocab_path = vocab_path or paths.vocabulary_path()
  if store_dir is None:
    sha = hashlib.sha256(fileio.read_bytes(vocab_path)).hexdigest()[:8]
    name = os.path.splitext(fileio.basename(corpus_path))[0]
    store_dir = paths.data_path("stores", f"{name}.{sha}")
  else:
    store_dir = _resolve(store_dir)
  if jax.process_index() == 0:
    PassageStore.build(corpus_path, vocab_path, store_dir, progress=False)
  _barrier(f"passage_store:{store_dir}")
  return PassageStore.open(store_dir, corpus_path=corpus_path, vocab=vocab_path)


@gin.configurable
@dataclasses.dataclass
class TrainFeed:
  """``train.batches``: the factory of this process's FiD batches over a task or mixture.

  Attributes:
    task: a registered task or mixture (e.g. 'clqa.mlqa_pt.xor_full'); with ``languages`` the
      name of a task family instead ('clr_pt', 'mlqa_pt.xor_retrieve', 'xor_full', ...), whose
      tasks for those languages are mixed (``tasks.register_language_mixture``).
    corpus: the passage TSV the passages come from (relative: under the data root).
    retrieval: 'teacher_pids' (stage 1: the teacher's fixed passages) or the directory of a
      RetrievalStore (stage 2 / fine-tuning: written by the refresh hook).
    k: passages per question.
    split: the split to train on.
    languages: restrict ``task`` (a family) to these languages.
    seed: shuffling / answer-sampling seed of the question stream.
    query_feature: the task feature fed as ``query_tokens``: 'question', or 'question_en' (the
      English cloze queries of stage-1 tasks, for training an English teacher).
    stage1: emit ``query_en_tokens`` (None: when the task has the feature and
      ``query_feature`` is 'question').
    passage_store_dir: the PassageStore directory (default under ``<data_root>/stores``).
    teacher_vocab: stage 1 with a teacher of another vocabulary: its SentencePiece model (a
      second PassageStore is built with it and ``teacher_*`` features are emitted).
    keep_versions: RetrievalStore versions kept on disk (a resumed checkpoint needs its own).
    sample_passages: 0, or C: each batch draws C of every question's top-k stored passages
      uniformly, anew per batch (reproducibly from ``seed``, the shard and the position), and
      carries their stored scores as ``teacher_scores`` (UMR over ``clqa rerank`` output).
    source_first: each question's source passage first, then K-1 retrieved ones
      (``FiDBatchAssembler.source_first``: the positive of a supervised retrieval loss).
    passage_length: Lp, passage tokens fed per passage (the stored ones are cut to it; at most
      the store's MAX_PASSAGE_TOKENS, the spec's 200). A corpus of short passages trains
      faster with less: the step's encoder cost grows with Lq + Lp.
    query_length: Lq, query tokens fed (the spec's 50, the pipeline's limit; longer queries
      are cut to it). Padding costs as much as tokens in every [query; passage] pair.
    answer_length: T, answer tokens (the spec's 50).
    labelled_pairs: batches of K = 2 passages per question, its positive and one answer-free
      hard negative taken from its top-``k`` stored passages (``retrieval_labels``; the source
      passage is the positive where the question has one): the DPR NLL / MixCSE objectives.
      ``k`` is then the depth searched (and refreshed), not the batch's K.
    strip_question_mark: the query tokens are the query text without its trailing "?"
      (re-encoded from ``<query_feature>_pretokenized``; UMR's student, peer-methods 4.2).
      Every use of ``query_tokens`` sees it: the batches, the refreshes, UMR's dense rounds.
    positive_labels: emit ``positive_labels`` [B, K] from the store's scores (> 0: a gold
      passage), for a self-training round's store (``FiDBatchAssembler.labels``).
  """
  task: str = gin.REQUIRED
  corpus: str = gin.REQUIRED
  retrieval: str = fid_batch.TEACHER_PIDS
  k: int = 100
  split: str = "train"
  languages: Sequence[str] | None = None
  seed: int = 0
  query_feature: str = "question"
  stage1: bool | None = None
  passage_store_dir: str | None = None
  teacher_vocab: str | None = None
  keep_versions: int = 3
  sample_passages: int = 0
  source_first: bool = False
  passage_length: int = MAX_PASSAGE_TOKENS
  query_length: int = pipeline.pp.QUERY_MAX_TOKENS
  answer_length: int = pipeline.pp.ANSWER_MAX_TOKENS
  labelled_pairs: bool = False
  strip_question_mark: bool = False
  positive_labels: bool = False

  def __post_init__(self):
    if self.query_feature not in QUERY_FEATURES:
      raise ValueError(f"TrainFeed.query_feature={self.query_feature!r}; one of {QUERY_FEATURES}")
    if self.k < 1:
      raise ValueError(f"TrainFeed.k must be positive, got {self.k}")
    if not 1 < self.passage_length <= MAX_PASSAGE_TOKENS:
      raise ValueError(f"TrainFeed.passage_length must be in 2..{MAX_PASSAGE_TOKENS} (the "
                       f"stored passage tokens), got {self.passage_length}")
    if not 1 < self.query_length <= pipeline.pp.QUERY_MAX_TOKENS:
      raise ValueError(f"TrainFeed.query_length must be in 2..{pipeline.pp.QUERY_MAX_TOKENS}, "
                       f"got {self.query_length}")
    if not 1 < self.answer_length <= pipeline.pp.ANSWER_MAX_TOKENS:
      raise ValueError(f"TrainFeed.answer_length must be in 2..{pipeline.pp.ANSWER_MAX_TOKENS}, "
                       f"got {self.answer_length}")
    self.source: FeedSource | None = None
    self._passage_store: PassageStore | None = None
    self._retrieval_store: RetrievalStore | None = None
    self._sp = None  # the vocabulary, loaded on the first strip_question_mark batch

  # -- shared with the refresh hook ------------------------------------------------------

  @property
  def task_name(self) -> str:
    if self.languages is None:
      return self.task
    langs = sorted(self.languages)
    return tasks.register_language_mixture(f"clqa.{self.task}.{'-'.join(langs)}", self.task,
                                           langs, split=self.split)

  @property
  def passage_store(self) -> PassageStore:
    if self._passage_store is None:
      self._passage_store = open_passage_store(self.corpus, self.passage_store_dir)
    return self._passage_store

  @property
  def uses_retrieval_store(self) -> bool:
    return self.retrieval != fid_batch.TEACHER_PIDS

  @property
  def retrieval_store(self) -> RetrievalStore:
    if not self.uses_retrieval_store:
      raise ValueError("this feed reads the teacher's passages (retrieval='teacher_pids'); "
                       "a refresh needs TrainFeed.retrieval = a RetrievalStore directory")
    if self._retrieval_store is None:
      import jax  # pylint: disable=g-import-not-at-top
      # Each process retrieves for its own questions, so each keeps its own store.
      root = fileio.join(_resolve(self.retrieval), f"process_{jax.process_index():05d}")
      self._retrieval_store = RetrievalStore(root, keep_versions=self.keep_versions)
    return self._retrieval_store

  def question_batches(self, batch_size: int, *, shard_index: int = 0, num_shards: int = 1,
                       train: bool = True) -> Iterator[QuestionBatch]:
    """This shard's question batches: the training stream (shuffled, repeated, seeded), or with
    ``train=False`` every question of the split once, in order (fine-tuning refreshes)."""
    kwargs = dict(shard_index=shard_index, num_shards=num_shards, seed=self.seed)
    if train:
      return pipeline.get_question_dataset(self.task_name, self.split, batch_size, **kwargs)
    kwargs.update(shuffle=False, num_epochs=1, drop_remainder=False)
    # A mixture read once stops when its first task runs out: read its tasks one by one.
    import seqio  # pylint: disable=g-import-not-at-top
    provider = seqio.get_mixture_or_task(self.task_name)
    names = ([t.name for t in provider.tasks] if isinstance(provider, seqio.Mixture)
             else [self.task_name])
    return itertools.chain.from_iterable(
        pipeline.get_question_dataset(name, self.split, batch_size, **kwargs) for name in names)

  def query_tokens(self, batch: Mapping[str, np.ndarray]) -> np.ndarray:
    """int32 [B, Lq]: the tokens fed as the query (the feature ``query_feature``)."""
    if self.query_feature not in batch:
      raise KeyError(f"task {self.task_name!r} has no feature {self.query_feature!r}")
    tokens = batch[self.query_feature]
    if self.strip_question_mark:
      tokens = self.question_mark_stripped(batch[f"{self.query_feature}_pretokenized"])
    return fid_batch._fit(tokens, self.query_length)  # pylint: disable=protected-access

  def question_mark_stripped(self, texts_B: np.ndarray) -> np.ndarray:
    """int32 [B, Lq]: the query texts ("question: {q}") without a trailing "?", encoded as the
    task encodes them (the vocabulary's pieces, no EOS, pad 0)."""
    if self._sp is None:
      from clqa_jax.data.passage_store import _sp_processor  # pylint: disable=g-import-not-at-top
      self._sp = _sp_processor(paths.vocabulary_path())
    texts = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in texts_B]
    ids = self._sp.encode([_without_question_mark(t) for t in texts], out_type=int)
    out = np.zeros((len(ids), self.query_length), np.int32)
    for i, row in enumerate(ids):
      row = row[:self.query_length]
      out[i, :len(row)] = row
    return out

  def feature_dimensions(self) -> dict[str, int]:
    """The widths of every batch (``aot`` compiles the step from them, without data)."""
    return dict(num_passages=2 if self.labelled_pairs else self.k,
                query_length=self.query_length,
                passage_length=self.passage_length, target_length=self.answer_length)

  def __call__(self, layout: Any) -> "FeedSource":
    """The ``BatchSource`` of the process whose rows ``layout`` (a DataLayout) describes."""
    teacher = None
    if self.teacher_vocab:
      store = open_passage_store(self.corpus, None, self.teacher_vocab)
      teacher = fid_batch.TeacherInputs(store, self.teacher_vocab)
    retrieval = self.retrieval_store if self.uses_retrieval_store else fid_batch.TEACHER_PIDS
    labeller = None
    if self.labelled_pairs:
      labeller = RetrievalLabeller(self.passage_store, paths.vocabulary_path())
    assembler = fid_batch.FiDBatchAssembler(self.passage_store, retrieval, k=self.k,
                                            teacher=teacher, sample=self.sample_passages,
                                            source_first=self.source_first,
                                            passage_length=self.passage_length,
                                            query_length=self.query_length,
                                            answer_length=self.answer_length,
                                            labeller=labeller,
                                            labels=self.positive_labels)
    self.source = FeedSource(self, assembler, layout.per_process_batch_size, layout.shard_id,
                             layout.num_shards)
    return self.source


class FeedSource:
  """A resumable ``BatchSource`` of host-local FiD features (see the module docstring)."""

  def __init__(self, feed: TrainFeed, assembler: fid_batch.FiDBatchAssembler, batch_size: int,
               shard_index: int, num_shards: int, position: int = 0):
    self.feed = feed
    self.assembler = assembler
    self.batch_size = batch_size
    self.shard_index = shard_index
    self.num_shards = num_shards
    self._position = position
    self._buffer: collections.deque[QuestionBatch] = collections.deque()
    self._it = self._questions(position)

  def _questions(self, position: int) -> Iterator[QuestionBatch]:
    it = self.feed.question_batches(self.batch_size, shard_index=self.shard_index,
                                    num_shards=self.num_shards)
    if position:
      logger.info("resuming the question stream of %s at batch %d", self.feed.task_name, position)
      it = itertools.islice(it, position, None)
    return it

  def _next_questions(self) -> QuestionBatch:
    if self._buffer:
      return self._buffer.popleft()
    return next(self._it)

  def peek(self, num_batches: int) -> list[QuestionBatch]:
    """The next ``num_batches`` question batches, without consuming them."""
    while len(self._buffer) < num_batches:
      self._buffer.append(next(self._it))
    return list(itertools.islice(self._buffer, num_batches))

  def use_version(self, version: int | None) -> None:
    """Pins the RetrievalStore version the batches read (None: its latest)."""
    store = self.feed.retrieval_store
    self.assembler.retrieval = store if version is None else store.version(int(version))

  @property
  def retrieval_version(self) -> RetrievalVersion | None:
    r = self.assembler.retrieval
    if isinstance(r, RetrievalVersion):
      return r
    return r.latest() if isinstance(r, RetrievalStore) else None

  def features(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """FiD features of one question batch (query: ``feed.query_feature``)."""
    out = self.assembler(batch, draw_seed=(self.feed.seed, self.shard_index, self._position))
    out["query_tokens"] = self.feed.query_tokens(batch)
    stage1 = self.feed.stage1
    if stage1 is None:
      stage1 = self.feed.query_feature == "question" and "question_en" in batch
    if not stage1:
      out.pop("query_en_tokens", None)
    elif "query_en_tokens" not in out:
      raise KeyError(f"TrainFeed.stage1 is set but {self.feed.task_name!r} has no question_en")
    return out

  def next_with_questions(self) -> tuple[QuestionBatch, dict[str, np.ndarray]]:
    questions = self._next_questions()
    features = self.features(questions)
    self._position += 1
    return questions, features

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    return self.next_with_questions()[1]

  def get_state(self) -> dict[str, Any]:
    return {"position": self._position}

  def set_state(self, state: Mapping[str, Any]) -> None:
    self._position = int(state["position"])
    self._buffer.clear()
    self._it = self._questions(self._position)
