"""The capstone's entity augmentation (peer-methods.md 1.5): entity spans of a question are
replaced by the same entities' titles in another language, through the WikiMap.

The WikiMap is the interlanguage-link title map of the corpus: {lang: {title: topic}} and
{topic: {lang: title}}, a topic being the English title the links give an article (the
``linked_paragraphs`` stage's topic groups). The source finds the spans with an NER model; we
have none, so here the spans are the linked-article titles a question contains: in a question
of language L, the longest non-overlapping matches of L's titles, each matched the way
``cloze.find_answer`` matches L's words (whole words; attached suffixes in agglutinative
languages; Arabic proclitics; plain substrings without spaces; case-insensitive). This is the
one stated departure from the source.

Per question, the target language L' is drawn uniformly (a seeded numpy Generator) from the
languages other than L that have a title for at least one of its entities (one spelled
otherwise than its L title); every span whose entity has an L' title becomes that title (a span
whose entity has none stays). A question with no span, or whose entities have no other title
in another language, is kept unchanged.
Augmented records have the ``clqa synth translate`` schema (``data/translated_records.py``):
the original stays in ``question``, the augmented question is ``translations[L']["question"]``.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from clqa_jax.synth import cloze
from clqa_jax.synth import translation

AUGMENTED, NO_ENTITY, NO_TARGET_LANG = "augmented", "no_entity", "no_target_lang"


class EntitySpan(NamedTuple):
  start: int
  end: int
  topic: str


class WikiMap:
  """Interlanguage-linked titles: ``topic_of[lang][title]`` and ``titles_of[topic][lang]``.

  Args:
    documents: (topic, lang, title) triples, e.g. the ``linked_paragraphs`` records; empty
      titles are skipped. A (lang, title) under two topics, or a topic with two titles in one
      language, is an error.
  """

  def __init__(self, documents: Iterable[tuple[str, str, str]]):
    self.topic_of: dict[str, dict[str, str]] = {}
    self.titles_of: dict[str, dict[str, str]] = {}
    for topic, lang, title in documents:
      if not title.strip():
        continue
      seen = self.topic_of.setdefault(lang, {}).setdefault(title, topic)
      if seen != topic:
        raise ValueError(f"WikiMap: the {lang} title {title!r} belongs to topics {seen!r} and "
                         f"{topic!r}")
      other = self.titles_of.setdefault(topic, {}).setdefault(lang, title)
      if other != title:
        raise ValueError(f"WikiMap: topic {topic!r} has two {lang} titles, {other!r} and "
                         f"{title!r}")
    # Candidate lookup: lang -> {lowercased title: its titles}, and the title lengths to try.
    self._by_lower: dict[str, dict[str, list[str]]] = {}
    self._lengths: dict[str, list[int]] = {}
    for lang, table in self.topic_of.items():
      index: dict[str, list[str]] = {}
      for title in sorted(table):
        index.setdefault(title.lower(), []).append(title)
      self._by_lower[lang] = index
      self._lengths[lang] = sorted({len(k) for k in index}, reverse=True)

  @classmethod
  def from_paragraphs(cls, paragraphs: Iterable[Any]) -> "WikiMap":
    """From records with ``topic_id``, ``lang``, ``title`` (``topic_groups.LinkedParagraph``)."""
    return cls((p.topic_id, p.lang, p.title) for p in paragraphs)

  def candidate_titles(self, text: str, lang: str) -> list[str]:
    """The titles of ``lang`` whose lowercased form occurs in the lowercased ``text``."""
    index, found = self._by_lower.get(lang, {}), set()
    for n in self._lengths.get(lang, ()):
      for i in range(len(text) - n + 1):
        found.update(index.get(text[i:i + n].lower(), ()))
    return sorted(found)


def find_entity_spans(text: str, lang: str, wikimap: WikiMap) -> list[EntitySpan]:
  """The entity spans of ``text`` (of language ``lang``), in text order: the longest
  non-overlapping matches of ``lang``'s titles (a longer match wins over every shorter one it
  overlaps; ties go to the earlier start)."""
  matches = []
  for title in wikimap.candidate_titles(text, lang):
    topic = wikimap.topic_of[lang][title]
    matches += [EntitySpan(s, e, topic) for s, e in cloze.find_answer(text, title, lang)]
  chosen: list[EntitySpan] = []
  for m in sorted(matches, key=lambda m: (m.start - m.end, m.start, m.topic)):
    if all(m.end <= c.start or c.end <= m.start for c in chosen):
      chosen.append(m)
  return sorted(chosen)


def target_languages(spans: Sequence[EntitySpan], lang: str, wikimap: WikiMap,
                     langs: Sequence[str]) -> list[str]:
  """The languages of ``langs`` other than ``lang`` with a title for at least one span's
  entity that differs from its ``lang`` title (a swap to the same spelling changes nothing)."""
  have = {l for s in spans for l, title in wikimap.titles_of[s.topic].items()
          if title != wikimap.titles_of[s.topic][lang]}
  return sorted(l for l in set(langs) & have if l != lang)


def replace_spans(text: str, spans: Sequence[EntitySpan], target_lang: str,
                  wikimap: WikiMap) -> str:
  """``text`` with every span whose entity has a ``target_lang`` title replaced by that title."""
  out, pos = [], 0
  for span in spans:
    title = wikimap.titles_of[span.topic].get(target_lang)
    if title is not None:
      out += [text[pos:span.start], title]
      pos = span.end
  out.append(text[pos:])
  return "".join(out)


@dataclasses.dataclass(frozen=True)
class Augmentation:
  """One question's outcome: ``target_lang`` None when it is kept (``outcome`` says why)."""
  question: str
  target_lang: str | None
  spans: tuple[EntitySpan, ...]
  outcome: str


def augment_question(question: str, lang: str, wikimap: WikiMap, langs: Sequence[str],
                     rng: np.random.Generator) -> Augmentation:
  """The question with its entities in a target language drawn uniformly from
  ``target_languages`` (one ``rng`` draw when there is a choice to make)."""
  spans = tuple(find_entity_spans(question, lang, wikimap))
  if not spans:
    return Augmentation(question, None, spans, NO_ENTITY)
  targets = target_languages(spans, lang, wikimap, langs)
  if not targets:
    return Augmentation(question, None, spans, NO_TARGET_LANG)
  target = targets[int(rng.integers(len(targets)))]
  return Augmentation(replace_spans(question, spans, target, wikimap), target, spans, AUGMENTED)


def record_rng(seed: int, record: Mapping[str, Any]) -> np.random.Generator:
  """A Generator of ``seed`` and the record's id, language and question: the same draw for a
  record whatever order or batch a pipeline gives it."""
  key = "\t".join(str(record.get(f, "")) for f in ("id", "qid", "lang", "question"))
  digest = hashlib.sha256(key.encode("utf-8")).digest()
  return np.random.default_rng([seed, *np.frombuffer(digest[:16], dtype=np.uint32).tolist()])


def augment_record(record: Mapping[str, Any], wikimap: WikiMap, langs: Sequence[str],
                   seed: int) -> tuple[dict[str, Any], str]:
  """(the record with ``translations``: {L': {"question": augmented}}, or {} when kept; its
  outcome: ``AUGMENTED``, ``NO_ENTITY`` or ``NO_TARGET_LANG``)."""
  aug = augment_question(record["question"], record["lang"], wikimap, langs,
                         record_rng(seed, record))
  translations = {} if aug.target_lang is None else {aug.target_lang: {"question": aug.question}}
  return {**record, translation.TRANSLATIONS: translations}, aug.outcome
