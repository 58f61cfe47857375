"""Algorithm 1 (query translation as data): properties with a seeded backend."""
import collections

import numpy as np
import pytest

from clqa_jax.synth import query_translation as qt

LANGS = ("en", "ja", "fi", "ko", "ar")


class TaggingBackend:
  name = "tagging"

  def __init__(self):
    self.calls = []

  def translate(self, texts, source_lang, target_lang):
    self.calls.append((source_lang, target_lang, len(texts)))
    return [f"[{source_lang}->{target_lang}] {t}" for t in texts]


def _pairs(rng, n):
  return [{"question": f"q{i}", "question_lang": str(rng.choice(LANGS)),
           "passage_lang": str(rng.choice(LANGS))} for i in range(n)]


def test_never_returns_a_monolingual_pair_and_keeps_cross_language_pairs():
  rng = np.random.default_rng(0)
  pairs = _pairs(rng, 2000)
  targets = qt.plan_targets([p["question_lang"] for p in pairs],
                            [p["passage_lang"] for p in pairs], LANGS, rng, 1.0)
  backend = TaggingBackend()
  out = qt.translate_questions(pairs, targets, backend)
  for before, after in zip(pairs, out):
    assert after["question_lang"] != after["passage_lang"]
    if before["question_lang"] != before["passage_lang"]:
      assert after == before
    else:
      assert after["original_question"] == before["question"]
      assert after["question"].startswith(f"[{before['question_lang']}->{after['question_lang']}]")
  assert len(backend.calls) == len(set(backend.calls))  # one call per language pair


def test_targets_are_uniform_over_the_other_languages():
  """chi-square over 10^4 draws for English passages (4 other languages, 3 d.o.f.)."""
  rng = np.random.default_rng(1)
  n = 10_000
  targets = qt.plan_targets(["en"] * n, ["en"] * n, LANGS, rng, 1.0)
  counts = collections.Counter(targets)
  assert set(counts) == {"ja", "fi", "ko", "ar"}
  expected = n / 4
  chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
  assert chi2 < 16.27  # p = 0.001


def test_translate_probability_is_per_pair():
  rng = np.random.default_rng(2)
  n = 10_000
  targets = qt.plan_targets(["fi"] * n, ["fi"] * n, LANGS, rng, 0.5)
  share = sum(t is not None for t in targets) / n
  assert abs(share - 0.5) < 0.03
  assert qt.plan_targets(["fi"] * 10, ["fi"] * 10, LANGS, rng, 0.0) == [None] * 10


def test_bad_arguments_are_refused():
  rng = np.random.default_rng(0)
  with pytest.raises(ValueError, match="translate_probability"):
    qt.plan_targets(["en"], ["en"], LANGS, rng, 1.5)
  with pytest.raises(ValueError, match="other than 'en'"):
    qt.plan_targets(["en"], ["en"], ["en"], rng, 1.0)
