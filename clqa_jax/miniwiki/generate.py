"""Deterministic generator of the mini multilingual encyclopedia (`clqa_jax/resources/miniwiki`).

The knowledge base (`kb.py`) plus any number of synthetic entities (names built from syllables and
transliterated per script) is rendered through per-language templates (`templates.py`) into:

  articles/<lang>/AA/wiki_NN      wikiextractor `--json --links` lines {"id","url","title","text"}
  langlinks.tsv                   interlanguage links: en_title \\t lang \\t title (with a header)
  xor/xor_{dev,train}_retrieve_eng_span.jsonl   XOR-Retrieve style questions, English answers, and
                                                 gold_titles (the English articles that state the
                                                 fact asked: the subject's, then any other with a
                                                 sentence naming both subject and answer)
  xor/xor_{dev,train}_full.jsonl                XOR-Full style questions, answers in the question's language

Usage: `clqa synth generate --out DIR --synthetic_entities N` (the committed corpus uses the
defaults of `generate_corpus`). DIR may be local or gs:// (files go through `clqa_jax.fileio`).
"""
from __future__ import annotations

import hashlib
import json
import random
import re
import urllib.parse

from clqa_jax import fileio
from clqa_jax.data import formats
from clqa_jax.miniwiki import kb
from clqa_jax.miniwiki import morphology
from clqa_jax.miniwiki import names as names_lib
from clqa_jax.miniwiki import templates
from clqa_jax.synth import scripts

XOR_LANGS = formats.XOR_LANGUAGES
_ARTICLES_PER_FILE = 1000
_PLACEHOLDER = re.compile(r"\{(\w+)(?::(\w+))?\}|\[(\w+)(?::(\w+))?\]")


def stable_hash(text: str) -> int:
  return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "big")


def _syllables(rng: random.Random, n: int) -> list[str]:
  return [rng.choice(names_lib.CONSONANTS) + rng.choice(names_lib.VOWELS) for _ in range(n)]


def _synthetic_names(kind: str, rng: random.Random, langs: tuple[str, ...]) -> dict[str, str]:
  """Names of one synthetic entity in every language (rivers and people per language habit)."""
  if kind == "person":
    first, last = _syllables(rng, 2), _syllables(rng, 3)
    names = {}
    for lang in langs:
      f = names_lib.transliterate_syllables(first, lang)
      l = names_lib.transliterate_syllables(last, lang)
      names[lang] = f"{f}・{l}" if lang == "ja" else f"{f} {l}"
    return names
  base = _syllables(rng, rng.choice((2, 3)))
  names = {lang: names_lib.transliterate_syllables(base, lang) for lang in langs}
  if kind == "river":
    affix = {"en": "{} River", "ar": "نهر {}", "bn": "{} নদী", "ja": "{}川", "ko": "{}강", "te": "{} నది"}
    names = {lang: affix.get(lang, "{}").format(n) for lang, n in names.items()}
  return names


