"""The synthetic-data stages as Beam pipelines (in process with FnApiRunner by default; the runner is a flag).

Layout under `output_dir` (see the cross-module contract):
  passages/psgs_w100.tsv, passages/all_w100.tsv
  anchors/sentences.<lang>.jsonl-SSSSS-of-NNNNN       sentences with anchors and source pid
  parallel/candidates.<lang>.jsonl-SSSSS-of-NNNNN     mined cloze/parallel pairs
  stage1/clr_pt.<lang>.jsonl-SSSSS-of-NNNNN           + teacher passages
  stage2/xor_retrieve.<lang>.jsonl-..., stage2/xor_full.<lang>.jsonl-...
  xor/                                                the corpus's XOR-TyDi question files
  linked_paragraphs/paragraphs.jsonl-SSSSS-of-NNNNN   LEXA topic groups: the first paragraph
                                                      of every interlanguage-linked article
  translated/<prefix>.<lang>.jsonl-...                translate: records with translations
  entity_augmented/<prefix>.<lang>.jsonl-...          entity_augment: the same records with
                                                      their titles in another language
  qagen/pairs.jsonl-SSSSS-of-NNNNN                    ZusammenQA generated English QA pairs
  aug_qa/aug_qa.<lang>.jsonl-SSSSS-of-NNNNN           their AUG-QA records (stage-1 schema)
  aug_qa/positive_windows.tsv                         with qagen_positive "window": the windows
each with a MANIFEST.json. `run_all` runs them in order; each is skipped when complete.
"""
from __future__ import annotations

import json
import logging
from typing import Any

import apache_beam as beam

from clqa_jax import fileio
from clqa_jax.synth import beam_io
from clqa_jax.synth import beam_util
from clqa_jax.synth import config as config_lib
from clqa_jax.synth import dofns
from clqa_jax.synth import entity_augmentation
from clqa_jax.synth import manifest
from clqa_jax.synth import passages as passages_lib
from clqa_jax.synth import qagen

logger = logging.getLogger(__name__)

STAGES = ("passages", "anchors", "parallel", "teacher", "qa", "questions", "linked_paragraphs")
# ZusammenQA's QA generation: run on request (`clqa synth qagen`, then `qa_filter`), not by `all`.
ZQA_STAGES = ("qagen", "qa_filter")
_PASSAGE_FIELDS = ("corpus_dir", "langs", "passage_words", "passage_chars")


def _dir(cfg: config_lib.SynthConfig, stage: str) -> str:
  return fileio.join(cfg.output_dir, stage)


def _require(cfg: config_lib.SynthConfig, stage: str, by: str) -> str:
  path = _dir(cfg, stage)
  if not fileio.exists(fileio.join(path, manifest.MANIFEST)):
    also = "" if stage in ZQA_STAGES else " (or `clqa synth all`)"
    raise FileNotFoundError(f"synth {by} needs the {stage} stage's output at {path}: run "
                            f"`clqa synth {stage}` first{also}")
  return path


def _from_articles(cfg: config_lib.SynthConfig, what: str) -> manifest.ExpectedRecords:
  return manifest.ExpectedRecords(
      (what,), fileio.join(cfg.corpus_dir, "articles"),
      f"check --corpus: articles/<lang>/ must hold wikiextractor output of SynthConfig.langs "
      f"({', '.join(cfg.langs)})")


def run_passages(cfg: config_lib.SynthConfig) -> dict[str, Any]:
  """Articles -> DPR TSVs (English: psgs_w100.tsv; all languages: all_w100.tsv)."""
  def build(p, staging):
    articles = beam_util.read_articles(p, cfg)
    psg = articles | "Passages" >> beam.FlatMap(
        lambda a: passages_lib.article_passages(a, cfg.passage_words, cfg.passage_chars))
    for name, keep in (("psgs_w100.tsv", lambda r: r["lang"] == "en"), ("all_w100.tsv", lambda r: True)):
      (psg | f"Keep.{name}" >> beam.Filter(keep) | f"Row.{name}" >> beam.Map(passages_lib.tsv_row)
       | f"Write.{name}" >> beam_io.WriteLines(fileio.join(staging, name), sharded=False,
                                               header="id\ttext\ttitle"))
    beam_util.count(articles, lambda a: a.lang, staging, "articles")
    beam_util.count(psg, lambda r: r["lang"], staging, "passages")
  return beam_util.run_stage(cfg, "passages", [fileio.join(cfg.corpus_dir, "articles")],
                             cfg.stage_config(*_PASSAGE_FIELDS), build,
                             _from_articles(cfg, "passages"))


