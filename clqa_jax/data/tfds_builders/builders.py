"""TFDS ``GeneratorBasedBuilder``s over the manually downloaded XOR-TyDi, MKQA and NQ files.

Each builder parses its files with the strict readers of ``clqa_jax.data.readers`` (a malformed
line stops the build with file, line and field). Features are raw strings; tokenisation is the
SeqIO tasks' job.
"""
from __future__ import annotations

import tensorflow_datasets as tfds

from clqa_jax import fileio
from clqa_jax.data import formats
from clqa_jax.data import readers

MANUAL_SUBDIRS = {"clqa_xor_tydi": "xor", "clqa_mkqa": "mkqa", "clqa_nq_open": "nq"}


def _find(manual_dir, pattern: str, what: str) -> str:
  matches = fileio.glob(fileio.join(str(manual_dir), pattern))
  if not matches:
    raise FileNotFoundError(
        f"{what}: no file matching {pattern!r} in the manual directory {manual_dir!r}; "
        "download it (see tasks/README.md) and place it there")
  # Prefer the newest version suffix (e.g. _v1_1 over _v1).
  return matches[-1]


def _qa_features() -> tfds.features.FeaturesDict:
  return tfds.features.FeaturesDict({
      "qid": tfds.features.Text(),
      "lang": tfds.features.Text(),
      "question": tfds.features.Text(),
      "answers": tfds.features.Sequence(tfds.features.Text()),
  })


class XorTydiConfig(tfds.core.BuilderConfig):
  """``retrieve``: XOR-Retrieve (English-span answers); ``full``: XOR-Full (answers in L)."""

  def __init__(self, *, train_glob: str, dev_glob: str, **kwargs):
    super().__init__(version=tfds.core.Version("1.1.0"), **kwargs)
    self.train_glob = train_glob
    self.dev_glob = dev_glob


class ClqaXorTydi(tfds.core.GeneratorBasedBuilder):
  """XOR-TyDi QA v1.1 questions (train and dev) from the official JSONL files."""

  VERSION = tfds.core.Version("1.1.0")
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Download xor_train_retrieve_eng_span.jsonl, xor_dev_retrieve_eng_span_v1_1.jsonl, "
      "xor_train_full.jsonl and xor_dev_full_v1_1.jsonl from https://nlp.cs.washington.edu/xorqa/ "
      "into <data_root>/xor/.")
  BUILDER_CONFIGS = [
      XorTydiConfig(name="retrieve", description="XOR-Retrieve (English answer spans)",
                    train_glob="xor_train_retrieve_eng_span*.jsonl",
                    dev_glob="xor_dev_retrieve_eng_span*.jsonl"),
      XorTydiConfig(name="full", description="XOR-Full (answers in the question language)",
                    train_glob="xor_train_full*.jsonl", dev_glob="xor_dev_full*.jsonl"),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(features=_qa_features(), supervised_keys=None,
                                          homepage="https://nlp.cs.washington.edu/xorqa/")

  def _split_generators(self, dl_manager):
    cfg = self.builder_config
    return {
        "train": self._generate_examples(
            _find(dl_manager.manual_dir, cfg.train_glob, "XOR-TyDi train")),
        "validation": self._generate_examples(
            _find(dl_manager.manual_dir, cfg.dev_glob, "XOR-TyDi dev")),
    }

  def _generate_examples(self, path):
    for i, ex in enumerate(readers.read_xor_jsonl(str(path))):
      yield i, {"qid": ex.qid, "lang": ex.lang, "question": ex.question,
                "answers": list(ex.answers)}


class ClqaMkqa(tfds.core.GeneratorBasedBuilder):
  """MKQA, one split per language; ``answers``: the official gold set, empty when unanswerable
  (``records.MkqaExample``)."""

  VERSION = tfds.core.Version("1.0.0")
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Download mkqa.jsonl.gz from https://github.com/apple/ml-mkqa (dataset/mkqa.jsonl.gz) "
      "into <data_root>/mkqa/ (a gunzipped mkqa.jsonl works too).")

  def _info(self) -> tfds.core.DatasetInfo:
    features = _qa_features()
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            **{k: features[k] for k in ("qid", "lang", "question", "answers")},
            "answer_types": tfds.features.Sequence(tfds.features.Text()),
        }),
        homepage="https://github.com/apple/ml-mkqa")

  def _split_generators(self, dl_manager):
    path = _find(dl_manager.manual_dir, "mkqa.jsonl*", "MKQA")
    present: set[str] = set()
    for ex in readers.read_mkqa_jsonl(str(path)):
      present.update(ex.queries)
    # The real file has all 26 languages; a subset (e.g. a test fixture) yields fewer splits.
    return {lang: self._generate_examples(path, lang) for lang in formats.MKQA_LANGUAGES
            if lang in present}

  def _generate_examples(self, path, lang):
    for ex in readers.read_mkqa_jsonl(str(path)):
      if lang not in ex.queries:
        continue
      q = ex.to_question(lang)
      yield q.qid, {"qid": q.qid, "lang": q.lang, "question": q.question,
                    "answers": list(q.answers), "answer_types": list(q.answer_types)}


class ClqaNqOpen(tfds.core.GeneratorBasedBuilder):
  """NQ-open in the DPR CSV release (nq-{train,dev,test}.qa.csv)."""

  VERSION = tfds.core.Version("1.0.0")
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Download DPR's nq-train.qa.csv, nq-dev.qa.csv and nq-test.qa.csv (DPR data "
      "'data.retriever.qas.nq-*') into <data_root>/nq/.")

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(features=_qa_features(),
                                          homepage="https://github.com/facebookresearch/DPR")

  def _split_generators(self, dl_manager):
    out = {}
    for split, name in (("train", "nq-train.qa.csv"), ("validation", "nq-dev.qa.csv"),
                        ("test", "nq-test.qa.csv")):
      path = fileio.join(str(dl_manager.manual_dir), name)
      if fileio.exists(path):
        out[split] = self._generate_examples(path)
    if not out:
      _find(dl_manager.manual_dir, "nq-*.qa.csv", "NQ-open")
    return out

  def _generate_examples(self, path):
    for ex in readers.read_nq_csv(str(path)):
      yield int(ex.qid), {"qid": ex.qid, "lang": "en", "question": ex.question,
                          "answers": list(ex.answers)}


def prepare(name: str, data_dir: str, manual_dir: str) -> tfds.core.DatasetBuilder:
  """Builds ``name`` (e.g. ``clqa_xor_tydi/full``) into ``data_dir`` from ``manual_dir``.

  Idempotent: an already prepared dataset is returned as is. TFDS writes to a temporary
  directory and renames it, so an interrupted build leaves no half dataset behind.
  """
  builder = tfds.builder(name, data_dir=data_dir)
  if not builder.is_prepared():
    tfds.display_progress_bar(False)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=manual_dir, download_mode=tfds.GenerateMode.REUSE_DATASET_IF_EXISTS))
  return builder