def build_entities(num_synthetic: int, seed: int = 0,
                   langs: tuple[str, ...] = kb.LANGS) -> list[kb.Entity]:
  """The real entities plus `num_synthetic` synthetic ones with consistent random facts."""
  rng = random.Random(seed)
  entities = list(kb.REAL_ENTITIES)
  used = {lang: {e.names[lang] for e in entities} for lang in langs}
  n_country = max(1, num_synthetic // 10) if num_synthetic else 0
  n_river = num_synthetic // 10
  n_city = (num_synthetic - n_country - n_river) // 2
  n_person = num_synthetic - n_country - n_river - n_city
  plan = ["country"] * n_country + ["river"] * n_river + ["city"] * n_city + ["person"] * n_person
  countries, rivers, cities = [], [], []
  for i, kind in enumerate(plan):
    for _ in range(100):
      names = _synthetic_names(kind, rng, langs)
      if all(names[lang] not in used[lang] for lang in langs):
        break
    else:
      raise RuntimeError("could not draw unique synthetic names; use fewer entities")
    for lang in langs:
      used[lang].add(names[lang])
    key = f"syn_{kind}_{i}"
    if kind == "country":
      e = kb.Entity(key, kind, names)
      countries.append(e)
    elif kind == "river":
      e = kb.Entity(key, kind, names, country=rng.choice(countries).key,
                    length_km=rng.randrange(80, 4000))
      rivers.append(e)
    elif kind == "city":
      # Round-robin over countries first so every synthetic country has a capital.
      country = countries[len(cities) % len(countries)]
      capital = len(cities) < len(countries)
      river = rng.choice([r for r in rivers if r.country == country.key] or [None])
      river = river.key if river is not None and rng.random() < 0.5 else None
      e = kb.Entity(key, kind, names, country=country.key, capital=capital, river=river)
      cities.append(e)
    else:
      city = rng.choice(cities)
      e = kb.Entity(key, kind, names, country=city.country, born_in=city.key,
                    year=rng.randrange(1800, 1995), profession=rng.choice(sorted(templates.PROFESSIONS)))
    entities.append(e)
  return entities


def _render(template: str, lang: str, subject: kb.Entity, roles: dict[str, kb.Entity],
            values: dict[str, str]) -> str:
  def sub(m: re.Match) -> str:
    if m.group(1):
      name, case = m.group(1), m.group(2)
      if name == "self":
        lead, word, trail = morphology.inflect(subject.names[lang], lang, case, subject.forms)
        return lead + word + trail
      return values[name]
    role, case = m.group(3), m.group(4)
    target = roles[role]
    lead, word, trail = morphology.inflect(target.names[lang], lang, case, target.forms)
    href = urllib.parse.quote(target.names[lang])
    return f'{lead}<a href="{href}">{word}</a>{trail}'
  return _PLACEHOLDER.sub(sub, template)


def build_index(entities: list[kb.Entity]) -> dict[str, dict[str, list[kb.Entity]]]:
  """Related entities by relation and key (capital_of, rivers_of, cities_of, people_of,
  born_in, cities_on), in entity order, so that rendering is linear in the corpus size."""
  index: dict[str, dict[str, list[kb.Entity]]] = {
      k: {} for k in ("capital_of", "rivers_of", "cities_of", "people_of", "born_in", "cities_on")}
  for e in entities:
    if e.kind == "city":
      index["capital_of" if e.capital else "cities_of"].setdefault(e.country, []).append(e)
      if e.river:
        index["cities_on"].setdefault(e.river, []).append(e)
    elif e.kind == "river":
      index["rivers_of"].setdefault(e.country, []).append(e)
    elif e.kind == "person":
      index["people_of"].setdefault(e.country, []).append(e)
      index["born_in"].setdefault(e.born_in, []).append(e)
  return index


def article_sentences(e: kb.Entity, by_key: dict[str, kb.Entity],
                       index: dict[str, dict[str, list[kb.Entity]]]
                       ) -> list[tuple[str, dict[str, kb.Entity], dict[str, str]]]:
  """(sentence kind, roles, values) of one subject's article, in article order."""
  out = []
  synthetic = e.key.startswith("syn_")
  if e.kind == "country":
    capital = index["capital_of"].get(e.key, [])
    if capital:
      out.append(("country_capital", {"capital": capital[0]}, {}))
    for r in index["rivers_of"].get(e.key, [])[:3]:
      out.append(("country_river", {"river": r}, {}))
    for c in index["cities_of"].get(e.key, [])[:3]:
      out.append(("country_city", {"city": c}, {}))
    for p in index["people_of"].get(e.key, [])[:3]:
      out.append(("country_person", {"person": p}, {}))
  elif e.kind == "city":
    country = by_key[e.country]
    out.append(("city_capital" if e.capital else "city_in", {"country": country}, {}))
    if e.river:
      out.append(("city_river", {"river": by_key[e.river]}, {}))
    for p in index["born_in"].get(e.key, [])[:3]:
      out.append(("city_person", {"person": p}, {}))
    if synthetic:
      population = 1000 * (stable_hash(e.key + "pop") % 5000 + 20)
      out.append(("city_population", {}, {"N": str(population)}))
  elif e.kind == "river":
    out.append(("river_in", {"country": by_key[e.country]}, {}))
    out.append(("river_length", {}, {"N": str(e.length_km)}))
    for c in index["cities_on"].get(e.key, [])[:3]:
      out.append(("river_city", {"city": c}, {}))
  elif e.kind == "person":
    out.append(("person_nationality", {"country": by_key[e.country]}, {"YEAR": str(e.year)}))
    out.append(("person_born", {"born_in": by_key[e.born_in]}, {"YEAR": str(e.year)}))
  return out


def _has_article(e: kb.Entity, lang: str, seed: int) -> bool:
  """English has every article; synthetic entities exist in about 3 of 4 other Wikipedias."""
  if lang == "en" or not e.key.startswith("syn_"):
    return True
  return stable_hash(f"{seed}|{e.key}|{lang}") % 4 != 0


def render_article(e: kb.Entity, lang: str, by_key: dict[str, kb.Entity],
                   index: dict[str, dict[str, list[kb.Entity]]], seed: int = 0) -> str:
  """The article text with `<a href>` links; non-English articles drop some later sentences."""
  sentences = []
  for i, (kind, roles, values) in enumerate(article_sentences(e, by_key, index)):
    if lang != "en" and i > 0 and stable_hash(f"{seed}|drop|{e.key}|{lang}|{i}") % 7 == 0:
      continue  # Wikipedias differ: not every fact is in every language.
    sentences.append(render_sentence(e, kind, roles, values, lang))
  return ("" if lang in scripts.NO_SPACE_LANGS else " ").join(sentences)


def render_sentence(e: kb.Entity, kind: str, roles: dict[str, kb.Entity], values: dict[str, str],
                    lang: str) -> str:
  """One sentence of ``e``'s article (an ``article_sentences`` item) in ``lang``, with links."""
  values = {k: names_lib.digits_for(lang, v) for k, v in values.items()}
  if e.profession:
    values["PROF"] = templates.PROFESSIONS[e.profession][lang]
  return _render(templates.SENTENCES[kind][lang], lang, e, roles, values)


def _questions(entities: list[kb.Entity], by_key: dict[str, kb.Entity],
               index: dict[str, dict[str, list[kb.Entity]]]):
  """(question kind, subject, answer entity or None, answer year or None) for every fact."""
  for e in entities:
    if e.kind == "country":
      capital = index["capital_of"].get(e.key, [])
      if capital:
        yield "capital", e, capital[0], None
    elif e.kind == "city":
      yield "city_country", e, by_key[e.country], None
    elif e.kind == "river":
      yield "river_country", e, by_key[e.country], None
    elif e.kind == "person":
      yield "birthplace", e, by_key[e.born_in], None
      yield "birth_year", e, None, str(e.year)


def question_split(kind: str, subject: kb.Entity, seed: int = 0) -> str:
  """'dev' or 'train': the XOR-style split of the question of ``kind`` about ``subject``."""
  return "dev" if stable_hash(f"{seed}|split|{kind}|{subject.key}") % 4 == 0 else "train"


def question_text(kind: str, lang: str, subject: kb.Entity) -> str:
  def sub(m: re.Match) -> str:
    lead, word, trail = morphology.inflect(subject.names[lang], lang, m.group(2), subject.forms)
    return lead + word + trail
  return re.sub(r"\{(x)(?::(\w+))?\}", sub, templates.QUESTIONS[kind][lang])


_TAG = re.compile(r"<[^>]+>")
_SENTENCE_END = re.compile(r"(?<=\.)\s+")


def english_sentences(e: kb.Entity, by_key: dict[str, kb.Entity],
                      index: dict[str, dict[str, list[kb.Entity]]], seed: int = 0) -> list[str]:
  """The plain-text sentences of ``e``'s English article (links removed)."""
  return _SENTENCE_END.split(_TAG.sub("", render_article(e, "en", by_key, index, seed)))


def evidence_titles(subject: kb.Entity, answer: str,
                    sentences: dict[str, list[str]]) -> list[str]:
  """English titles of the articles stating (subject, answer): the subject's own article,
  then every other article with one sentence naming both (``sentences``: title -> sentences).
  "The capital of Japan is Tokyo." and "Tokyo is the capital and largest city of Japan." both
  answer "What is the capital of Japan?", so both articles are gold passages; a sentence
  naming only one of them ("Akira Kurosawa was born in Tokyo.") is not evidence."""
  own = subject.names["en"]
  return [own] + [title for title, ss in sentences.items() if title != own
                  and any(own in s and answer in s for s in ss)]


def _write_lines(path: str, lines: list[str]) -> None:
  fileio.atomic_write(path, "".join(line + "\n" for line in lines))


def generate_corpus(out_dir: str, num_synthetic: int = 60, seed: int = 0,
                    langs: tuple[str, ...] = kb.LANGS) -> dict[str, int]:
  """Writes the corpus under `out_dir`; returns counts (articles per language, questions)."""
  if "en" not in langs:
    raise ValueError("the corpus needs English (the pivot of interlanguage links)")
  entities = build_entities(num_synthetic, seed, langs)
  by_key = {e.key: e for e in entities}
  index = build_index(entities)
  counts: dict[str, int] = {}
  for li, lang in enumerate(langs):
    lines = []
    for ei, e in enumerate(entities):
      if not _has_article(e, lang, seed):
        continue
      doc_id = str(100000 * (li + 1) + ei)
      lines.append(json.dumps({
          "id": doc_id, "url": f"https://{lang}.wikipedia.org/wiki?curid={doc_id}",
          "title": e.names[lang], "text": render_article(e, lang, by_key, index, seed)},
          ensure_ascii=False))
    counts[f"articles.{lang}"] = len(lines)
    for f, part in enumerate(range(0, max(1, len(lines)), _ARTICLES_PER_FILE)):
      d = f // 100  # wikiextractor layout: AA/wiki_00 .. AA/wiki_99, AB/wiki_00, ...
      subdir = chr(ord("A") + d // 26) + chr(ord("A") + d % 26)
      _write_lines(fileio.join(out_dir, "articles", lang, subdir, f"wiki_{f % 100:02d}"),
                    lines[part:part + _ARTICLES_PER_FILE])
  links = ["en_title\tlang\ttitle"]
  for e in entities:
    for lang in langs:
      if lang != "en" and _has_article(e, lang, seed):
        links.append(f"{e.names['en']}\t{lang}\t{e.names[lang]}")
  _write_lines(fileio.join(out_dir, "langlinks.tsv"), links)
  counts["langlinks"] = len(links) - 1
  rows: dict[tuple[str, str], list[str]] = {}
  sentences = {e.names["en"]: english_sentences(e, by_key, index, seed) for e in entities}
  for kind, subject, answer, year in _questions(entities, by_key, index):
    split = question_split(kind, subject, seed)
    for lang in (l for l in XOR_LANGS if l in langs):
      qid = f"{stable_hash(f'{seed}|{kind}|{subject.key}|{lang}'):016x}"
      question = question_text(kind, lang, subject)
      en_answer = answer.names["en"] if answer else year
      full_answer = answer.names[lang] if answer else names_lib.digits_for(lang, year)
      for variant, ans in (("retrieve_eng_span", en_answer), ("full", full_answer)):
        record = {"id": qid, "lang": lang, "question": question, "answers": [ans]}
        if variant == "retrieve_eng_span":
          # The English articles stating the fact: passage recall's gold (eval/passage_recall).
          record["gold_titles"] = evidence_titles(subject, en_answer, sentences)
        rows.setdefault((split, variant), []).append(json.dumps(record, ensure_ascii=False))
  for (split, variant), lines in sorted(rows.items()):
    _write_lines(fileio.join(out_dir, "xor", f"xor_{split}_{variant}.jsonl"), lines)
    counts[f"xor_{split}_{variant}"] = len(lines)
  return counts
