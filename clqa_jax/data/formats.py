"""Format constants shared by data, synth, eval and the CLI (no TensorFlow, no I/O).

One place for what the model sees and what the dataset files look like:
  the language lists of XOR-TyDi and MKQA,
  the query template ``question: {q}`` and the passage template ``title: {t} context: {p}``,
  the DPR passage TSV header.
"""
from __future__ import annotations

# XOR-TyDi QA's seven languages, in the official evaluation order; also the synthetic-data
# target languages.
XOR_LANGUAGES = ("ar", "bn", "fi", "ja", "ko", "ru", "te")

# MKQA's 26 languages in the official order (apple/ml-mkqa mkqa_eval.py MKQA_LANGUAGES).
MKQA_LANGUAGES = ("ar", "da", "de", "en", "es", "fi", "fr", "he", "hu", "it", "ja", "km", "ko",
                  "ms", "nl", "no", "pl", "pt", "ru", "sv", "th", "tr", "vi", "zh_cn", "zh_hk",
                  "zh_tw")
# The same 26 in the order of CLASS's eval_mkqa_all.py ("en" is listed twice there; once here):
# the order `clqa metrics mkqa` reports languages in.
MKQA_EVAL_ORDER = ("tr", "hu", "zh_hk", "nl", "ms", "zh_cn", "ja", "de", "ru", "pl", "fi", "pt",
                   "km", "it", "fr", "he", "vi", "zh_tw", "no", "da", "th", "sv", "es", "ar", "en",
                   "ko")

# The query template (no EOS); non-English questions are normalised before it is applied.
QUESTION_PREFIX = "question: "
# The passage template (+ EOS) of the retriever and the reader.
PASSAGE_TEMPLATE = "title: {title} context: {text}"

# The DPR passage TSV header (psgs_w100.tsv, all_w100.tsv).
PASSAGE_TSV_HEADER = ("id", "text", "title")


def question_text(question: str) -> str:
  """The query string of an (already normalised) question: ``question: {q}``."""
  return QUESTION_PREFIX + question


def passage_text(title: str, text: str) -> str:
  """The passage string: ``title: {t} context: {p}``."""
  return PASSAGE_TEMPLATE.format(title=title, text=text)
