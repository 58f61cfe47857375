"""Registers every SeqIO task and mixture of clqa-jax (the only place that does).

Tasks, one per (dataset, language); features: qid, lang, question [<=50, no EOS],
answer [<=50, EOS], answers (all golds, strings), source_pid, *_pretokenized strings; stage 1
adds question_en [<=50] (the English cloze query), teacher_pids and teacher_scores.

  clqa.clr_pt.<lang>                   stage-1 parallel cloze (stage1/clr_pt.<lang>.jsonl-*)
  clqa.teacher_en                      the demo teacher's queries: stage-1 records plus English
                                       questions (teacher_en/clr_pt.jsonl-*)
  clqa.clr_pt_code_switched.<lang>     the same records, the parallel query replaced by the
                                       code-switched English query (gin
                                       code_switch_dictionaries: MUSE en-<lang>.txt files)
  clqa.mlqa_pt.xor_retrieve.<lang>     stage-2 synthetic QA, English answers
  clqa.mlqa_pt.xor_full.<lang>         stage-2 synthetic QA, answers in <lang>
  clqa.algorithm1.xor_full.<lang>      the same questions through the capstone's Algorithm 1
                                       (translated/xor_full.<lang>.jsonl-*, clqa synth translate),
                                       plus question_translated (q')
  clqa.entity_augment.xor_full.<lang>  the same draw over entity-augmented questions
                                       (entity_augmented/xor_full.<lang>.jsonl-*,
                                       clqa synth entity_augment)
  clqa.xor_retrieve.<lang>             XOR-Retrieve eng-span, splits train / validation (TFDS)
  clqa.xor_full.<lang>                 XOR-Full, splits train / validation (TFDS)
  clqa.nq.en                           NQ-open (DPR CSV), splits train / validation / test (TFDS)
  clqa.mkqa.<lang>                     MKQA, split test, 26 languages (TFDS)
  clqa.lexa_pt                         LEXA topic groups (linked_paragraphs/paragraphs.jsonl-*):
                                       anchor [L], documents [n, L], langs, topic_id
  clqa.lexa_pt.mined                   the same plus each group's mined negatives [H, L]
                                       (store bound to lexa_hard_negatives.path)

Mixtures (rate(l) ∝ n_l^alpha, alpha = gin ``language_mixing_alpha.alpha``, default 0):
  clqa.clr_pt, clqa.clr_pt_code_switched, clqa.mlqa_pt.xor_retrieve, clqa.mlqa_pt.xor_full, clqa.xor_retrieve,
  clqa.algorithm1.xor_full, clqa.entity_augment.xor_full,
  clqa.xor_full, clqa.mkqa.

Data paths resolve from ``data_root.path`` (default env CLQA_DATA_DIR) and the vocabulary from
``vocabulary_path.path`` (default env CLQA_VOCAB) when a dataset is read, not at import.
"""
from __future__ import annotations

import functools

import seqio

from clqa_jax.data import formats
from clqa_jax.data import mixing
from clqa_jax.data import preprocessors as pp
from clqa_jax.data import sources
from clqa_jax.data import topic_groups
from clqa_jax.data import vocab as vocab_lib
from clqa_jax.data import tfds_builders  # noqa: F401  (registers the clqa TFDS builders)

XOR_LANGUAGES = formats.XOR_LANGUAGES
SYNTH_LANGUAGES = formats.XOR_LANGUAGES
MKQA_LANGUAGES = formats.MKQA_LANGUAGES

VOCABULARY = vocab_lib.task_vocabulary()
QA_FEATURES = {
    "question": seqio.Feature(VOCABULARY, add_eos=False, required=True),
    "answer": seqio.Feature(VOCABULARY, add_eos=True, required=True),
}
STAGE1_FEATURES = {**QA_FEATURES, "question_en": seqio.Feature(VOCABULARY, add_eos=False)}

_QA_PREPROCESSORS_TAIL = (
    pp.filter_answerable,
    pp.format_question,
    pp.tokenize_questions,
    seqio.CacheDatasetPlaceholder(),
    pp.select_answer,
    pp.tokenize_answer,
)

