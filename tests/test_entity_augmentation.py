"""The capstone's entity augmentation: linked-article titles found in a question (longest
non-overlapping matches) replaced by the same topics' titles in one other language drawn per
question; the `entity_augment` stage on the mini corpus, and the task reading its output."""
import collections
import difflib
import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from clqa_jax.synth import config as config_lib
from clqa_jax.synth import entity_augmentation as ea
from clqa_jax.synth import stages

# topic -> {lang: title}: "South Korea" overlaps the shorter "Korea" (another topic).
TITLES = {
    "South Korea": {"en": "South Korea", "fi": "Etelä-Korea", "ja": "大韓民国", "ko": "대한민국"},
    "Korea": {"en": "Korea", "fi": "Korea", "ja": "朝鮮", "ko": "한국"},
    "Seoul": {"en": "Seoul", "fi": "Soul", "ja": "ソウル", "ko": "서울"},
    "Helsinki": {"en": "Helsinki", "fi": "Helsinki", "ko": "헬싱키"},
}
WIKIMAP = ea.WikiMap((topic, lang, title) for topic, by_lang in TITLES.items()
                     for lang, title in by_lang.items())
LANGS = ("en", "fi", "ja", "ko")


def _spans(text, lang="en"):
  return [(text[s.start:s.end], s.topic) for s in ea.find_entity_spans(text, lang, WIKIMAP)]


def test_wikimap_tables():
  assert WIKIMAP.topic_of["ja"]["大韓民国"] == "South Korea"
  assert WIKIMAP.titles_of["Seoul"] == TITLES["Seoul"]
  with pytest.raises(ValueError, match="belongs to topics 'A' and 'B'"):
    ea.WikiMap([("A", "en", "X"), ("B", "en", "X")])


def test_longest_match_wins_over_a_shorter_overlapping_title():
  assert _spans("Is Seoul the capital of South Korea?") == [("Seoul", "Seoul"),
                                                            ("South Korea", "South Korea")]
  assert _spans("Korea and South Korea") == [("Korea", "Korea"), ("South Korea", "South Korea")]
  assert _spans("Koreans in Seoulville") == []  # whole words in English
  assert _spans("서울의 인구는?", "ko") == [("서울", "Seoul")]  # a Korean particle attached
  assert _spans("大韓民国の首都は？", "ja") == [("大韓民国", "South Korea")]


def test_every_span_becomes_the_same_topics_title_in_one_other_language():
  question = "Is Seoul the capital of South Korea or of Korea?"
  targets = collections.Counter()
  for seed in range(200):
    aug = ea.augment_question(question, "en", WIKIMAP, LANGS, np.random.default_rng(seed))
    assert aug.outcome == ea.AUGMENTED and aug.target_lang != "en"
    t = TITLES
    lang = aug.target_lang
    assert aug.question == (f"Is {t['Seoul'][lang]} the capital of {t['South Korea'][lang]} "
                            f"or of {t['Korea'][lang]}?")
    targets[lang] += 1
  assert set(targets) == {"fi", "ja", "ko"} and min(targets.values()) > 40  # uniform-ish


def test_target_languages_need_a_title_of_one_entity_and_spans_without_one_stay():
  spans = ea.find_entity_spans("Helsinki or Soul", "fi", WIKIMAP)
  assert [s.topic for s in spans] == ["Helsinki", "Seoul"]
  assert ea.target_languages(spans, "fi", WIKIMAP, LANGS) == ["en", "ja", "ko"]
  assert ea.target_languages(spans, "fi", WIKIMAP, ("fi", "ja")) == ["ja"]
  assert ea.target_languages(spans[:1], "fi", WIKIMAP, LANGS) == ["ko"]
  # Helsinki has no Japanese title: its span stays.
  assert ea.replace_spans("Helsinki or Soul", spans, "ja", WIKIMAP) == "Helsinki or ソウル"
  # The Finnish title is spelled as the English one: no target (Korean is the only one).
  only_ko = ea.augment_question("Helsinki", "en", WIKIMAP, LANGS, np.random.default_rng(0))
  assert only_ko.question == "헬싱키" and only_ko.target_lang == "ko"
  kept = ea.augment_question("Helsinki", "en", WIKIMAP, ("en", "fi", "ja"),
                             np.random.default_rng(0))
  assert (kept.question, kept.target_lang, kept.outcome) == ("Helsinki", None, ea.NO_TARGET_LANG)


