"""Passage recall R@k (eval/passage_recall.py): gold passage ids in the top k, per language."""
import json

import pytest

from clqa_jax.data.errors import DataFormatError
from clqa_jax.data.records import Passage
from clqa_jax.eval import passage_recall
from clqa_jax.eval.xor_retrieve import RetrievalPrediction


def test_hits_count_a_gold_passage_within_the_first_k():
  assert passage_recall.passage_hits(["a", "b", "c"], frozenset({"b"}), (1, 2, 5)) == {
      1: False, 2: True, 5: True}
  assert passage_recall.passage_hits([], frozenset({"b"}), (1,)) == {1: False}


def test_recall_per_language_and_macro_skips_questions_without_gold():
  predictions = [RetrievalPrediction("q1", "ja", ["x"], ["p1", "p2"]),
                 RetrievalPrediction("q2", "ja", ["x"], ["p3", "p1"]),
                 RetrievalPrediction("q3", "ko", ["x"], ["p9", "p8"]),
                 RetrievalPrediction("q4", "ko", ["x"], ["p1"])]
  gold = {"q1": frozenset({"p1"}), "q2": frozenset({"p1"}), "q3": frozenset({"p8"})}
  t = passage_recall.evaluate_passage_recall(predictions, gold, ks=(1, 2))
  assert t.metrics == ("R@1", "R@2")
  assert t.scores == {"ja": {"R@1": 50.0, "R@2": 100.0}, "ko": {"R@1": 0.0, "R@2": 100.0}}
  assert t.counts == {"ja": 2, "ko": 1}
  assert t.macro == {"R@1": 25.0, "R@2": 100.0}
  assert t.info["predictions_without_gold_passages"] == 1
  assert t.info["distinct_top1_passages"] == 3  # p1, p3, p9: q4 has no gold, so not counted


def test_a_collapsed_ranking_has_one_distinct_first_passage_whatever_its_recall():
  predictions = [RetrievalPrediction(f"q{i}", "ja", ["x"], ["hub", f"p{i}"]) for i in range(4)]
  gold = {f"q{i}": frozenset({"hub" if i < 2 else f"p{i}"}) for i in range(4)}
  t = passage_recall.evaluate_passage_recall(predictions, gold, ks=(1, 2))
  assert t.macro == {"R@1": 50.0, "R@2": 100.0}
  assert t.info["distinct_top1_passages"] == 1


def test_recall_needs_passage_ids():
  with pytest.raises(ValueError, match="q1"):
    passage_recall.evaluate_passage_recall([RetrievalPrediction("q1", "ja", ["x"])],
                                           {"q1": frozenset({"p1"})})


def test_gold_titles_become_the_ids_of_every_passage_of_those_articles(tmp_path):
  passages = [Passage("en_1_0", "t", "Japan"), Passage("en_1_1", "t", "Japan"),
              Passage("en_2_0", "t", "Tokyo")]
  assert passage_recall.gold_passage_ids({"q": ("Japan",), "r": ("Nowhere",)}, passages) == {
      "q": frozenset({"en_1_0", "en_1_1"}), "r": frozenset()}
  path = tmp_path / "q.jsonl"
  path.write_text("\n".join(json.dumps(o) for o in (
      {"id": "q", "lang": "ja", "question": "?", "answers": ["a"], "gold_titles": ["Japan"]},
      {"id": 7, "lang": "ja", "question": "?", "answers": ["a"]})) + "\n")
  assert passage_recall.read_gold_titles(str(path)) == {"q": ("Japan",)}
  path.write_text(json.dumps({"id": "q", "gold_titles": "Japan"}) + "\n")
  with pytest.raises(DataFormatError, match="gold_titles"):
    passage_recall.read_gold_titles(str(path))
