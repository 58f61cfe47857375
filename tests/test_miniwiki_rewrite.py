"""The mini corpus's rewrite backend (miniwiki/rewrite.py): clozes -> train-split questions."""
import json
import os

from clqa_jax.miniwiki import generate
from clqa_jax.miniwiki import kb
from clqa_jax.miniwiki import rewrite
from clqa_jax.synth import config as config_lib
from clqa_jax.synth import filters
from clqa_jax.synth.rewrite import RewriteItem

BACKEND = rewrite.MiniwikiBackend()


def _xor_questions(split):
  path = os.path.join(config_lib.MINIWIKI_DIR, "xor", f"xor_{split}_full.jsonl")
  return {(r["lang"], r["question"]) for r in map(json.loads, open(path, encoding="utf-8"))}


def test_a_cloze_of_a_fact_becomes_its_question_in_the_target_language():
  out = BACKEND.rewrite([RewriteItem("retrieve", "fi", "The capital of Finland is _X_."),
                         RewriteItem("retrieve", "ja", "The capital of Finland is _X_."),
                         RewriteItem("full", "fi", "Suomen pääkaupunki on _X_."),
                         RewriteItem("full", "ru", "Столица Финляндии — _X_.")])
  assert out == ["Mikä on Suomen pääkaupunki?", "フィンランドの首都はどこですか？",
                 "Mikä on Suomen pääkaupunki?", "Какой город является столицей Финляндии?"]


def test_clozes_without_a_question_template_or_of_another_corpus_come_back_unchanged():
  items = [RewriteItem("retrieve", "fi", "_X_ is one of the major cities of Finland."),
           RewriteItem("retrieve", "fi", "The capital of Atlantis is _X_.")]
  out = BACKEND.rewrite(items)
  assert out == [it.cloze for it in items]
  # ... which the stage's filter drops as a reply that kept the mask.
  record = {"question": out[0], "answers": ["Tampere"], "lang": "fi",
            "rewrite_backend": "miniwiki"}
  assert filters.reject_reason(record, filters.FilterConfig()) == "mask_left"


def test_every_question_it_writes_is_a_train_question_never_a_dev_one():
  train, dev = _xor_questions("train"), _xor_questions("dev")
  written = set()
  for (lang, cloze), _ in BACKEND.questions.items():
    kind = "retrieve" if lang == "en" else "full"
    for target in (kb.LANGS[1:] if lang == "en" else (lang,)):
      written.add((target, BACKEND.rewrite([RewriteItem(kind, target, cloze)])[0]))
  assert written and written <= train
  assert not written & dev
  # Every question kind of the corpus is reachable from some cloze.
  kinds = {kind for kind, _ in BACKEND.questions.values()}
  assert kinds == set(rewrite.QUESTION_OF_CLOZE.values())
  assert kinds | {"birth_year"} == set(generate.templates.QUESTIONS)