def test_a_question_without_titles_is_kept_and_counted():
  record = {"id": "7", "lang": "en", "question": "Who wrote the anthem?", "answers": ["x"]}
  out, outcome = ea.augment_record(record, WIKIMAP, LANGS, seed=0)
  assert outcome == ea.NO_ENTITY
  assert out == {**record, "translations": {}}


def test_seeded_per_record_whatever_the_order():
  records = [{"id": str(i), "lang": "en", "question": f"Seoul {i} of South Korea"}
             for i in range(50)]

  def targets(recs, seed):
    return {r["id"]: list(ea.augment_record(r, WIKIMAP, LANGS, seed)[0]["translations"])
            for r in recs}
  first = targets(records, 3)
  assert targets(records[::-1], 3) == first
  assert targets(records, 4) != first
  out, outcome = ea.augment_record(records[0], WIKIMAP, LANGS, 3)
  assert outcome == ea.AUGMENTED and out["question"] == records[0]["question"]
  (lang, fields), = out["translations"].items()
  assert fields == {"question": f"{TITLES['Seoul'][lang]} 0 of {TITLES['South Korea'][lang]}"}


MINI_LANGS = ("en", "ar", "bn", "fi", "ja", "ko", "ru", "te")
XOR_TRAIN = os.path.join(config_lib.MINIWIKI_DIR, "xor", "xor_train_full.jsonl")


def _jsonl(pattern):
  out = []
  for path in sorted(glob.glob(pattern)):
    with open(path, encoding="utf-8") as f:
      out += [json.loads(line) for line in f if line.strip()]
  return out


def _title_intervals(text, titles):
  """(start, end) of every case-insensitive occurrence of any title in text."""
  low, out = text.lower(), []
  for t in titles:
    i = low.find(t.lower())
    while i >= 0:
      out.append((i, i + len(t)))
      i = low.find(t.lower(), i + 1)
  return out


@pytest.fixture(scope="module")
def mini_entity_stage(tmp_path_factory):
  out = tmp_path_factory.mktemp("entity")
  cfg = config_lib.SynthConfig(output_dir=str(out), langs=MINI_LANGS, translate_input=XOR_TRAIN)
  stages.run_linked_paragraphs(cfg)
  return cfg, stages.run_entity_augment(cfg)


def test_entity_augment_stage_on_the_mini_corpus(mini_entity_stage):
  cfg, result = mini_entity_stage
  counts = result["counts"]
  records = _jsonl(os.path.join(cfg.output_dir, "entity_augmented", "xor_train_full.*.jsonl-*"))
  inputs = _jsonl(XOR_TRAIN)
  assert len(records) == len(inputs) == sum(counts["records"].values())
  assert sum(counts["augmented"].values()) > len(inputs) // 2
  by_outcome = collections.Counter(bool(r["translations"]) for r in records)
  assert by_outcome[True] == sum(counts["augmented"].values())
  assert by_outcome[False] == sum(sum(counts.get(k, {}).values())
                                  for k in ("no_entity", "no_target_lang"))
  # The WikiMap straight from the linked_paragraphs records: topic -> lang -> title.
  titles = collections.defaultdict(dict)
  for d in _jsonl(os.path.join(cfg.output_dir, "linked_paragraphs", "paragraphs.jsonl-*")):
    titles[d["topic_id"]][d["lang"]] = d["title"]
  originals = {r["id"]: r for r in inputs}
  for r in records:
    assert {k: v for k, v in r.items() if k != "translations"} == originals[r["id"]]
    if not r["translations"]:
      continue
    (target, fields), = r["translations"].items()
    assert target != r["lang"] and target in MINI_LANGS
    source_titles = [t[r["lang"]] for t in titles.values() if r["lang"] in t]
    target_titles = {t[target] for t in titles.values() if target in t}
    spans = _title_intervals(r["question"], source_titles)
    old, new = r["question"], fields["question"]
    assert new != old
    # Every change lies inside a source-language title and writes a target-language title.
    diff = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in diff.get_opcodes():
      if tag != "equal":
        assert any(s <= i1 and i2 <= e for s, e in spans), (old, new, old[i1:i2])
        assert any(new[j1:j2] in t for t in target_titles), (old, new, new[j1:j2])
  assert stages.run_entity_augment(cfg)["skipped"]


