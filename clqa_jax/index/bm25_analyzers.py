"""Per-language BM25 analyzers: text -> index terms, the same function for passages and queries.

The spec (peer-methods §2.6-2.7) leaves the analyzer open; these rules are ours:
* every language: NFKC, lower-case (``str.lower``), then a term is a maximal run of letters,
  digits and combining marks (Unicode categories L*, N*, M*); every other character (spaces,
  punctuation, symbols) separates terms and is dropped. Combining marks stay inside a term, so
  Bengali, Telugu or Hindi words are not cut at their vowel signs (Python's ``\\w`` would cut them).
  No stemming and no stop words (Pyserini's English default has both; we stay language-neutral).
* ja: MeCab (fugashi + unidic-lite, the segmenter of the official metrics, ``eval.segment``)
  first; each MeCab token then goes through the rule above (punctuation tokens vanish).
* zh_cn / zh_hk / zh_tw / th / km: ``eval.segment.char_segment`` first (one term per grapheme of
  unsegmented scripts; no jieba / PyThaiNLP / khmernltk models are shipped), then the rule above.
* every other language (ar, bn, fi, ko, ru, te, en, ...): the rule above on whitespace-delimited
  text; Korean terms are therefore whole eojeol (no morphological split).
"""
from __future__ import annotations

import unicodedata
from typing import Callable

from clqa_jax.eval import segment

Analyzer = Callable[[str], list[str]]


class _SeparatorTable(dict):
  """``str.translate`` table mapping every code point outside L*, N*, M* to a space (memoised)."""

  def __missing__(self, code: int) -> int | None:
    value = code if unicodedata.category(chr(code))[0] in "LNM" else 0x20
    self[code] = value
    return value


_SEPARATORS = _SeparatorTable()


def split_terms(text: str) -> list[str]:
  """NFKC, lower-case, maximal runs of letters/digits/combining marks."""
  return unicodedata.normalize("NFKC", text).lower().translate(_SEPARATORS).split()


def _mecab_terms(text: str) -> list[str]:
  return [term for token in segment.mecab_wakati(text).split(" ") for term in split_terms(token)]


def _grapheme_terms(text: str) -> list[str]:
  return split_terms(segment.char_segment(text))


def analyzer_for(lang: str) -> Analyzer:
  """The analyzer of ``lang`` (a dataset language code: "ja", "zh_cn", "en", ...)."""
  if lang == "ja":
    return _mecab_terms
  if lang in segment.MIA_SEGMENTED_LANGS:
    return _grapheme_terms
  return split_terms


def analyzer_name(lang: str) -> str:
  """How ``lang`` is analyzed, for run manifests."""
  if lang == "ja":
    return f"mecab ({segment.MECAB_DICTIONARY}) + letter/digit/mark runs, lower-cased"
  if lang in segment.MIA_SEGMENTED_LANGS:
    return "graphemes of unsegmented scripts + letter/digit/mark runs, lower-cased"
  return "NFKC, lower-cased letter/digit/mark runs"
