"""Code-switched stage-1 queries: MUSE dictionaries, the per-query augmentation (property test
with seeded RNGs) and the clqa.clr_pt_code_switched tasks."""
import json
import os
import shutil
import sys

import gin
import numpy as np
import pytest
import seqio

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "fixtures", "data"))
import tiny_vocab  # noqa: E402

from clqa_jax import tasks  # noqa: E402
from clqa_jax.data import code_switch  # noqa: E402
from clqa_jax.data import paths  # noqa: E402
from clqa_jax.data import preprocessors as pp  # noqa: E402

DICTIONARIES = {
    "fi": {"capital": ["pääkaupunki"], "city": ["kaupunki", "kylä"], "Paris": ["Pariisi"],
           "NATO": ["Nato"], "is": ["on"]},
    "ru": {"capital": ["столица"], "the": ["эта", "этот", "это"], "of": ["из"]},
}
WORDS = ["question:", "capital", "Capital", "CAPITAL", "city", "paris", "PARIS", "nato", "is",
         "the", "of", "The", "Of", "unknown", "_X_", "Telangana.", "", "question:"]


def _candidate_languages(query, switched):
  """The dictionary languages under which ``switched`` is a valid code switch of ``query``."""
  src, out = query.split(" "), switched.split(" ")
  if len(src) != len(out):
    return []
  valid = []
  for lang, dictionary in DICTIONARIES.items():
    ok = True
    for a, b in zip(src, out):
      cands = None if a == "question:" else code_switch.translation_candidates(a, dictionary)
      ok &= (b == a) if not cands else (b in cands)
    if ok:
      valid.append(lang)
  return valid


def test_code_switch_properties_over_seeded_queries():
  rng = np.random.default_rng(0)
  seen_langs, seen_targets = set(), set()
  for seed in range(300):
    query = " ".join(rng.choice(WORDS, size=rng.integers(1, 9)))
    switched = code_switch.code_switch(query, DICTIONARIES, np.random.default_rng(seed))
    # Deterministic for a seed.
    assert switched == code_switch.code_switch(query, DICTIONARIES, np.random.default_rng(seed))
    # Token by token, one language for the whole query; the template token stays.
    langs = _candidate_languages(query, switched)
    assert langs, (query, switched)
    for a, b in zip(query.split(" "), switched.split(" ")):
      if a == "question:":
        assert b == "question:"
    if len(langs) == 1:
      seen_langs.add(langs[0])
    seen_targets.update(switched.split(" "))
  # Both languages and every translation of a multi-target word get drawn.
  assert seen_langs == {"fi", "ru"}
  assert {"kaupunki", "kylä", "эта", "этот", "это"} <= seen_targets


def test_case_variants_are_tried_lower_title_upper():
  d = {"the": ["l"], "Paris": ["P"], "NATO": ["N"], "Of": ["T"], "of": ["o"]}
  rng = np.random.default_rng(0)
  assert code_switch.code_switch("THE paris nato Of question: zz", {"x": d}, rng) == \
      "l P N o question: zz"


def test_load_dictionary_muse_format(tmp_path):
  path = tmp_path / "en-fi.txt"
  path.write_text("city\tkaupunki\ncity kylä\nthe the\n\nParis  Pariisi\n", encoding="utf-8")
  assert code_switch.load_dictionary(str(path)) == {"city": ["kaupunki", "kylä"],
                                                    "Paris": ["Pariisi"]}
  (tmp_path / "en-ru.txt").write_text("a b c\n", encoding="utf-8")
  with pytest.raises(ValueError, match=r"en-ru.txt:1: a dictionary line"):
    code_switch.load_dictionary(str(tmp_path / "en-ru.txt"))


STAGE1 = {"id": "fi-7-0", "lang": "fi", "source_pid": "7", "answers": ["Helsinki"],
          "question_en": "_X_ is the capital city of Finland.",
          "question": "_X_ on Suomen pääkaupunki.",
          "teacher_pids": ["8", "7"], "teacher_scores": [2.0, 1.0]}


@pytest.fixture()
def data_root(tmp_path):
  root = str(tmp_path / "root")
  shutil.copytree(tiny_vocab.ROOT, root)
  os.makedirs(f"{root}/stage1", exist_ok=True)
  with open(f"{root}/stage1/clr_pt.fi.jsonl-00000-of-00001", "w", encoding="utf-8") as f:
    for i in range(6):
      f.write(json.dumps({**STAGE1, "id": f"fi-7-{i}"}) + "\n")
  os.makedirs(f"{root}/muse")
  for lang, dictionary in DICTIONARIES.items():
    with open(f"{root}/muse/en-{lang}.txt", "w", encoding="utf-8") as f:
      for source, targets in dictionary.items():
        f.writelines(f"{source}\t{t}\n" for t in targets)
  old = {k: os.environ.get(k) for k in (paths.DATA_DIR_ENV, paths.VOCAB_ENV)}
  os.environ[paths.DATA_DIR_ENV] = root
  os.environ[paths.VOCAB_ENV] = tiny_vocab.tiny_vocab_path()
  gin.clear_config()
  gin.bind_parameter("code_switch_dictionaries.languages", ["fi", "ru"])
  yield root
  gin.clear_config()
  for k, v in old.items():
    if v is None:
      os.environ.pop(k, None)
    else:
      os.environ[k] = v


def _read(seed):
  task = seqio.get_mixture_or_task("clqa.clr_pt_code_switched.fi")
  with seqio.map_seed_manager(seed):
    ds = task.get_dataset(sequence_length=dict(pp.SEQUENCE_LENGTH), split="train",
                          shuffle=False, seed=seed)
    return list(ds.as_numpy_iterator())


def test_code_switched_task_replaces_the_parallel_query(data_root):
  import sentencepiece as spm
  sp = spm.SentencePieceProcessor(model_file=tiny_vocab.tiny_vocab_path())
  assert "clqa.clr_pt_code_switched" in seqio.MixtureRegistry.names()
  english = "question: " + STAGE1["question_en"]
  examples = _read(1)
  assert len(examples) == 6
  switched = set()
  for ex in examples:
    assert ex["question_en_pretokenized"].decode() == english
    q = ex["question_pretokenized"].decode()
    assert _candidate_languages(english, q), q
    assert q != english                       # 'capital' is in both dictionaries
    np.testing.assert_array_equal(ex["question"], sp.encode(q)[:pp.QUERY_MAX_TOKENS])
    switched.add(q)
  assert len(switched) > 1                      # drawn per example
  assert [e["question_pretokenized"] for e in _read(1)] == \
      [e["question_pretokenized"] for e in examples]


def test_missing_dictionaries_are_a_clear_error(data_root):
  gin.bind_parameter("code_switch_dictionaries.languages", ["fi", "xx"])
  with pytest.raises(FileNotFoundError, match="en-xx.txt"):
    _read(2)
