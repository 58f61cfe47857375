"""Element-wise functions and DoFns of the synthetic-data stages (pure Python, testable alone)."""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Iterator

import apache_beam as beam
import gin

from clqa_jax import fileio
from clqa_jax.data import readers
from clqa_jax.data import wikipedia
from clqa_jax.synth import answer_type_filter
from clqa_jax.synth import cloze
from clqa_jax.synth import config as config_lib
from clqa_jax.synth import encoders
from clqa_jax.synth import entity_augmentation
from clqa_jax.synth import filters
from clqa_jax.synth import parallel
from clqa_jax.synth import passages as passages_lib
from clqa_jax.synth import qagen
from clqa_jax.synth import rewrite
from clqa_jax.synth import teacher
from clqa_jax.synth import translation

logger = logging.getLogger(__name__)

PAIRS_TAG = "pairs"
DROPPED_TAG = "dropped"
dedup_key = filters.dedup_key


class _Progress:
  """Logs items done and the rate every `every_s` seconds (per worker; Beam has no global bar)."""

  def __init__(self, what: str, every_s: float = 30.0):
    self.what, self.every_s = what, every_s
    self.n, self.t0, self.last = 0, time.time(), time.time()

  def add(self, n: int) -> None:
    self.n += n
    now = time.time()
    if now - self.last >= self.every_s:
      self.last = now
      logger.info("%s: %d done, %.1f/s", self.what, self.n, self.n / max(now - self.t0, 1e-9))


def load_to_english(langlinks_path: str) -> dict[str, dict[str, str]]:
  """lang -> {title in lang: English title}, from the interlanguage links file."""
  out: dict[str, dict[str, str]] = {}
  for link in wikipedia.read_langlinks(langlinks_path):
    out.setdefault(link.lang, {})[link.title] = link.en_title
  return out


def article_sentences(article: wikipedia.Article, to_en: dict[str, dict[str, str]], words: int,
                      chars: int) -> list[dict[str, Any]]:
  table = to_en.get(article.lang, {})
  en_title = article.title if article.lang == "en" else table.get(article.title)
  return passages_lib.sentence_records(article, en_title, table, words, chars)


def first_paragraph(article: wikipedia.Article) -> str:
  """The article's first paragraph: its first non-empty line other than a title line ("" if
  none; wikiextractor separates paragraphs with newlines)."""
  for line in article.text.split("\n"):
    line = " ".join(line.split())
    if line and line != article.title:
      return line
  return ""


def topic_document(article: wikipedia.Article,
                   to_en: dict[str, dict[str, str]]) -> Iterator[tuple[str, dict[str, str]]]:
  """(topic, document) of an article in an interlanguage-link group: the topic is the English
  title the links give it (an English article's own title), the document its first paragraph."""
  topic = article.title if article.lang == "en" else to_en.get(article.lang, {}).get(article.title)
  text = first_paragraph(article)
  if topic and text:
    yield topic, {"topic_id": topic, "lang": article.lang, "title": article.title, "text": text,
                  "doc_id": article.id}


def topic_group(element: tuple[str, Any]) -> Iterator[Any]:
  """The documents of one topic, one per language (the lowest article id when a language has
  several), when they span at least two languages; otherwise the drop reason (`dropped` tag)."""
  topic, docs = element
  by_lang: dict[str, dict[str, str]] = {}
  for d in sorted(docs, key=lambda d: (d["lang"], d["doc_id"].zfill(20), d["doc_id"])):
    if d["lang"] in by_lang:
      yield beam.pvalue.TaggedOutput(DROPPED_TAG, "same_language_duplicate")
      continue
    by_lang[d["lang"]] = d
  if len(by_lang) < 2:
    yield beam.pvalue.TaggedOutput(DROPPED_TAG, "single_language")
    return
  for lang in sorted(by_lang):
    d = by_lang[lang]
    yield {"topic_id": topic, "lang": lang, "title": d["title"], "text": d["text"]}


def route_to_pairs(record: dict[str, Any], targets: tuple[str, ...]) -> Iterator[tuple[Any, Any]]:
  """Keys sentences by (English title, target language); English ones go to every target."""
  if not record.get("en_title"):
    return
  if record["lang"] == "en":
    for lang in targets:
      yield (record["en_title"], lang), ("en", record)
  elif record["lang"] in targets:
    yield (record["en_title"], record["lang"]), ("tgt", record)


def _load_checkpoint(cfg: config_lib.SynthConfig):
  if not cfg.checkpoint or cfg.checkpoint_loader is None:
    raise ValueError("the 'checkpoint' encoder/retriever/backend needs SynthConfig.checkpoint and "
                     "SynthConfig.checkpoint_loader (path -> (UnifiedConfig, params, vocab_path))")
  return cfg.checkpoint_loader(cfg.checkpoint)