TASK_FAMILIES: dict[str, list[str]] = {}


def _add_task(family: str, name: str, source, preprocessors, output_features) -> None:
  TASK_FAMILIES.setdefault(family, []).append(name)
  if name in seqio.TaskRegistry.names():
    return
  seqio.TaskRegistry.add(name, source=source, preprocessors=list(preprocessors),
                         output_features=output_features)


def _add_mixture(name: str, tasks: list[str], split: str) -> None:
  if name in seqio.MixtureRegistry.names():
    return
  rate = mixing.LanguageRate(split=split)
  seqio.MixtureRegistry.add(name, [(t, rate) for t in tasks])


# Stage 1 (CLR-PT).
_STAGE1_PREPROCESSORS = (pp.filter_answerable, pp.format_parallel_questions,
                         pp.tokenize_questions, seqio.CacheDatasetPlaceholder(),
                         pp.select_answer, pp.tokenize_answer)
for _lang in SYNTH_LANGUAGES:
  _add_task(
      "clr_pt", f"clqa.clr_pt.{_lang}",
      sources.JsonlShardsDataSource({"train": f"stage1/clr_pt.{_lang}.jsonl-*-of-*"},
                                    kind="stage1"),
      _STAGE1_PREPROCESSORS, STAGE1_FEATURES)

# The demo's stand-in teacher: the stage-1 records plus English questions for their clozes
# (clqa_jax/miniwiki/teacher_questions.py; English queries only, so no language mixture).
_add_task(
    "teacher_en", "clqa.teacher_en",
    sources.JsonlShardsDataSource({"train": "teacher_en/clr_pt.jsonl-*-of-*"}, kind="stage1"),
    _STAGE1_PREPROCESSORS, STAGE1_FEATURES)

# Stage 1 with code-switched queries instead of the parallel ones (the official augmentation
# when parallel queries are off): drawn after the cache, so anew every epoch.
for _lang in SYNTH_LANGUAGES:
  _add_task(
      "clr_pt_code_switched", f"clqa.clr_pt_code_switched.{_lang}",
      sources.JsonlShardsDataSource({"train": f"stage1/clr_pt.{_lang}.jsonl-*-of-*"},
                                    kind="stage1"),
      [pp.filter_answerable, pp.format_parallel_questions, pp.tokenize_questions,
       seqio.CacheDatasetPlaceholder(), pp.code_switch_question,
       functools.partial(pp.tokenize_questions, features=("question",)), pp.select_answer,
       pp.tokenize_answer],
      STAGE1_FEATURES)

# Stage 2 (MLQA-PT), both variants.
for _variant in ("xor_retrieve", "xor_full"):
  for _lang in SYNTH_LANGUAGES:
    _add_task(
        f"mlqa_pt.{_variant}", f"clqa.mlqa_pt.{_variant}.{_lang}",
        sources.JsonlShardsDataSource({"train": f"stage2/{_variant}.{_lang}.jsonl-*-of-*"},
                                      kind="stage2"),
        _QA_PREPROCESSORS_TAIL, QA_FEATURES)

# XOR-TyDi (TFDS over the official JSONL files in <data_root>/xor).
for _variant, _config in (("xor_retrieve", "retrieve"), ("xor_full", "full")):
  for _lang in XOR_LANGUAGES:
    _add_task(
        _variant, f"clqa.{_variant}.{_lang}",
        sources.RootTfdsDataSource(f"clqa_xor_tydi/{_config}:1.1.0", "xor",
                                   {"train": "train", "validation": "validation"}, lang=_lang),
        [pp.select_qa_fields, functools.partial(pp.filter_by_lang, lang=_lang),
         *_QA_PREPROCESSORS_TAIL],
        QA_FEATURES)

# NQ-open (DPR CSV in <data_root>/nq).
_add_task(
    "nq", "clqa.nq.en",
    sources.RootTfdsDataSource("clqa_nq_open:1.0.0", "nq",
                               {"train": "train", "validation": "validation", "test": "test"}),
    [pp.select_qa_fields, *_QA_PREPROCESSORS_TAIL], QA_FEATURES)

