"""Cloze construction, answer masking per language (Japanese included), segmentation, filters."""
import pytest

from clqa_jax.synth import cloze
from clqa_jax.synth import filters
from clqa_jax.synth import passages
from clqa_jax.synth import textseg
from clqa_jax.data import wikipedia


def test_make_cloze_replaces_the_span():
  s = "The capital of Finland is Helsinki."
  assert cloze.make_cloze(s, 26, 34) == "The capital of Finland is _X_."
  with pytest.raises(ValueError):
    cloze.make_cloze(s, 30, 99)


@pytest.mark.parametrize("lang,text,answer,expected", [
    # Japanese: no spaces, the answer is found inside a run of characters.
    ("ja", "フィンランドの首都はヘルシンキである。", "ヘルシンキ", "フィンランドの首都は_X_である。"),
    ("ja", "東京都は日本の首都である。", "東京", "_X_都は日本の首都である。"),
    # English: whole words only.
    ("en", "Parisian cafes are in Paris.", "Paris", "Parisian cafes are in _X_."),
    ("en", "Linus Torvalds was born in Helsinki.", "linus torvalds", "_X_ was born in Helsinki."),
    # Korean and Finnish: suffixes (particles, case endings) stay attached after the mask.
    ("ko", "헬싱키는 핀란드의 수도이다.", "헬싱키", "_X_는 핀란드의 수도이다."),
    ("fi", "Helsinki sijaitsee Suomessa.", "Suomi", "Helsinki sijaitsee Suomessa."),
    ("fi", "Tove Jansson syntyi Helsingissä, Helsinki on kaupunki.", "Helsinki", "Tove Jansson syntyi Helsingissä, _X_ on kaupunki."),
    ("fi", "Monet asui Pariisissa ja Pariisi oli hänen kotinsa.", "Pariisi", "Monet asui _X_ssa ja _X_ oli hänen kotinsa."),
    # Arabic: proclitics (و، ب، ل، ال) may be attached before the answer.
    ("ar", "ولد في القاهرة وبالقاهرة عاش.", "القاهرة", "ولد في _X_ وب_X_ عاش."),
    # Russian: whole words (an inflected form is a different word).
    ("ru", "Хельсинки — столица Финляндии.", "Финляндия", "Хельсинки — столица Финляндии."),
    ("ru", "Столица — Москва, Москвы нет.", "Москва", "Столица — _X_, Москвы нет."),
    # Telugu and Bengali: suffixing, the postposition stays.
    ("te", "అతడు హెల్సింకిలో జన్మించాడు.", "హెల్సింకి", "అతడు _X_లో జన్మించాడు."),
    ("bn", "ঢাকার জনসংখ্যা অনেক।", "ঢাকা", "_X_র জনসংখ্যা অনেক।"),
])
def test_mask_answer_per_language(lang, text, answer, expected):
  masked, _ = cloze.mask_answer(text, answer, lang)
  assert masked == expected


def test_mask_answer_with_an_aligned_anchor_span():
  text = "Suomen pääkaupunki on Helsinki."
  masked, n = cloze.mask_answer(text, "Finland", "fi", extra_spans=[(0, 6)])
  assert masked == "_X_ pääkaupunki on Helsinki." and n == 1


def test_sentences_split_per_language_and_not_on_abbreviations():
  fi = "Mika Waltari (s. 1908) on kirjailija. Hän syntyi Helsingissä."
  assert [fi[s:e] for s, e in textseg.split_sentences(fi, "fi")] == [
      "Mika Waltari (s. 1908) on kirjailija.", "Hän syntyi Helsingissä."]
  ja = "東京は日本の首都である。大阪は都市である。"
  assert [ja[s:e] for s, e in textseg.split_sentences(ja, "ja")] == ["東京は日本の首都である。", "大阪は都市である。"]
  bn = "ঢাকা বাংলাদেশের রাজধানী। এটি বড় শহর।"
  assert len(textseg.split_sentences(bn, "bn")) == 2


def test_passages_count_words_or_characters():
  en = wikipedia.Article("7", "", "T", " ".join(f"w{i}" for i in range(250)), (), "en")
  ps = passages.article_passages(en, words=100)
  assert [len(p["text"].split()) for p in ps] == [100, 100, 50]
  assert [p["id"] for p in ps] == ["en_7_0", "en_7_1", "en_7_2"]
  ja = wikipedia.Article("8", "", "T", "あ" * 250, (), "ja")
  assert [len(p["text"]) for p in passages.article_passages(ja, chars=100)] == [100, 100, 50]
  row = passages.tsv_row({"id": "en_7_0", "text": 'say "hi"\tthere', "title": "T"})
  assert row == 'en_7_0\t"say ""hi""\tthere"\tT'


def test_filters_report_reasons():
  cfg = filters.FilterConfig()
  base = {"lang": "ja", "answers": ["ヘルシンキ"], "rewrite_backend": "http"}
  assert filters.reject_reason({**base, "question": "フィンランドの首都はどこですか？"}, cfg) is None
  assert filters.reject_reason({**base, "question": "ヘルシンキはどこの首都ですか？"}, cfg) == "leak"
  assert filters.reject_reason({**base, "question": "首都？"}, cfg) == "length"
  assert filters.reject_reason({**base, "question": "What is the capital of Finland?"}, cfg) == "script"
  assert filters.reject_reason({**base, "question": "フィンランドの首都は_X_です"}, cfg) == "mask_left"
  a = {**base, "question": "フィンランドの 首都は？"}
  b = {**base, "question": "フィンランドの首都は？".replace("の", "の ")}
  assert filters.dedup_key(a) == filters.dedup_key(b)