def make_encoder(cfg: config_lib.SynthConfig) -> encoders.SentenceEncoder:
  if cfg.encoder == "linked_entities":
    return encoders.LinkedEntityEncoder()
  model_config, params, vocab = _load_checkpoint(cfg)
  return encoders.CheckpointQueryEncoder.from_params(model_config, params, vocab)


class MineDoFn(beam.DoFn):
  """(English title, lang) -> mined pairs (tagged `pairs`) and stage-1 candidate records."""

  def __init__(self, cfg: config_lib.SynthConfig):
    self.cfg = cfg

  def setup(self):
    self.encoder = make_encoder(self.cfg)

  def process(self, element):
    (_, lang), values = element
    en = [r for tag, r in values if tag == "en"]
    tgt = [r for tag, r in values if tag == "tgt"]
    for en_sent, tgt_sent, margin in parallel.mine_article_pair(
        en, tgt, self.encoder, self.cfg.margin_k, self.cfg.margin_threshold, self.cfg.mining_mode):
      yield beam.pvalue.TaggedOutput(PAIRS_TAG, lang)
      yield from parallel.cloze_records(en_sent, tgt_sent, margin)


def make_retriever(cfg: config_lib.SynthConfig, psgs_path: str) -> teacher.Retriever:
  rows = passages_lib.read_tsv(psgs_path)
  if cfg.retriever == "bm25":
    return teacher.BM25Retriever(rows, top_k=cfg.teacher_top_k + 1)
  model_config, params, vocab = _load_checkpoint(cfg)
  return teacher.DenseRetriever.from_params(model_config, params, vocab, rows, top_k=cfg.teacher_top_k + 1)


class TeacherDoFn(beam.DoFn):
  """Batches of candidates -> stage-1 records (contract schema) with the teacher's passages."""

  def __init__(self, cfg: config_lib.SynthConfig, psgs_path: str):
    self.cfg, self.psgs_path = cfg, psgs_path

  def setup(self):
    self.retriever = make_retriever(self.cfg, self.psgs_path)
    self.progress = _Progress("synth teacher: queries retrieved")

  def process(self, batch):
    results = teacher.retrieve_excluding(self.retriever, [r["question_en"] for r in batch],
                                         [r["source_pid"] for r in batch], self.cfg.teacher_top_k)
    self.progress.add(len(batch))
    for r, res in zip(batch, results):
      yield {"id": r["id"], "lang": r["lang"], "question_en": r["question_en"], "question": r["question"],
             "answers": r["answers"], "source_pid": r["source_pid"],
             "teacher_pids": [p for p, _ in res], "teacher_scores": [round(s, 6) for _, s in res]}


def qa_items(record: dict[str, Any], targets: tuple[str, ...], variants: tuple[str, ...],
             backend: str) -> Iterator[dict[str, Any]]:
  """Cloze items of one sentence: its anchors as answers, in both stage-2 variants.

  "full": a target-language sentence, answer in that language, source passage from all_w100;
  "retrieve": an English sentence, English answer, source passage from psgs_w100, one item per
  target language (the question is written in that language).
  """
  for a_idx, a in enumerate(record["anchors"]):
    text = cloze.make_cloze(record["sentence"], a["start"], a["end"])
    n = record["sent_idx"] * 100 + a_idx
    base = {"answers": [a["text"]], "source_pid": record["source_pid"], "cloze": text,
            "rewrite_backend": backend}
    if "full" in variants and record["lang"] in targets:
      lang = record["lang"]
      yield {"id": f"{lang}-{record['source_pid']}-{n}", "lang": lang, "answer_lang": lang,
             "kind": "full", **base}
    if "retrieve" in variants and record["lang"] == "en":
      for lang in targets:
        yield {"id": f"{lang}-{record['source_pid']}-{n}", "lang": lang, "answer_lang": "en",
               "kind": "retrieve", **base}


def make_http_backend(cfg: config_lib.SynthConfig, cache_name: str):
  """The ``SynthConfig.http`` endpoint, cached under HttpConfig.cache_dir (default
  ``<output_dir>/<cache_name>``)."""
  from clqa_jax.synth import http_backend
  h = cfg.http
  return http_backend.HttpBackend(
      h.base_url, h.model, cache_dir=h.cache_dir or fileio.join(cfg.output_dir, cache_name),
      api=h.api, batch_size=h.batch_size, max_retries=h.max_retries, backoff_s=h.backoff_s,
      timeout_s=h.timeout_s, max_tokens=h.max_tokens, api_key_env=h.api_key_env)


