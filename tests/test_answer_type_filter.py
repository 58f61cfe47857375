"""ZusammenQA's answer-type filter on the paper's Figure-2 pairs, in both modes."""
import collections

import pytest

from clqa_jax.synth import answer_type_filter as f

# (question, answer, rule in paper mode, rule in code mode); None = dropped.
FIGURE_2 = [
    ("In what year was the Gershwin piece first performed?", "1928", "number", "number"),
    ("Who conducted the premiere?", "Walter Damrosch", "who", "who"),
    ("When was the work premiered?", "November 18", "has_digit", "date"),
    ("Who wrote the program notes?", "Deems Taylor", "who", "who"),
    ("What sounds does the score call for?", "automobile horns", None, None),
    ("Which orchestra gave the premiere?", "New York Philharmonic", None, None),
    ("When did Gershwin visit Paris?", "the 1920s", "has_digit", None),
    ("How many taxi horns were used?", "four", "how_many", "how_many"),
    ("Whose horns were used?", "taxis", "who", "who"),  # "who" inside "whose"
    ("And how many were there?", "four", None, None),  # "how many" past character 8
    ("What is the number?", "3.5e2", "number", "number"),
    ("What month?", "May", "date", "date"),
    ("What?", "", None, None),
]


@pytest.mark.parametrize("question,answer,paper,code", FIGURE_2)
def test_rules_as_stated(question, answer, paper, code):
  assert f.kept_by(question, answer, "paper") == paper
  assert f.kept_by(question, answer, "code") == code


def test_filter_pairs_counts_every_rule_and_the_drops():
  counts = collections.Counter()
  pairs = [{"question": q, "answer": a, "id": i} for i, (q, a, _, _) in enumerate(FIGURE_2)]
  kept = list(f.filter_pairs(pairs, "code", counts))
  assert [p["id"] for p in kept] == [i for i, row in enumerate(FIGURE_2) if row[3]]
  assert all(p["type"] == FIGURE_2[p["id"]][3] for p in kept)
  assert counts == collections.Counter(row[3] or f.DROPPED for row in FIGURE_2)


def test_unknown_mode_is_refused():
  with pytest.raises(ValueError, match="mode"):
    f.kept_by("Who?", "x", "strict")