def run_anchors(cfg: config_lib.SynthConfig) -> dict[str, Any]:
  """Articles -> sentences with (anchor span, linked article, its English title, language)."""
  langlinks = fileio.join(cfg.corpus_dir, "langlinks.tsv")
  passages_dir = _require(cfg, "passages", "anchors")

  def build(p, staging):
    links = p | "LangLinks" >> beam.Create([langlinks]) | "ToEnglish" >> beam.Map(dofns.load_to_english)
    articles = beam_util.read_articles(p, cfg)
    sents = articles | "Sentences" >> beam.FlatMap(
        dofns.article_sentences, to_en=beam.pvalue.AsSingleton(links),
        words=cfg.passage_words, chars=cfg.passage_chars)
    beam_util.write_by_lang(sents, staging, "sentences.{lang}.jsonl", cfg.langs, cfg.num_shards, "Sent")
    beam_util.count(sents, lambda r: r["lang"], staging, "sentences")
    anchors = sents | "Anchors" >> beam.FlatMap(lambda r: [r["lang"]] * len(r["anchors"]))
    beam_util.count(anchors, lambda l: l, staging, "anchors")
  return beam_util.run_stage(cfg, "anchors",
                             [langlinks, passages_dir, fileio.join(cfg.corpus_dir, "articles")],
                             cfg.stage_config(*_PASSAGE_FIELDS), build,
                             _from_articles(cfg, "sentences"))


def run_parallel(cfg: config_lib.SynthConfig) -> dict[str, Any]:
  """Linked article pairs -> ratio-margin mined sentence pairs -> cloze + parallel queries."""
  anchors_dir = _require(cfg, "anchors", "parallel")

  def build(p, staging):
    sents = beam_io.read_jsonl(p, fileio.join(anchors_dir, "sentences.*.jsonl-*"), "Sentences")
    groups = (sents | "KeyByArticlePair" >> beam.FlatMap(dofns.route_to_pairs, targets=cfg.target_langs)
              | "GroupPairs" >> beam.GroupByKey())
    mined = groups | "Mine" >> beam.ParDo(dofns.MineDoFn(cfg)).with_outputs(dofns.PAIRS_TAG, main="records")
    beam_util.write_by_lang(mined.records, staging, "candidates.{lang}.jsonl", cfg.target_langs,
                            cfg.num_shards, "Cand")
    beam_util.count(mined.records, lambda r: r["lang"], staging, "records")
    beam_util.count(mined[dofns.PAIRS_TAG], lambda l: l, staging, "pairs")
  return beam_util.run_stage(
      cfg, "parallel", [anchors_dir],
      cfg.stage_config("target_langs", "encoder", "checkpoint", "margin_k", "margin_threshold",
                       "mining_mode"), build,
      manifest.ExpectedRecords(
          ("records",), anchors_dir,
          f"no sentence pair of {', '.join(cfg.target_langs)} and English articles linked by "
          f"{fileio.join(cfg.corpus_dir, 'langlinks.tsv')} passed the margin: check the links "
          "or lower SynthConfig.margin_threshold"))


def run_teacher(cfg: config_lib.SynthConfig) -> dict[str, Any]:
  """Candidates -> stage-1 records with the teacher's top-k English passages (source excluded)."""
  parallel_dir = _require(cfg, "parallel", "teacher")
  passages_dir = _require(cfg, "passages", "teacher")

  def build(p, staging):
    cands = beam_io.read_jsonl(p, fileio.join(parallel_dir, "candidates.*.jsonl-*"), "Candidates")
    records = (cands | "Batch" >> beam.BatchElements(min_batch_size=8, max_batch_size=256)
               | "Retrieve" >> beam.ParDo(dofns.TeacherDoFn(cfg, fileio.join(passages_dir, "psgs_w100.tsv"))))
    beam_util.write_by_lang(records, staging, "clr_pt.{lang}.jsonl", cfg.target_langs, cfg.num_shards, "Stage1")
    beam_util.count(records, lambda r: r["lang"], staging, "records")
  return beam_util.run_stage(
      cfg, "stage1", [parallel_dir, passages_dir],
      cfg.stage_config("retriever", "teacher_top_k", "checkpoint"), build,
      manifest.ExpectedRecords(("records",), parallel_dir,
                               "it holds no candidates: rerun `clqa synth parallel --overwrite`"))


