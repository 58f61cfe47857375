"""The embedded mini corpus and its generator (clqa_jax.miniwiki): real formats, each language in
its own script, deterministic growth, name morphology and transliteration;
the wikiextractor and interlanguage-link readers with typed errors."""
import filecmp
import json
import os

import pytest

from clqa_jax.data import readers
from clqa_jax.data import wikipedia
from clqa_jax.data.errors import DataFormatError
from clqa_jax.miniwiki import generate
from clqa_jax.miniwiki import kb
from clqa_jax.miniwiki import morphology
from clqa_jax.miniwiki import names
from clqa_jax.synth import config as config_lib
from clqa_jax.synth import scripts

MINI = config_lib.MINIWIKI_DIR


def _articles(lang, root=MINI):
  out = []
  for f in wikipedia.article_files(os.path.join(root, "articles", lang)):
    out += list(wikipedia.read_articles(f, lang))
  return out


def test_committed_corpus_is_what_the_generator_writes(tmp_path):
  generate.generate_corpus(str(tmp_path), num_synthetic=60)
  cmp = filecmp.dircmp(MINI, str(tmp_path))
  def same(d):
    assert not d.left_only and not d.right_only and not d.diff_files, (d.left, d.diff_files, d.left_only)
    for sub in d.subdirs.values():
      same(sub)
  same(cmp)
  assert sum(os.path.getsize(os.path.join(r, n)) for r, _, ns in os.walk(MINI) for n in ns) < 3_000_000


@pytest.mark.parametrize("lang", kb.LANGS)
def test_each_language_is_written_in_its_script(lang):
  arts = _articles(lang)
  assert len(arts) >= 70
  text = " ".join(a.text for a in arts)
  assert scripts.script_fraction(text, lang) > 0.97
  assert sum(len(a.links) for a in arts) > 100
  titles = {a.title for a in arts}
  # Links point at articles of the same Wikipedia (a few red links to missing articles).
  targets = [l.target for a in arts for l in a.links]
  assert sum(t in titles for t in targets) / len(targets) > 0.8


def test_names_are_written_the_way_each_language_writes_them():
  helsinki = {"en": "Helsinki", "fi": "Helsinki", "ja": "ヘルシンキ", "ko": "헬싱키", "ru": "Хельсинки",
              "ar": "هلسنكي", "bn": "হেলসিঙ্কি", "te": "హెల్సింకి"}
  for lang, name in helsinki.items():
    arts = {a.title: a for a in _articles(lang)}
    assert name in arts
    finland = arts[{"en": "Finland", "fi": "Suomi", "ja": "フィンランド", "ko": "핀란드", "ru": "Финляндия",
                    "ar": "فنلندا", "bn": "ফিনল্যান্ড", "te": "ఫిన్లాండ్"}[lang]]
    link = finland.links[0]
    assert link.target == name and finland.text[link.start:link.end] == name
  fi = {a.title: a for a in _articles("fi")}
  assert "Helsinki on Suomen pääkaupunki ja suurin kaupunki." in fi["Helsinki"].text
  ru = {a.title: a for a in _articles("ru")}
  assert ru["Париж"].text.startswith("Париж — столица и крупнейший город Франции.")


def test_langlinks_and_question_sets():
  links = wikipedia.read_langlinks(os.path.join(MINI, "langlinks.tsv"))
  titles = {lang: {a.title for a in _articles(lang)} for lang in kb.LANGS}
  assert all(l.en_title in titles["en"] and l.title in titles[l.lang] for l in links)
  assert {l.lang for l in links} == set(kb.LANGS) - {"en"}
  for split in ("dev", "train"):
    full = list(readers.read_xor_jsonl(os.path.join(MINI, "xor", f"xor_{split}_full.jsonl")))
    ret = list(readers.read_xor_jsonl(os.path.join(MINI, "xor", f"xor_{split}_retrieve_eng_span.jsonl")))
    assert {q.lang for q in full} == set(generate.XOR_LANGS) and len(full) == len(ret)
    for q, r in zip(full, ret):
      assert q.qid == r.qid and q.question == r.question
      assert scripts.script_fraction(q.question, q.lang) > 0.7
      assert scripts.script_fraction(r.answers[0], "en") == 1.0
  ja = {q.question: q.answers for q in readers.read_xor_jsonl(os.path.join(MINI, "xor", "xor_train_full.jsonl"))
        if q.lang == "ja"} | {q.question: q.answers for q in readers.read_xor_jsonl(
            os.path.join(MINI, "xor", "xor_dev_full.jsonl")) if q.lang == "ja"}
  assert ja["フィンランドの首都はどこですか？"] == ("ヘルシンキ",)


