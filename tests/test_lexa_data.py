"""LEXA topic groups as data: the masking rate and independence (seeded), the clqa.lexa_pt task
over linked_paragraphs shards, the fixed-shape feed features, and the readers' errors."""
import json

import gin
import numpy as np
import pytest
import sentencepiece as spm
import tensorflow as tf

from clqa_jax.data import pipeline
from clqa_jax.data import topic_feed
from clqa_jax.data import topic_groups
from clqa_jax.data.errors import DataFormatError
from fixtures.data.tiny_vocab import tiny_vocab_path

RATE, SENTINEL = 0.15, 999


def test_masking_rate_and_independence_with_a_seed():
  rng = np.random.default_rng(0)
  tokens = rng.integers(2, 900, (400, 200)).astype(np.int32)
  tokens[:, -20:] = 0
  tokens[:, -21] = 1
  real = tokens > 1

  def mask(seed):
    return tf.constant(seed, tf.int32), topic_groups.mask_tokens(
        tf.constant(tokens), tf.constant(seed, tf.int32), RATE, SENTINEL).numpy()

  _, a = mask([1, 2])
  _, b = mask([3, 4])
  np.testing.assert_array_equal(mask([1, 2])[1], a)          # the seed fixes the mask
  masked_a, masked_b = a == SENTINEL, b == SENTINEL
  assert not (masked_a & ~real).any() and not (masked_b & ~real).any()   # pad and EOS kept
  np.testing.assert_array_equal(a[~masked_a], tokens[~masked_a])          # the rest untouched
  n = real.sum()
  sigma = np.sqrt(RATE * (1 - RATE) / n)
  for m in (masked_a, masked_b):
    assert abs(m[real].mean() - RATE) < 4 * sigma
  # Independent copies: both masked at rate^2, and one copy's mask says nothing of the other's.
  both = (masked_a & masked_b)[real].mean()
  assert abs(both - RATE ** 2) < 4 * np.sqrt(RATE ** 2 * (1 - RATE ** 2) / n)
  assert abs(masked_b[masked_a].mean() - RATE) < 4 * np.sqrt(RATE * (1 - RATE) / masked_a.sum())


GROUPS = [
    [("Finland", "en", "Finland", "Finland is a country in northern Europe."),
     ("Finland", "fi", "Suomi", "Suomi on valtio Pohjois-Euroopassa."),
     ("Finland", "ja", "フィンランド", "フィンランドは北ヨーロッパの国である。")],
    [("Helsinki", "en", "Helsinki", "Helsinki is the capital of Finland."),
     ("Helsinki", "ru", "Хельсинки", "Хельсинки является столицей Финляндии.")],
    [("Lonely", "en", "Lonely", "An article without an interlanguage link.")],
]


def _write_root(tmp_path, groups=GROUPS):
  shard = tmp_path / "linked_paragraphs" / "paragraphs.jsonl-00000-of-00001"
  shard.parent.mkdir(parents=True)
  with open(shard, "w", encoding="utf-8") as f:
    for group in groups:
      for topic, lang, title, text in group:
        f.write(json.dumps({"topic_id": topic, "lang": lang, "title": title, "text": text},
                           ensure_ascii=False) + "\n")
  return str(tmp_path), str(shard)


@pytest.fixture
def root(tmp_path):
  path, _ = _write_root(tmp_path)
  gin.clear_config()
  gin.bind_parameter("data_root.path", path)
  gin.bind_parameter("vocabulary_path.path", tiny_vocab_path())
  yield path
  gin.clear_config()