# MKQA (raw mkqa.jsonl.gz in <data_root>/mkqa), unanswerable questions dropped.
for _lang in MKQA_LANGUAGES:
  _add_task(
      "mkqa", f"clqa.mkqa.{_lang}",
      sources.RootTfdsDataSource("clqa_mkqa:1.0.0", "mkqa", {"test": _lang}),
      [pp.select_qa_fields, *_QA_PREPROCESSORS_TAIL], QA_FEATURES)

# The capstone's Algorithm 1 (reader version) over `clqa synth translate` records of the stage-2
# XOR-Full questions (question and answers translated): drawn after the cache, anew every epoch;
# question_translated is q' (a translation of the question) for the JSD objective. The entity
# augmentation (`clqa synth entity_augment`: titles swapped into one other language) is the
# same draw over its records, whose answers stay the originals.
ALGORITHM1_FEATURES = {**QA_FEATURES,
                       "question_translated": seqio.Feature(VOCABULARY, add_eos=False)}
for _family, _stage_dir in (("algorithm1.xor_full", "translated"),
                            ("entity_augment.xor_full", "entity_augmented")):
  for _lang in SYNTH_LANGUAGES:
    _add_task(
        _family, f"clqa.{_family}.{_lang}",
        sources.JsonlShardsDataSource({"train": f"{_stage_dir}/xor_full.{_lang}.jsonl-*-of-*"},
                                      kind="translated"),
        [pp.filter_answerable, seqio.CacheDatasetPlaceholder(),
         functools.partial(pp.algorithm1_translate, swap_answers=True), pp.format_question,
         pp.format_translated_question,
         functools.partial(pp.tokenize_questions, features=("question", "question_translated")),
         pp.select_answer, pp.tokenize_answer],
        ALGORITHM1_FEATURES)


# LEXA pre-training: one example per topic group (not per language: a group spans languages).
for _name, _mined in (("lexa_pt", False), ("lexa_pt.mined", True)):
  _add_task(_name, f"clqa.{_name}", topic_groups.TopicGroupDataSource(mined=_mined),
            topic_groups.PREPROCESSORS, topic_groups.output_features(VOCABULARY, _mined))


def register_language_mixture(name: str, family: str, languages: list[str] | None = None,
                              split: str = "train") -> str:
  """Registers (once) a mixture over some languages of a task family, e.g. for a subset demo.

  Args:
    name: the mixture name.
    family: a key of TASK_FAMILIES ("clr_pt", "mlqa_pt.xor_full", "xor_retrieve", ...).
    languages: the languages to keep (default: all of the family).
    split: the split whose sizes set the rates when alpha > 0.
  """
  names = [t for t in TASK_FAMILIES[family]
           if languages is None or t.rsplit(".", 1)[1] in languages]
  if not names:
    raise ValueError(f"no {family} task for languages {languages}")
  _add_mixture(name, names, split)
  return name


_add_mixture("clqa.clr_pt", TASK_FAMILIES["clr_pt"], "train")
_add_mixture("clqa.clr_pt_code_switched", TASK_FAMILIES["clr_pt_code_switched"], "train")
_add_mixture("clqa.mlqa_pt.xor_retrieve", TASK_FAMILIES["mlqa_pt.xor_retrieve"], "train")
_add_mixture("clqa.mlqa_pt.xor_full", TASK_FAMILIES["mlqa_pt.xor_full"], "train")
_add_mixture("clqa.xor_retrieve", TASK_FAMILIES["xor_retrieve"], "train")
_add_mixture("clqa.algorithm1.xor_full", TASK_FAMILIES["algorithm1.xor_full"], "train")
_add_mixture("clqa.entity_augment.xor_full", TASK_FAMILIES["entity_augment.xor_full"], "train")
_add_mixture("clqa.xor_full", TASK_FAMILIES["xor_full"], "train")
_add_mixture("clqa.mkqa", TASK_FAMILIES["mkqa"], "test")