def test_generator_grows_deterministically(tmp_path):
  a = generate.build_entities(2000, seed=3)
  b = generate.build_entities(2000, seed=3)
  assert a == b and len(a) == len(kb.REAL_ENTITIES) + 2000
  for lang in kb.LANGS:
    assert len({e.names[lang] for e in a}) == len(a)
  counts = generate.generate_corpus(str(tmp_path), num_synthetic=300, seed=1)
  assert counts["articles.en"] == len(kb.REAL_ENTITIES) + 300
  assert counts["articles.ja"] > 0.7 * counts["articles.en"]


def test_reader_parses_links_and_reports_bad_input(tmp_path):
  text, links = wikipedia.parse_links('<a href="Han%20River">the Han</a> &amp; <a href="seoul#x">Seoul</a>.')
  assert text == "the Han & Seoul."
  assert links == [wikipedia.Link(0, 7, "Han River"), wikipedia.Link(10, 15, "Seoul")]
  bad = tmp_path / "wiki_00"
  bad.write_text(json.dumps({"id": "1", "title": "A", "text": "x"}) + "\n" + json.dumps({"id": "2", "text": "y"}) + "\n")
  with pytest.raises(DataFormatError, match=r"wiki_00:2: title: missing"):
    list(wikipedia.read_articles(str(bad)))
  bad.write_text("{not json\n")
  with pytest.raises(DataFormatError, match=r"wiki_00:1: <json>: "):
    list(wikipedia.read_articles(str(bad)))
  ll = tmp_path / "langlinks.tsv"
  ll.write_text("en_title\tlang\ttitle\nFinland\tfi\tSuomi\nJapan\tja\n")
  with pytest.raises(DataFormatError, match=r"langlinks.tsv:3: <row>: "):
    wikipedia.read_langlinks(str(ll))
  ll.write_text('{"en_title": "Finland", "lang": "fi", "title": "Suomi"}\n{"en_title": "Japan", "lang": "ja"}\n')
  with pytest.raises(DataFormatError, match=r"langlinks.tsv:2: title: "):
    wikipedia.read_langlinks(str(ll))


def test_morphology_forms():
  assert morphology.korean_particle("헬싱키", "top") == "는"
  assert morphology.korean_particle("서울", "top") == "은"
  assert morphology.finnish_form("Kalora", "loc") == "Kalorassa"
  assert morphology.finnish_form("Temine", "loc") == "Teminessä"
  assert morphology.russian_form("Калора", "gen") == "Калоры"
  assert morphology.inflect("Франция", "ru", "loc", {"ru": {"loc": "во Франции"}}) == ("во ", "Франции", "")
  assert morphology.inflect("Попу", "ru", "on") == ("на ", "Попу", "")
  assert morphology.inflect("Нил", "ru", "on", {"ru": {"loc": "на Ниле"}}) == ("на ", "Ниле", "")
  assert morphology.bengali_suffix("ঢাকা", "loc") == "য়"
  assert morphology.bengali_suffix("জাপান", "gen") == "ের"


def test_transliteration_uses_each_script():
  syl = ["ka", "ti", "lo"]
  assert names.transliterate_syllables(syl, "ja") == "カティロ"
  assert names.transliterate_syllables(syl, "ko") == "카티로"
  assert names.transliterate_syllables(syl, "ru") == "Катило"
  for lang in ("ar", "bn", "ja", "ko", "ru", "te"):
    assert scripts.script_fraction(names.transliterate_syllables(syl, lang), lang) == 1.0


def test_gold_titles_are_the_english_articles_that_state_the_fact():
  rows = [json.loads(l) for l in open(os.path.join(MINI, "xor", "xor_dev_retrieve_eng_span.jsonl"),
                                      encoding="utf-8")]
  gold = {(r["lang"], r["question"]): r["gold_titles"] for r in rows}
  # Both Japan ("The capital of Japan is Tokyo.") and Tokyo ("Tokyo is the capital ... of
  # Japan.") state the fact; the subject's own article comes first.
  assert gold[("fi", "Mikä on Japanin pääkaupunki?")] == ["Japan", "Tokyo"]
  # Cairo's article says he was born there; Egypt's names him and Cairo in separate sentences.
  assert gold[("fi", "Missä Naguib Mahfouz syntyi?")] == ["Naguib Mahfouz", "Cairo"]
  assert gold[("fi", "Minä vuonna Naguib Mahfouz syntyi?")] == ["Naguib Mahfouz"]
  by_title = {a.title: a.text for a in _articles("en")}
  for r in rows:
    for title in r["gold_titles"][1:]:
      assert r["gold_titles"][0] in by_title[title] and r["answers"][0] in by_title[title]