def make_backend(cfg: config_lib.SynthConfig) -> rewrite.RewriteBackend:
  if cfg.rewrite_backend == "cloze":
    return rewrite.ClozeBackend()
  if cfg.rewrite_backend == "http":
    return make_http_backend(cfg, "rewrite_cache")
  if cfg.rewrite_backend == "miniwiki":
    from clqa_jax.miniwiki import rewrite as miniwiki_rewrite
    return miniwiki_rewrite.MiniwikiBackend()
  model_config, params, vocab = _load_checkpoint(cfg)
  return rewrite.Seq2SeqBackend.from_params(model_config, params, vocab)


class RewriteDoFn(beam.DoFn):
  """Batches of cloze items -> stage-2 records (contract schema)."""

  def __init__(self, cfg: config_lib.SynthConfig):
    self.cfg = cfg

  def setup(self):
    self.backend = make_backend(self.cfg)
    self.progress = _Progress(f"synth qa: clozes rewritten ({self.cfg.rewrite_backend})")

  def process(self, batch):
    questions = self.backend.rewrite([rewrite.RewriteItem(r["kind"], r["lang"], r["cloze"]) for r in batch])
    self.progress.add(len(batch))
    for r, q in zip(batch, questions):
      yield {"id": r["id"], "lang": r["lang"], "question": q, "answers": r["answers"],
             "source_pid": r["source_pid"], "answer_lang": r["answer_lang"], "cloze": r["cloze"],
             "rewrite_backend": r["rewrite_backend"]}


class FilterDoFn(beam.DoFn):
  """Keeps records that pass the filters; the reason of each drop goes to the `dropped` tag."""

  def __init__(self, cfg: filters.FilterConfig):
    self.cfg = cfg

  def process(self, record):
    reason = filters.reject_reason(record, self.cfg)
    if reason is None:
      yield record
    else:
      yield beam.pvalue.TaggedOutput(DROPPED_TAG, reason)


class DedupDoFn(beam.DoFn):
  """Keeps the record with the smallest id of each duplicate group."""

  def process(self, element):
    _, records = element
    records = sorted(records, key=lambda r: r["id"])
    yield records[0]
    for _ in records[1:]:
      yield beam.pvalue.TaggedOutput(DROPPED_TAG, "duplicate")


def validate_xor_file(path: str) -> Iterator[str]:
  """Checks XOR-TyDi JSONL lines (``readers.read_xor_jsonl``); yields each line's language."""
  for question in readers.read_xor_jsonl(path):
    yield question.lang


def title_dictionaries(langlinks_path: str) -> dict[str, dict[str, list[str]]]:
  """lang -> {English title: [its title in lang]}: the interlanguage links as dictionaries."""
  out: dict[str, dict[str, list[str]]] = {}
  for lang, table in load_to_english(langlinks_path).items():
    for title, en_title in table.items():
      out.setdefault(lang, {}).setdefault(en_title, []).append(title)
  return out


def make_translator(cfg: config_lib.SynthConfig) -> translation.Translator:
  """The ``SynthConfig.translate_backend`` translator."""
  if cfg.translate_backend == "dictionary":
    if cfg.translate_dictionaries:
      return translation.DictionaryTranslator.from_directory(cfg.translate_dictionaries,
                                                             cfg.translation_langs)
    return translation.DictionaryTranslator(
        title_dictionaries(fileio.join(cfg.corpus_dir, "langlinks.tsv")))
  if cfg.translate_backend == "http":
    return translation.HttpTranslator(make_http_backend(cfg, "translation_cache"))
  if not cfg.checkpoint or cfg.checkpoint_loader is None:
    raise ValueError("translate_backend 'seq2seq' needs SynthConfig.checkpoint (an exported "
                     "checkpoint) and SynthConfig.checkpoint_loader")
  return translation.Seq2SeqTranslator.from_checkpoint(cfg.checkpoint, cfg.checkpoint_loader)


def read_translate_input(path: str) -> Iterator[dict[str, Any]]:
  """The records of one translate input file; a record without ``lang`` or a translated field
  is an error naming file and line."""
  with fileio.open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{number}: not JSON ({e})") from None
      yield {**record, "_source": f"{path}:{number}"}


def checked_translate_input(record: dict[str, Any], fields, cfg: config_lib.SynthConfig
                            ) -> dict[str, Any]:
  """A ``read_translate_input`` record without its ``_source``, once it has ``lang`` and
  ``fields`` and its lang is one of SynthConfig.langs (else an error naming file and line)."""
  where = record["_source"]
  for field in ("lang", *fields):
    if field not in record:
      raise ValueError(f"{where}: the record has no field {field!r} "
                       "(SynthConfig.translate_fields)")
  if record["lang"] not in cfg.langs:
    raise ValueError(f"{where}: lang {record['lang']!r} is not in SynthConfig.langs")
  return {k: v for k, v in record.items() if k != "_source"}