def run_qa(cfg: config_lib.SynthConfig) -> dict[str, Any]:
  """Anchor clozes -> natural questions (rewrite backend) -> filters -> stage-2 records."""
  anchors_dir = _require(cfg, "anchors", "qa")

  def build(p, staging):
    sents = beam_io.read_jsonl(p, fileio.join(anchors_dir, "sentences.*.jsonl-*"), "Sentences")
    items = sents | "ClozeItems" >> beam.FlatMap(dofns.qa_items, targets=cfg.target_langs,
                                                 variants=cfg.qa_variants, backend=cfg.rewrite_backend)
    rewritten = (items | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=cfg.rewrite_batch_size)
                 | "Rewrite" >> beam.ParDo(dofns.RewriteDoFn(cfg)))
    checked = rewritten | "Filter" >> beam.ParDo(dofns.FilterDoFn(cfg.filters)).with_outputs(
        dofns.DROPPED_TAG, main="kept")
    deduped = (checked.kept | "DedupKey" >> beam.Map(lambda r: (dofns.dedup_key(r), r))
               | "DedupGroup" >> beam.GroupByKey()
               | "Dedup" >> beam.ParDo(dofns.DedupDoFn()).with_outputs(dofns.DROPPED_TAG, main="kept"))
    drops = (checked[dofns.DROPPED_TAG], deduped[dofns.DROPPED_TAG]) | "Drops" >> beam.Flatten()
    beam_util.count(drops, lambda reason: reason, staging, "dropped")
    for variant, answer_en in (("retrieve", True), ("full", False)):
      if variant not in cfg.qa_variants:
        continue
      part = deduped.kept | f"Keep.{variant}" >> beam.Filter(
          lambda r, en=answer_en: (r["answer_lang"] == "en") == en)
      beam_util.write_by_lang(part, staging, f"xor_{variant}.{{lang}}.jsonl", cfg.target_langs,
                              cfg.num_shards, f"QA.{variant}")
      beam_util.count(part, lambda r: r["lang"], staging, variant)
    beam_util.count(items, lambda r: r["lang"], staging, "clozes")
  return beam_util.run_stage(
      cfg, "stage2", [anchors_dir],
      cfg.stage_config("target_langs", "qa_variants", "rewrite_backend", "http", "filters", "checkpoint"),
      build,
      manifest.ExpectedRecords(
          cfg.qa_variants, anchors_dir,
          f"no anchored sentence of {', '.join(cfg.target_langs)} made a question that passed "
          "the filters (SynthConfig.filters)"))


def run_questions(cfg: config_lib.SynthConfig) -> dict[str, Any]:
  """Copies (and validates) the corpus's XOR-TyDi question files into `<output_dir>/xor`."""
  src = fileio.join(cfg.corpus_dir, "xor")
  final = fileio.join(cfg.output_dir, "xor")
  fp = manifest.fingerprint({"stage": "xor"}, [src])
  if manifest.is_complete(final, fp, cfg.overwrite):
    logger.info("synth questions: complete for these inputs and config, skipped (%s)", final)
    return {**manifest.read_manifest(final), "skipped": True}
  logger.info("synth questions: running -> %s", final)
  counts: dict[str, dict[str, int]] = {}
  with manifest.publish_stage(final) as staging:
    for name in fileio.listdir(src):
      if not name.endswith(".jsonl"):
        continue
      per_lang = counts.setdefault(name, {})
      for lang in dofns.validate_xor_file(fileio.join(src, name)):
        per_lang[lang] = per_lang.get(lang, 0) + 1
      fileio.copy(fileio.join(src, name), fileio.join(staging, name))
    if not any(sum(per_lang.values()) for per_lang in counts.values()):
      raise manifest.EmptyStageError(
          f"{src}: holds no XOR-TyDi questions; synth questions copies the corpus's question "
          "files (xor/*.jsonl): check --corpus")
    result = manifest.write_manifest(staging, "xor", counts, {"corpus_dir": cfg.corpus_dir}, fp)
  logger.info("synth questions: done: %s", beam_util.records_done(counts))
  return {**result, "skipped": False}


def _topic_of_line(line: str) -> str:
  return json.loads(line)["topic_id"]


