"""The capstone's Algorithm 1 as a tf preprocessor over translated records: monolingual pairs
become cross-lingual with probability 0.5 (uniform target language), cross-language pairs stay,
the reader version swaps the answers; seeded per example and epoch."""
import collections

import numpy as np
import seqio
import tensorflow as tf

from clqa_jax.data import preprocessors as pp
from clqa_jax.data import sources
from clqa_jax.data import translated_records

LANGS = ["ar", "en", "fi", "ja"]


def _record(i, lang, passage_lang):
  t_langs = [l for l in LANGS if l != lang]
  return {"qid": str(i), "lang": lang, "question": f"q{i}", "answers": [f"a{i}"],
          "source_pid": "", "passage_lang": passage_lang, "translation_langs": t_langs,
          "translation_questions": [f"q{i}@{l}" for l in t_langs],
          "translation_answers": [f"a{i}@{l}" for l in t_langs],
          "translation_answer_counts": [1] * len(t_langs)}


def _run(records, seed):
  sig = sources.TRANSLATED_SIGNATURE
  ds = tf.data.Dataset.from_generator(lambda: iter(records), output_signature=sig)
  with seqio.map_seed_manager(seed):
    out = pp.algorithm1_translate(ds, swap_answers=True)
  return [{k: (v.decode() if isinstance(v, bytes) else v) for k, v in x.items()}
          for x in out.as_numpy_iterator()]


def test_monolingual_pairs_translated_half_the_time_into_uniform_languages():
  n = 2000
  records = [_record(i, "fi", "fi") for i in range(n)] + [_record(n + i, "ja", "en")
                                                          for i in range(200)]
  out = _run(records, 7)
  mono = out[:n]
  translated = [x for x in mono if x["lang"] != "fi"]
  assert abs(len(translated) / n - 0.5) < 0.05
  counts = collections.Counter(x["lang"] for x in translated)
  assert set(counts) == {"ar", "en", "ja"}
  expected = len(translated) / 3
  assert sum((c - expected) ** 2 / expected for c in counts.values()) < 13.8  # p = 0.001, 2 dof
  for x in translated:  # never monolingual; the answer swapped with the question
    i = x["qid"]
    assert x["question"] == f"q{i}@{x['lang']}"
    assert [a.decode() for a in x["answers"]] == [f"a{i}@{x['lang']}"]
  for x in out[n:]:  # cross-language pairs unchanged
    assert (x["lang"], x["question"]) == ("ja", f"q{x['qid']}")
    assert [a.decode() for a in x["answers"]] == [f"a{x['qid']}"]
  for x in out:  # q' is another version of the same question
    assert x["question_translated"] != x["question"]
    assert x["question_translated_lang"] != x["lang"]
    assert x["question_translated"].startswith(f"q{x['qid']}")


def test_seeded_and_drawn_anew_per_seed():
  records = [_record(i, "en", "en") for i in range(200)]
  a, b, c = _run(records, 1), _run(records, 1), _run(records, 2)
  assert [x["question"] for x in a] == [x["question"] for x in b]
  assert [x["question"] for x in a] != [x["question"] for x in c]


def test_failed_translations_keep_the_original():
  rec = _record(0, "fi", "fi")
  rec["translation_questions"] = ["", "", ""]
  out = _run([rec] * 50, 3)
  assert all(x["question"] == "q0" and x["lang"] == "fi" for x in out)
  assert all(x["question_translated"] == "q0" for x in out)  # no other version: q' = q


def test_choice_uses_plan_targets_probability():
  rng = np.random.default_rng(0)
  chosen = [pp.algorithm1_choice("en", "en", ["fi", "ja"], ["x", "y"], rng, 1.0)[0]
            for _ in range(100)]
  assert -1 not in chosen
  assert pp.algorithm1_choice("en", "fi", ["fi", "ja"], ["x", "y"], rng, 1.0)[0] == -1


def test_translated_records_reader(tmp_path):
  import json
  import pytest
  path = tmp_path / "t.jsonl"
  path.write_text(json.dumps({"id": "1", "lang": "fi", "question": "q", "answers": ["a"],
                              "answer_lang": "fi", "translations": {
                                  "ja": {"question": "qj", "answers": ["aj", "bj"]},
                                  "en": {"question": "qe"}}}) + "\n", encoding="utf-8")
  (x,) = translated_records.read_translated_jsonl(str(path))
  assert x["passage_lang"] == "fi" and x["translation_langs"] == ["en", "ja"]
  assert x["translation_answers"] == ["aj", "bj"] and x["translation_answer_counts"] == [0, 2]
  path.write_text(json.dumps({"lang": "fi", "question": "q", "answers": [],
                              "translations": {}}) + "\n", encoding="utf-8")
  with pytest.raises(ValueError, match=r"t.jsonl:1: no 'passage_lang'"):
    list(translated_records.read_translated_jsonl(str(path)))
