"""Word segmentation for languages written without spaces, as the official scripts apply it.

Japanese (XOR-Full, MKQA): the official scripts call ``MeCab.Tagger("-Owakati").parse(text)``.
We run MeCab through ``fugashi`` with the **UniDic-lite 1.0.8** dictionary (``unidic-lite`` on
PyPI, pinned in requirements.txt); the dictionary decides the segmentation, so numbers are
comparable only with a MeCab run on the same dictionary. ``mecab_wakati`` returns MeCab's raw
``-Owakati`` output: every token's surface followed by one space, then ``"\\n"`` (``"\\n"`` alone
for an empty input). MeCab skips ASCII spaces, tabs and newlines between tokens, but other
whitespace characters (U+3000, U+00A0, U+2002, U+2003, U+2009, ...) are tokens of their own and
appear in that output. fugashi's ``parse`` strips the output and splitting it on whitespace would
lose those tokens, so the string is rebuilt from the token surfaces; it matters for the BLEU of
Japanese, whose references are these raw strings.

zh / th / km (the opt-in "MIA-style" MKQA mode): the MIA 2022 shared-task script segments Chinese
with jieba, Thai with PyThaiNLP ``newmm`` and Khmer with khmernltk. Those packages bring tens of MB
of dictionaries or compiled CRF models, so ``char_segment`` is used instead: one token per
grapheme (a base character with its combining marks), while runs of letters/digits from
space-delimited scripts (Latin, digits, ...) stay whole. Scores in this mode are therefore not
comparable with published MIA numbers; they give partial credit where whitespace F1 gives none.
"""
from __future__ import annotations

import functools
import unicodedata

MIA_SEGMENTED_LANGS: frozenset[str] = frozenset({"zh_cn", "zh_hk", "zh_tw", "th", "km"})
MECAB_DICTIONARY = "unidic-lite 1.0.8 (via fugashi 1.5.2)"


@functools.lru_cache(maxsize=1)
def _wakati_tagger():
  import fugashi  # Lazy: only Japanese needs MeCab.
  return fugashi.Tagger("-Owakati")


def mecab_wakati(text: str) -> str:
  """``MeCab.Tagger("-Owakati").parse(text)``: "tok tok tok \\n", whitespace tokens included."""
  # MeCab's wakati writer: each node's surface and one space, then a newline.
  return "".join(node.surface + " " for node in _wakati_tagger().parseToNodeList(text)) + "\n"


def _is_unsegmented_script(ch: str) -> bool:
  """Characters of scripts written without spaces (CJK, Thai, Lao, Khmer, Myanmar, kana)."""
  code = ord(ch)
  return (0x0E00 <= code <= 0x0EFF        # Thai, Lao
          or 0x1000 <= code <= 0x109F     # Myanmar
          or 0x1780 <= code <= 0x17FF     # Khmer
          or 0x19E0 <= code <= 0x19FF     # Khmer symbols
          or 0x2E80 <= code <= 0x9FFF     # CJK radicals, kana, CJK ideographs
          or 0xAC00 <= code <= 0xD7AF     # Hangul syllables
          or 0xF900 <= code <= 0xFAFF     # CJK compatibility ideographs
          or 0xFF00 <= code <= 0xFFEF     # half/full-width forms
          or 0x20000 <= code <= 0x3FFFF)  # CJK extensions


def char_segment(text: str) -> str:
  """Space-joined graphemes of unsegmented scripts; other words and punctuation kept as runs.

  A grapheme here is a base character, its combining marks and, after a virama / Khmer coeng, the
  stacked consonant (so Khmer "ភ្នំ" stays one token).
  """
  tokens: list[str] = []
  current = ""  # a run of space-delimited-script characters
  after_virama = False  # Khmer coeng / Indic virama: the next consonant stacks onto the cluster
  for ch in text:
    joins = after_virama or unicodedata.category(ch).startswith("M")
    after_virama = unicodedata.combining(ch) == 9
    if joins and (tokens or current):
      if current:
        current += ch
      else:
        tokens[-1] += ch  # a combining mark joins the grapheme before it
    elif ch.isspace():
      if current:
        tokens.append(current)
        current = ""
    elif _is_unsegmented_script(ch):
      if current:
        tokens.append(current)
        current = ""
      tokens.append(ch)
    else:
      current += ch
  if current:
    tokens.append(current)
  return " ".join(tokens)