class TranslateDoFn(beam.DoFn):
  """Batches of records -> the records with their ``translations`` (``translation.
  translate_records``); main output the records, ``DROPPED_TAG`` one "<field>.<lang>" per
  failed translation."""

  def __init__(self, cfg: config_lib.SynthConfig):
    self.cfg = cfg

  def setup(self):
    self.translator = make_translator(self.cfg)
    self.progress = _Progress(f"synth translate: records ({self.cfg.translate_backend})")

  def process(self, batch):
    langs = self.cfg.translation_langs
    records = [checked_translate_input(r, self.cfg.translate_fields, self.cfg) for r in batch]
    out, failures = translation.translate_records(records, self.cfg.translate_fields, langs,
                                                  self.translator)
    self.progress.add(len(batch))
    yield from out
    for failure in failures:
      yield beam.pvalue.TaggedOutput(DROPPED_TAG, failure)


def read_wikimap(paragraphs_pattern: str) -> entity_augmentation.WikiMap:
  """The WikiMap of the ``linked_paragraphs`` shards matching ``paragraphs_pattern``."""
  # topic_groups holds seqio/tf task pieces too (seconds to import): imported only by the stage
  # that reads it, after the CLI has locked gin, so its configurables register unlocked.
  with gin.unlock_config():
    from clqa_jax.data import topic_groups  # pylint: disable=g-import-not-at-top

  files = readers.expand_shards(paragraphs_pattern)
  if not files:
    raise FileNotFoundError(f"no linked_paragraphs shards match {paragraphs_pattern}")
  return entity_augmentation.WikiMap.from_paragraphs(
      doc for f in files for group in topic_groups.read_topic_groups(f) for doc in group)


class EntityAugmentDoFn(beam.DoFn):
  """Records -> the records with entity-augmented ``translations`` (``entity_augmentation.
  augment_record``); main output the records, ``OUTCOME_TAG`` each record's (lang, outcome)."""
  OUTCOME_TAG = "outcome"

  def __init__(self, cfg: config_lib.SynthConfig, paragraphs_pattern: str):
    self.cfg = cfg
    self.paragraphs_pattern = paragraphs_pattern

  def setup(self):
    self.wikimap = read_wikimap(self.paragraphs_pattern)

  def process(self, record):
    if translation.TRANSLATIONS in record:
      raise ValueError(f"{record['_source']}: the record already has "
                       f"{translation.TRANSLATIONS!r} (entity augmentation reads the records the "
                       "translate stage reads, not its output)")
    out, outcome = entity_augmentation.augment_record(
        checked_translate_input(record, ("question",), self.cfg), self.wikimap,
        self.cfg.translation_langs, self.cfg.entity_augment_seed)
    yield out
    yield beam.pvalue.TaggedOutput(self.OUTCOME_TAG, (out["lang"], outcome))


class QaGenDoFn(beam.DoFn):
  """English articles -> generated (question, answer, positive passage) pairs; unusable answers
  go to the `dropped` tag by reason."""

  def __init__(self, cfg: config_lib.SynthConfig):
    self.cfg = cfg

  def setup(self):
    self.progress = _Progress(f"synth qagen: articles ({self.cfg.qagen_backend})")
    self.http = (qagen.HttpQaBackend(make_http_backend(self.cfg, "qagen_cache"))
                 if self.cfg.qagen_backend == "http" else None)

  def process(self, article, persons):
    backend = self.http or qagen.TemplateQaBackend(frozenset(persons))
    for pair in qagen.generate_pairs(article, backend, max_tokens=self.cfg.qagen_max_tokens,
                                     keep_splits=self.cfg.qagen_splits,
                                     positive=self.cfg.qagen_positive,
                                     words=self.cfg.passage_words):
      if "dropped" in pair:
        yield beam.pvalue.TaggedOutput(DROPPED_TAG, pair["dropped"])
      else:
        yield pair
    self.progress.add(1)


class AnswerTypeFilterDoFn(beam.DoFn):
  """Pairs -> per-language AUG-QA records of the pairs the answer-type filter keeps; the rule
  that kept each pair (or "dropped") goes to the `types` tag."""
  TYPES_TAG = "types"

  def __init__(self, cfg: config_lib.SynthConfig, psgs_path: str):
    self.cfg, self.psgs_path = cfg, psgs_path

  def setup(self):
    self.pool = passages_lib.read_tsv(self.psgs_path)  # (pid, title, text): the negatives

  def process(self, pair):
    rule = answer_type_filter.kept_by(pair["question"], pair["answer"], self.cfg.answer_filter_mode)
    yield beam.pvalue.TaggedOutput(self.TYPES_TAG, rule or answer_type_filter.DROPPED)
    if rule is not None:
      yield from qagen.aug_qa_records(pair, rule, self.cfg.langs, self.pool,
                                      self.cfg.qagen_negatives)
