"""The mini corpus's rewrite backend: a cloze of the corpus -> the corpus's own question for it.

Stage 2 of CLASS asks an LLM to turn each anchor cloze into a natural question in the target
language. The embedded corpus is rendered from templates (`generate.py`), so its clozes can be
rewritten without a model, in the wording of its XOR-style question sets: the backend renders
every sentence of every article in every language, masks each link as `synth/cloze.py` does,
and maps the cloze of a fact that has a question template to that question about the
sentence's subject, in the item's language:

  "The capital of Finland is _X_." (fi)   -> "Mikä on Suomen pääkaupunki?"
  "Tokyo is a city in _X_." (ko)          -> "도쿄는 어느 나라에 있는가?"

A cloze with no question template ("_X_ is one of the major cities of Finland."), one not of
the corpus, or one whose question is in the dev split (the evaluation's questions are never
training questions) comes back unchanged, and the stage's `mask_left` filter drops it, counted,
as it would drop an LLM reply that kept the mask.
"""
from __future__ import annotations

import re

from clqa_jax.miniwiki import generate
from clqa_jax.miniwiki import kb
from clqa_jax.synth import cloze as cloze_lib
from clqa_jax.synth.rewrite import RewriteItem

# (sentence kind, masked link role) -> the question kind whose subject is the sentence's and
# whose answer is the masked entity.
QUESTION_OF_CLOZE: dict[tuple[str, str], str] = {
    ("country_capital", "capital"): "capital",
    ("city_capital", "country"): "city_country",
    ("city_in", "country"): "city_country",
    ("river_in", "country"): "river_country",
    ("person_born", "born_in"): "birthplace",
}
_LINK = re.compile(r'<a href="[^"]*">([^<]*)</a>')


def _clozes(sentence: str) -> list[str]:
  """The sentence's clozes, one per link: that link's text masked, every other link as text."""
  out = []
  for m in _LINK.finditer(sentence):
    masked = sentence[:m.start()] + cloze_lib.MASK + sentence[m.end():]
    out.append(_LINK.sub(r"\1", masked))
  return out


class MiniwikiBackend:
  """``rewrite_backend = "miniwiki"``: the embedded corpus's clozes -> its train-split questions.

  Args:
    num_synthetic, seed: the corpus's generator settings (`generate.generate_corpus`; the
      committed corpus uses the defaults).
  """
  name = "miniwiki"

  def __init__(self, num_synthetic: int = 60, seed: int = 0, langs: tuple[str, ...] = kb.LANGS):
    entities = generate.build_entities(num_synthetic, seed, langs)
    by_key = {e.key: e for e in entities}
    index = generate.build_index(entities)
    # (language of the cloze, cloze) -> (question kind, subject)
    self.questions: dict[tuple[str, str], tuple[str, kb.Entity]] = {}
    for e in entities:
      for kind, roles, values in generate.article_sentences(e, by_key, index):
        for role in roles:
          question = QUESTION_OF_CLOZE.get((kind, role))
          if question is None or generate.question_split(question, e, seed) == "dev":
            continue
          for lang in langs:
            for text in _clozes(generate.render_sentence(e, kind, roles, values, lang)):
              self.questions[(lang, text.strip())] = (question, e)

  def rewrite(self, items: list[RewriteItem]) -> list[str]:
    out = []
    for it in items:
      # "retrieve" items are English clozes asked in it.lang; "full" ones are in it.lang.
      source_lang = "en" if it.kind == "retrieve" else it.lang
      hit = self.questions.get((source_lang, it.cloze.strip()))
      out.append(generate.question_text(hit[0], it.lang, hit[1]) if hit else it.cloze)
    return out