def run_linked_paragraphs(cfg: config_lib.SynthConfig) -> dict[str, Any]:
  """Articles + interlanguage links -> LEXA topic groups, one record per document.

  `{"topic_id", "lang", "title", "text"}`: the first paragraph of each article of a topic (the
  English title its links share), groups of at least two languages, one document per language.
  A topic's records share a shard and are consecutive in it (sorted lines, topic first), which
  is how `data/topic_groups.py` reads them back as groups.
  """
  langlinks = fileio.join(cfg.corpus_dir, "langlinks.tsv")

  def build(p, staging):
    links = p | "LangLinks" >> beam.Create([langlinks]) | "ToEnglish" >> beam.Map(dofns.load_to_english)
    articles = beam_util.read_articles(p, cfg)
    groups = (articles
              | "TopicDocs" >> beam.FlatMap(dofns.topic_document,
                                            to_en=beam.pvalue.AsSingleton(links))
              | "GroupTopics" >> beam.GroupByKey()
              | "TopicGroups" >> beam.FlatMap(dofns.topic_group).with_outputs(
                  dofns.DROPPED_TAG, main="docs"))
    (groups.docs | "Json" >> beam.Map(lambda r: json.dumps(r, ensure_ascii=False))
     | "Write" >> beam_io.WriteLines(fileio.join(staging, "paragraphs.jsonl"), cfg.num_shards,
                                     shard_key=_topic_of_line, sort_lines=True))
    beam_util.count(groups.docs, lambda r: r["lang"], staging, "documents")
    sizes = (groups.docs | "TopicKey" >> beam.Map(lambda r: (r["topic_id"], 1))
             | "TopicSize" >> beam.CombinePerKey(sum))
    beam_util.count(sizes, lambda kv: f"{kv[1]} languages", staging, "groups")
    beam_util.count(groups[dofns.DROPPED_TAG], lambda reason: reason, staging, "dropped")
  return beam_util.run_stage(
      cfg, "linked_paragraphs", [langlinks, fileio.join(cfg.corpus_dir, "articles")],
      cfg.stage_config("langs"), build,
      manifest.ExpectedRecords(
          ("documents",), langlinks,
          "no article of two or more SynthConfig.langs is linked to one English title by it; "
          "check --corpus: langlinks.tsv and articles/<lang>/"))


def translate_input_pattern(cfg: config_lib.SynthConfig) -> str:
  """``SynthConfig.translate_input``: absolute (or gs://) as given, else under output_dir."""
  pattern = cfg.translate_input
  if pattern.startswith("/") or fileio.is_remote(pattern):
    return pattern
  return fileio.join(cfg.output_dir, pattern)


def translated_prefix(pattern: str) -> str:
  """The output name of an input glob: its file name up to the first dot
  (``stage2/xor_retrieve.*.jsonl-*`` -> ``xor_retrieve``)."""
  return fileio.basename(pattern).split(".", 1)[0].rstrip("*-_") or "translated"


# The settings that name each backend's engine (recorded in the manifest's config).
_TRANSLATION_ENGINE = {"dictionary": ("translate_dictionaries",), "http": ("http",),
                       "seq2seq": ("checkpoint",)}


def _translate_inputs(cfg: config_lib.SynthConfig, stage: str) -> tuple[str, list[str], str]:
  """(pattern, files, output prefix) of ``SynthConfig.translate_input``; no file is an error."""
  pattern = translate_input_pattern(cfg)
  files = fileio.glob(pattern)
  if not files:
    raise FileNotFoundError(f"synth {stage}: no files match {pattern} "
                            "(SynthConfig.translate_input)")
  return pattern, list(files), translated_prefix(pattern)


