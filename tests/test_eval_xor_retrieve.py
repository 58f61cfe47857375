"""R@kt with eval_xor_retrieve.py's rules, on hand-made passages."""
import os

import pytest

from clqa_jax.data.errors import DataFormatError
from clqa_jax.data.records import Question
from clqa_jax.eval import inputs
from clqa_jax.eval import xor_retrieve

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "eval")


def _gold(qid, lang, answers):
  return Question(qid, lang, "", tuple(answers))


def _pred(qid, lang, texts):
  return xor_retrieve.RetrievalPrediction(qid, lang, texts)


def test_truncation_at_exactly_k_thousand_tokens():
  # 1999 filler tokens, then "ANSA ANSB": token #2000 is ANSA, token #2001 is ANSB.
  passages = [" ".join(["w"] * 1999), "ANSA ANSB", "tail"]
  hits = xor_retrieve.hits_at_k(passages, ["ANSA"], ks=(2, 5))
  assert hits == {2: True, 5: True}
  hits = xor_retrieve.hits_at_k(passages, ["ANSB"], ks=(2, 5))
  assert hits == {2: False, 5: True}
  assert xor_retrieve.hits_at_k(passages, ["ANSA ANSB"], ks=(2, 5)) == {2: False, 5: True}
  tokens = xor_retrieve.concatenated_tokens(passages, 2000)
  assert len(tokens) == 2000 and tokens[-1] == "ANSA"


def test_later_passages_beyond_the_budget_are_not_read():
  passages = [" ".join(["w"] * 2000), "Paris"]
  assert xor_retrieve.hits_at_k(passages, ["Paris"], ks=(2, 5)) == {2: False, 5: True}


def test_raw_case_sensitive_substring_of_space_joined_tokens():
  passages = ["He moved to Paris, France in 1990."]
  assert xor_retrieve.hits_at_k(passages, ["paris"], ks=(2,)) == {2: False}
  assert xor_retrieve.hits_at_k(passages, ["Paris"], ks=(2,)) == {2: True}
  # Tokens are re-joined with spaces: "Paris , France", so the raw answer "Paris, France" misses.
  assert xor_retrieve.hits_at_k(passages, ["Paris, France"], ks=(2,)) == {2: False}
  # Substring, not token match: "Pari" is inside "Paris".
  assert xor_retrieve.hits_at_k(passages, ["Pari"], ks=(2,)) == {2: True}


def test_yes_no_removed_and_yes_no_only_questions_skipped():
  gold = [_gold("a", "ja", ["yes"]), _gold("b", "ja", ["no", "Paris"]),
          _gold("c", "ja", ["Yes"])]
  preds = [_pred("a", "ja", ["yes yes yes"]), _pred("b", "ja", ["no no no"]),
           _pred("c", "ja", ["Yes indeed"])]
  result = xor_retrieve.evaluate_xor_retrieve(preds, gold, ks=(2,))
  # "a" skipped; "b" counted with ["Paris"] only (miss); "c": "Yes" is not "yes" (hit).
  assert result.counts == {"ja": 2}
  assert result.scores["ja"]["R@2kt"] == 50.0
  assert result.info["skipped_yes_no_only"] == 1


def test_fixture_title_excluded_and_macro_over_languages():
  gold = inputs.read_gold(os.path.join(FIXTURES, "xor_retrieve_gold.jsonl"))
  preds = xor_retrieve.read_retrieve_predictions(os.path.join(FIXTURES, "xor_retrieve_pred.json"))
  result = xor_retrieve.evaluate_xor_retrieve(preds, gold)
  # ja: ja-1 hit, ja-2 yes-only skipped, ja-3 "Paris" only in the title (miss) -> 50; ko: 100.
  assert result.counts == {"ja": 2, "ko": 1}
  for metric in ("R@2kt", "R@5kt", "R@100kt"):
    assert result.scores["ja"][metric] == 50.0
    assert result.scores["ko"][metric] == 100.0
    assert result.macro[metric] == 75.0  # macro, not the micro 66.7


def test_missing_and_unknown_predictions_follow_the_official_script():
  gold = [_gold("a", "ar", ["x"]), _gold("b", "ar", ["y"])]
  preds = [_pred("a", "ar", ["x"]), _pred("zzz", "ar", ["y"])]
  result = xor_retrieve.evaluate_xor_retrieve(preds, gold, ks=(2,))
  assert result.counts == {"ar": 1} and result.scores["ar"]["R@2kt"] == 100.0
  assert result.info["gold_questions_without_prediction"] == 1
  assert result.info["predictions_with_unknown_id"] == 1


def test_bad_prediction_file_names_the_field(tmp_path):
  path = tmp_path / "pred.json"
  path.write_text('[{"id": "a", "lang": "ja", "ctxs": [{"title": "t"}]}]')
  with pytest.raises(DataFormatError, match=r"pred.json: \[0\]\.ctxs\[0\]: "):
    xor_retrieve.read_retrieve_predictions(str(path))


def test_bad_gold_file_names_line_and_field(tmp_path):
  path = tmp_path / "gold.jsonl"
  path.write_text('{"id": "a", "lang": "ja", "answers": ["x"]}\n\n{"id": "b", "lang": "ja"}\n')
  with pytest.raises(DataFormatError, match=r"gold.jsonl:3: answers: missing"):
    inputs.read_gold(str(path))


def test_worker_processes_give_the_serial_result():
  gold = inputs.read_gold(os.path.join(FIXTURES, "xor_retrieve_gold.jsonl"))
  preds = xor_retrieve.read_retrieve_predictions(os.path.join(FIXTURES, "xor_retrieve_pred.json"))
  serial = xor_retrieve.evaluate_xor_retrieve(preds, gold)
  assert xor_retrieve.evaluate_xor_retrieve(preds, gold, num_workers=2) == serial