def test_task_yields_masked_topic_groups_with_the_anchor_copied_twice(root):
  sp = spm.SentencePieceProcessor(model_file=tiny_vocab_path())
  sentinel = sp.get_piece_size() - 1
  texts = {(t, l): f"title: {ti} context: {x}" for g in GROUPS for t, l, ti, x in g}
  seen_anchor_langs = set()
  batches = pipeline.get_question_dataset("clqa.lexa_pt", "train", 2, seed=0)
  for _ in range(6):
    batch = next(batches)
    # The single-language topic is dropped; a repeated stream may put a topic twice in a batch.
    assert set(batch["topic_id"]) <= {b"Finland", b"Helsinki"}
    for i, topic in enumerate(batch["topic_id"]):
      langs = [l.decode() for l in batch["langs"][i] if l]
      assert len(set(langs)) == len(langs) >= 2
      seen_anchor_langs.add((topic, langs[0]))
      for slot, lang in enumerate(langs):
        want = sp.encode(texts[(topic.decode(), lang)]) + [1]
        got = batch["documents"][i, slot][:len(want)]
        kept = got != sentinel
        np.testing.assert_array_equal(got[kept], np.array(want)[kept])
        assert (batch["documents"][i, slot][len(want):] == 0).all()
      anchor = batch["anchor"][i][:len(sp.encode(texts[(topic.decode(), langs[0])])) + 1]
      slot0 = batch["documents"][i, 0][:len(anchor)]
      both = (anchor != sentinel) & (slot0 != sentinel)
      np.testing.assert_array_equal(anchor[both], slot0[both])   # the same document ...
  assert {t for t, _ in seen_anchor_langs} == {b"Finland", b"Helsinki"}
  # ... and the anchor is drawn among the group's documents.
  assert len({l for t, l in seen_anchor_langs if t == b"Finland"}) >= 2

  features = topic_feed.group_features(batch, n_max=4, negatives_per_group=3)
  assert features["document_tokens"].shape == (2, 4, 200)
  assert features["anchor_tokens"].shape == (2, 200)
  np.testing.assert_array_equal(features["document_mask"].sum(1),
                                [len([l for l in ls if l]) for ls in batch["langs"]])
  assert features["topic_ids"].dtype == np.int32
  np.testing.assert_array_equal(features["topic_ids"],
                                [topic_feed.topic_hash(t) for t in batch["topic_id"]])
  assert "negative_tokens" not in features
  # n_max below a group's size keeps its first slots, the anchor's among them.
  small = topic_feed.group_features(batch, n_max=2, negatives_per_group=3)
  assert small["document_mask"].all()


def test_mined_task_adds_the_groups_negatives(root, tmp_path):
  store = tmp_path / "hard_negatives.jsonl"
  store.write_text(json.dumps({"topic_id": "Finland", "negatives": [
      {"topic_id": "Helsinki", "lang": "ru"}, {"topic_id": "Lonely", "lang": "en"}],
      "scores": [2.0, 1.0]}) + "\n")
  gin.bind_parameter("lexa_hard_negatives.path", str(store))
  batch = next(pipeline.get_question_dataset("clqa.lexa_pt.mined", "train", 4, seed=0))
  features = topic_feed.group_features(batch, n_max=3, negatives_per_group=3)
  assert features["negative_tokens"].shape == (4, 3, 200)
  for row, topic in enumerate(batch["topic_id"]):
    if topic == b"Finland":
      np.testing.assert_array_equal(features["negative_mask"][row], [True, True, False])
      np.testing.assert_array_equal(
          features["negative_topic_ids"][row][:2],
          [topic_feed.topic_hash("Helsinki"), topic_feed.topic_hash("Lonely")])
    else:
      assert not features["negative_mask"][row].any()


def test_readers_name_file_line_and_field(tmp_path):
  _, shard = _write_root(tmp_path, [GROUPS[0][:1], GROUPS[1], GROUPS[0][1:]])
  with pytest.raises(DataFormatError, match=r"paragraphs.jsonl-00000-of-00001:4: topic_id"):
    list(topic_groups.read_topic_groups(shard))
  dup = tmp_path / "dup.jsonl"
  dup.write_text("\n".join(json.dumps({"topic_id": "A", "lang": "en", "title": "A", "text": t})
                           for t in ("x", "y")))
  with pytest.raises(DataFormatError, match=r"dup.jsonl:2: lang"):
    list(topic_groups.read_topic_groups(str(dup)))
  bad = tmp_path / "neg.jsonl"
  bad.write_text(json.dumps({"topic_id": "A", "negatives": [{"topic_id": "A", "lang": "en"}]}))
  with pytest.raises(DataFormatError, match=r"neg.jsonl:1: negatives"):
    topic_groups.read_hard_negatives(str(bad))