def run_translate(cfg: config_lib.SynthConfig) -> dict[str, Any]:
  """Records (questions; AUG-QA / AUG-QAP) -> the same records with ``translations``:
  {lang: {field: translated value}} into every ``translation_langs`` language but the record's
  own, written to ``<translate_output>/<prefix>.<lang>.jsonl-SSSSS-of-NNNNN`` by record lang.

  A failed translation is "" and counted under ``dropped`` ("<field>.<target lang>").
  Not part of ``clqa synth all``: its input is another stage's (or dataset's) records.
  """
  pattern, files, prefix = _translate_inputs(cfg, "translate")
  inputs = list(files)
  if cfg.translate_backend == "dictionary":
    inputs.append(cfg.translate_dictionaries or fileio.join(cfg.corpus_dir, "langlinks.tsv"))

  def build(p, staging):
    records = (p | "Files" >> beam.Create(files)
               | "Read" >> beam.FlatMap(dofns.read_translate_input)
               | "Reshuffle" >> beam.Reshuffle())
    translated = (records | "Batch" >> beam.BatchElements(
        min_batch_size=1, max_batch_size=cfg.translate_batch_size)
                  | "Translate" >> beam.ParDo(dofns.TranslateDoFn(cfg)).with_outputs(
                      dofns.DROPPED_TAG, main="records"))
    beam_util.write_by_lang(translated.records, staging, f"{prefix}.{{lang}}.jsonl", cfg.langs,
                            cfg.num_shards, "Translated")
    beam_util.count(translated.records, lambda r: r["lang"], staging, "records")
    beam_util.count(translated.records | "Targets" >> beam.FlatMap(lambda r: list(r["translations"])),
                    lambda l: l, staging, "translations")
    beam_util.count(translated[dofns.DROPPED_TAG], lambda reason: reason, staging, "dropped")
  return beam_util.run_stage(
      cfg, cfg.translate_output, inputs,
      cfg.stage_config("translate_input", "translate_fields", "translation_langs",
                       "translate_backend", *_TRANSLATION_ENGINE[cfg.translate_backend]),
      build,
      manifest.ExpectedRecords(("records",), pattern,
                               "the files hold no records (SynthConfig.translate_input)"))


def run_entity_augment(cfg: config_lib.SynthConfig) -> dict[str, Any]:
  """The translate stage's input records -> the same records with ``translations``:
  {L': {"question": the question with its linked-article titles in L'}} (or {} when kept),
  written to ``<entity_augment_output>/<prefix>.<lang>.jsonl-SSSSS-of-NNNNN`` by record lang
  (synth/entity_augmentation.py). The WikiMap is the linked_paragraphs stage's topic groups.

  Counts per record language: ``records``, ``augmented``, ``no_entity`` (no title found) and
  ``no_target_lang`` (titles with no other translation_langs title). Not part of ``all``.
  """
  paragraphs_dir = _require(cfg, "linked_paragraphs", "entity_augment")
  pattern, files, prefix = _translate_inputs(cfg, "entity_augment")

  def build(p, staging):
    records = (p | "Files" >> beam.Create(files)
               | "Read" >> beam.FlatMap(dofns.read_translate_input)
               | "Reshuffle" >> beam.Reshuffle())
    out = records | "Augment" >> beam.ParDo(dofns.EntityAugmentDoFn(
        cfg, fileio.join(paragraphs_dir, "paragraphs.jsonl-*"))).with_outputs(
            dofns.EntityAugmentDoFn.OUTCOME_TAG, main="records")
    beam_util.write_by_lang(out.records, staging, f"{prefix}.{{lang}}.jsonl", cfg.langs,
                            cfg.num_shards, "Augmented")
    beam_util.count(out.records, lambda r: r["lang"], staging, "records")
    outcomes = out[dofns.EntityAugmentDoFn.OUTCOME_TAG]
    for name in (entity_augmentation.AUGMENTED, entity_augmentation.NO_ENTITY,
                 entity_augmentation.NO_TARGET_LANG):
      beam_util.count(outcomes | f"Keep.{name}" >> beam.Filter(lambda o, n=name: o[1] == n),
                      lambda o: o[0], staging, name)
  return beam_util.run_stage(
      cfg, cfg.entity_augment_output, [paragraphs_dir, *files],
      cfg.stage_config("translate_input", "translation_langs", "entity_augment_seed", "langs"),
      build,
      manifest.ExpectedRecords(("records",), pattern,
                               "the files hold no records (SynthConfig.translate_input)"))


_QAGEN_FIELDS = ("passage_words", "qagen_backend", "qagen_max_tokens", "qagen_splits",
                 "qagen_positive")