def test_entity_augment_task_draws_the_augmented_question_half_the_time(tmp_path, monkeypatch):
  sys.path.insert(0, os.path.join(os.path.dirname(__file__), "fixtures", "data"))
  import tiny_vocab  # pylint: disable=g-import-not-at-top
  import seqio  # pylint: disable=g-import-not-at-top
  from clqa_jax import tasks  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  from clqa_jax.data import paths  # pylint: disable=g-import-not-at-top

  root = tmp_path / "root"
  shard = root / "entity_augmented" / "xor_full.fi.jsonl-00000-of-00001"
  shard.parent.mkdir(parents=True)
  swapped = [{"id": f"s{i}", "lang": "fi", "question": f"Missä Soul {i}?", "answers": ["x"],
              "answer_lang": "fi",
              "translations": {"ja": {"question": f"Missä ソウル {i}?"}}} for i in range(60)]
  kept = [{"id": f"k{i}", "lang": "fi", "question": f"Mikä {i}?", "answers": ["y"],
           "answer_lang": "fi", "translations": {}} for i in range(10)]
  shard.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in swapped + kept),
                   encoding="utf-8")
  monkeypatch.setenv(paths.DATA_DIR_ENV, str(root))
  monkeypatch.setenv(paths.VOCAB_ENV, tiny_vocab.tiny_vocab_path())
  task = seqio.get_mixture_or_task("clqa.entity_augment.xor_full.fi")
  assert "clqa.entity_augment.xor_full" in seqio.MixtureRegistry.names()
  examples = list(task.get_dataset(sequence_length={"question": 64, "answer": 16}, split="train",
                                   shuffle=False, seed=5).as_numpy_iterator())
  assert len(examples) == 70
  by_qid = {x["qid"].decode(): x for x in examples}
  langs = collections.Counter(by_qid[f"s{i}"]["lang"].decode() for i in range(60))
  assert set(langs) == {"fi", "ja"} and 15 < langs["ja"] < 45
  for i in range(60):
    x = by_qid[f"s{i}"]
    want = f"Missä ソウル {i}?" if x["lang"] == b"ja" else f"Missä Soul {i}?"
    assert want in x["question_pretokenized"].decode()
    assert [a.decode() for a in x["answers"]] == ["x"]  # the answers are not swapped
  for i in range(10):  # no title: kept, q' is the question itself
    x = by_qid[f"k{i}"]
    assert x["lang"] == b"fi" and f"Mikä {i}?" in x["question_translated_pretokenized"].decode()


def test_clqa_synth_entity_augment_command(mini_entity_stage, tmp_path):
  """The CLI locks gin before the stage reads the WikiMap (a fresh process, as users run it)."""
  cfg, _ = mini_entity_stage
  shutil.copytree(os.path.join(cfg.output_dir, "linked_paragraphs"),
                  tmp_path / "linked_paragraphs")
  dev = os.path.join(config_lib.MINIWIKI_DIR, "xor", "xor_dev_full.jsonl")
  done = subprocess.run(
      [sys.executable, "-m", "clqa_jax.cli.main", "synth", "entity_augment", "--out",
       str(tmp_path), f"--gin.SynthConfig.translate_input='{dev}'"],
      capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), check=False)
  assert done.returncode == 0, done.stderr[-2000:]
  assert "entity_augment: done" in done.stdout
  assert len(_jsonl(str(tmp_path / "entity_augmented" / "xor_dev_full.*.jsonl-*"))) == len(
      _jsonl(dev))
