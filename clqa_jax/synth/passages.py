"""Articles -> 100-word passages with stable ids, and sentences with their source passage.

Passage ids are `<lang>_<article id>_<k>` (k = passage index in the article): stable across runs,
unique across languages, and free of '-' so that qids `lang-<source_pid>-<n>` split cleanly.
A passage is the original text between its first and last unit (whitespace collapsed).
"""
from __future__ import annotations

import csv
import io
from typing import Any

from clqa_jax.data import readers
from clqa_jax.data import wikipedia
from clqa_jax.synth import scripts
from clqa_jax.synth import textseg


def pid_for(lang: str, article_id: str, k: int) -> str:
  return f"{lang}_{article_id}_{k}"


def passage_spans(text: str, lang: str, words: int = 100, chars: int = 180) -> list[tuple[int, int]]:
  """(start, end) character spans of consecutive passages of `words` units (`chars` units where
  the language has no spaces)."""
  units = textseg.word_units(text, lang)
  n = chars if lang in scripts.NO_SPACE_LANGS else words
  return [(units[i][0], units[min(i + n, len(units)) - 1][1]) for i in range(0, len(units), n)]


def article_passages(article: wikipedia.Article, words: int = 100,
                     chars: int = 180) -> list[dict[str, str]]:
  """Passages `{"id", "text", "title", "lang"}` of one article, in order."""
  out = []
  for k, (s, e) in enumerate(passage_spans(article.text, article.lang, words, chars)):
    out.append({"id": pid_for(article.lang, article.id, k), "text": " ".join(article.text[s:e].split()),
                "title": article.title, "lang": article.lang})
  return out


def tsv_row(passage: dict[str, str]) -> str:
  """One DPR TSV row `id \\t text \\t title` (csv quoting, as DPR's files)."""
  buf = io.StringIO()
  csv.writer(buf, delimiter="\t", lineterminator="").writerow(
      [passage["id"], passage["text"], passage["title"]])
  return buf.getvalue()


def read_tsv(path: str) -> list[tuple[str, str, str]]:
  """(pid, title, text) rows of a DPR passage TSV (``readers.read_passages_tsv``)."""
  return [(p.pid, p.title, p.text) for p in readers.read_passages_tsv(path)]


def sentence_records(article: wikipedia.Article, en_title: str | None,
                     target_en: dict[str, str], words: int = 100,
                     chars: int = 180) -> list[dict[str, Any]]:
  """Sentences of an article with their anchors and source passage.

  `target_en` maps this language's article titles to English titles (interlanguage links).
  Record: {"lang", "doc_id", "title", "en_title", "sent_idx", "sentence", "source_pid",
  "anchors": [{"start", "end", "text", "target", "target_en"}]} with anchor offsets in the
  sentence. A sentence belongs to the passage its first character falls in.
  """
  spans = passage_spans(article.text, article.lang, words, chars)
  out = []
  k = 0
  for idx, (s, e) in enumerate(textseg.split_sentences(article.text, article.lang)):
    while k + 1 < len(spans) and spans[k + 1][0] <= s:
      k += 1
    anchors = []
    for link in article.links:
      if s <= link.start and link.end <= e:
        tgt_en = link.target if article.lang == "en" else target_en.get(link.target)
        anchors.append({"start": link.start - s, "end": link.end - s,
                        "text": article.text[link.start:link.end], "target": link.target,
                        "target_en": tgt_en})
    out.append({"lang": article.lang, "doc_id": article.id, "title": article.title,
                "en_title": en_title, "sent_idx": idx, "sentence": article.text[s:e],
                "source_pid": pid_for(article.lang, article.id, k), "anchors": anchors})
  return out