def run_qagen(cfg: config_lib.SynthConfig) -> dict[str, Any]:
  """English articles -> generated (question, answer, positive passage) pairs (peer-methods.md
  2.5.1-2.5.2, 2.5.4; synth/qagen.py)."""
  passages_dir = _require(cfg, "passages", "qagen")
  fields = _QAGEN_FIELDS + (("http",) if cfg.qagen_backend == "http" else ())

  def build(p, staging):
    articles = (beam_util.read_articles(p, cfg)
                | "English" >> beam.Filter(lambda a: a.lang == "en"))
    persons = articles | "Persons" >> beam.FlatMap(qagen.person_title)
    pairs = articles | "Generate" >> beam.ParDo(
        dofns.QaGenDoFn(cfg), persons=beam.pvalue.AsList(persons)).with_outputs(
            dofns.DROPPED_TAG, main="pairs")
    (pairs.pairs | "Json" >> beam.Map(lambda r: json.dumps(r, ensure_ascii=False))
     | "Write" >> beam_io.WriteLines(fileio.join(staging, "pairs.jsonl"), cfg.num_shards))
    beam_util.count(pairs.pairs, lambda r: "en", staging, "pairs")
    beam_util.count(pairs[dofns.DROPPED_TAG], lambda reason: reason, staging, "dropped")
    beam_util.count(articles, lambda a: a.lang, staging, "articles")
  return beam_util.run_stage(
      cfg, "qagen", [passages_dir, fileio.join(cfg.corpus_dir, "articles", "en")],
      cfg.stage_config(*fields), build,
      manifest.ExpectedRecords(("pairs",), fileio.join(cfg.corpus_dir, "articles", "en"),
                               f"no English article gave a QA pair ({cfg.qagen_backend} backend)"))


def run_qa_filter(cfg: config_lib.SynthConfig) -> dict[str, Any]:
  """Pairs -> answer-type filter (counts per rule under "types") -> AUG-QA records, one per
  language of SynthConfig.langs with its own answer-free negatives (peer-methods.md 2.5.3-4)."""
  qagen_dir = _require(cfg, "qagen", "qa_filter")
  passages_dir = _require(cfg, "passages", "qa_filter")

  def build(p, staging):
    pairs = beam_io.read_jsonl(p, fileio.join(qagen_dir, "pairs.jsonl-*"), "Pairs")
    out = pairs | "Filter" >> beam.ParDo(dofns.AnswerTypeFilterDoFn(
        cfg, fileio.join(passages_dir, "psgs_w100.tsv"))).with_outputs(
            dofns.AnswerTypeFilterDoFn.TYPES_TAG, main="records")
    beam_util.write_by_lang(out.records, staging, "aug_qa.{lang}.jsonl", cfg.langs,
                            cfg.num_shards, "AugQa")
    beam_util.count(out.records, lambda r: r["lang"], staging, "records")
    beam_util.count(out[dofns.AnswerTypeFilterDoFn.TYPES_TAG], lambda t: t, staging, "types")
    if cfg.qagen_positive == "window":
      (pairs | "WindowRow" >> beam.Map(lambda r: passages_lib.tsv_row(
           {"id": r["positive"]["pid"], "text": r["positive"]["text"],
            "title": r["positive"]["title"]}))
       | "OneWindow" >> beam.Distinct()
       | "WriteWindows" >> beam_io.WriteLines(fileio.join(staging, "positive_windows.tsv"),
                                              sharded=False, header="id\ttext\ttitle"))
  return beam_util.run_stage(
      cfg, "aug_qa", [qagen_dir, passages_dir],
      cfg.stage_config("langs", "answer_filter_mode", "qagen_negatives", "qagen_positive"), build,
      manifest.ExpectedRecords(("records",), qagen_dir,
                               "no generated pair passed the answer-type filter "
                               f"(SynthConfig.answer_filter_mode = {cfg.answer_filter_mode!r})"))


RUNNERS = {"passages": run_passages, "anchors": run_anchors, "parallel": run_parallel,
           "teacher": run_teacher, "qa": run_qa, "questions": run_questions,
           "linked_paragraphs": run_linked_paragraphs, "translate": run_translate,
           "entity_augment": run_entity_augment,
           "qagen": run_qagen, "qa_filter": run_qa_filter}


def run_all(cfg: config_lib.SynthConfig) -> dict[str, dict[str, Any]]:
  """Every stage in order (each skipped when already complete)."""
  return {stage: RUNNERS[stage](cfg) for stage in STAGES}


def summary(results: dict[str, dict[str, Any]]) -> str:
  lines = []
  for stage, m in results.items():
    state = "skipped (complete)" if m.get("skipped") else f"done in {m.get('seconds', 0)}s"
    lines.append(f"{stage}: {state}; counts {json.dumps(m.get('counts', {}), ensure_ascii=False)}")
  return "\n".join(lines)
