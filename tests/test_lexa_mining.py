"""LEXA mining on hand-built vectors: the same-language nearest-neighbour fraction (O3, the
paper's Fig. 2b) and the nearest other-topic paragraphs of each group; the query shards of
several processes merge to the one-process result."""
import json

import numpy as np
import pytest

from clqa_jax.trainer import lexa_mining


def test_same_language_nn_fraction_on_hand_built_vectors():
  vectors = np.array([
      [1.0, 0.0, 0.0],    # 0 en: itself scores 1.0, its nearest *other* is 1 (fi)
      [0.9, 0.0, 0.0],    # 1 fi: nearest other 0 (en)
      [0.0, 1.0, 0.0],    # 2 en: nearest other 3 (en)
      [0.0, 0.8, 0.0],    # 3 en: nearest other 2 (en)
      [0.0, 0.0, 0.5],    # 4 ja: nearest other: a tie at 0 among 0..3 -> row 0 (en)
  ])
  np.testing.assert_array_equal(lexa_mining.nearest_other(vectors), [1, 0, 3, 2, 0])
  assert lexa_mining.same_language_nn_fraction(vectors, ["en", "fi", "en", "en", "ja"]) == 2 / 5
  # Language clusters (every NN same-language) vs topic clusters (none).
  langs = ["en", "fi", "en", "fi"]
  by_lang = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.0], [0.0, 0.9]])
  by_topic = np.array([[1.0, 0.0], [0.9, 0.0], [0.0, 1.0], [0.0, 0.9]])
  assert lexa_mining.same_language_nn_fraction(by_lang, langs) == 1.0
  assert lexa_mining.same_language_nn_fraction(by_topic, langs) == 0.0
  with pytest.raises(ValueError, match="one language per vector"):
    lexa_mining.same_language_nn_fraction(by_lang, langs[:3])


def test_mined_negatives_are_the_nearest_other_topic_paragraphs():
  topics = ["A", "A", "B", "B", "C", "D", "E"]
  vectors = np.array([
      [1.0, 0.0, 0.0],
      [0.0, 1.0, 0.0],
      [0.9, 0.1, 0.0],   # B near A's first document
      [0.0, 0.0, 1.0],
      [0.1, 0.8, 0.0],   # C near A's second document
      [0.5, 0.5, 0.0],   # D near both of A's
      [0.0, 0.0, 0.2],   # E near nothing of A
  ])
  mined = lexa_mining.mine_hard_negatives(vectors, topics, per_group=3)
  assert set(mined) == set("ABCDE")
  # A's candidates, each scored by its best dot product with A's documents: B(row 2) 0.9,
  # C(row 4) 0.8, D(row 5) 0.5; never a document of A.
  assert mined["A"] == [(2, pytest.approx(0.9)), (4, pytest.approx(0.8)),
                        (5, pytest.approx(0.5))]
  for topic, picks in mined.items():
    assert len(picks) == 3
    assert all(topics[r] != topic for r, _ in picks)
    assert [s for _, s in picks] == sorted((s for _, s in picks), reverse=True)


def _doc(topic, lang):
  from clqa_jax.data.topic_groups import LinkedParagraph
  return LinkedParagraph(topic_id=topic, lang=lang, title=topic, text=f"{topic} {lang}")


def test_query_shards_merge_to_the_single_process_result(tmp_path):
  """Two (simulated) processes each mine for their half of the groups over all the vectors;
  process 0's merge equals one process mining everything, and a rerun reads the shards back."""
  rng = np.random.default_rng(0)
  groups = [[_doc(t, l) for l in langs.split()] for t, langs in
            [("A", "en fi"), ("B", "en ja ru"), ("C", "fi ko"), ("D", "en ja"), ("E", "ru fi")]]
  documents = [d for g in groups for d in g]
  vectors = rng.normal(size=(len(documents), 4)).astype(np.float32)
  one = tmp_path / "one"
  lexa_mining.mine_shard(vectors, groups, str(one), 0, 1, per_group=2)
  want = lexa_mining.merge_shards(str(one), 1, str(one / "mined.jsonl"))
  two = tmp_path / "two"
  results = {shard: lexa_mining.mine_shard(vectors, groups, str(two), shard, 2, per_group=2)
             for shard in (1, 0)}
  got = lexa_mining.merge_shards(str(two), 2, str(two / "mined.jsonl"))
  assert got == want
  assert (two / "mined.jsonl").read_text() == (one / "mined.jsonl").read_text()
  # The merge holds every group once, in group order, as the unsharded mining computes it.
  mined = lexa_mining.mine_hard_negatives(vectors, [d.topic_id for d in documents], 2)
  lines = [json.loads(line) for line in (two / "mined.jsonl").read_text().splitlines()]
  assert [x["topic_id"] for x in lines] == list("ABCDE")
  for x in lines:
    assert x["scores"] == [round(s, 6) for _, s in mined[x["topic_id"]]]
  langs = np.array([d.lang for d in documents])
  assert got[:2] == (int(np.sum(langs[lexa_mining.nearest_other(vectors)] == langs)),
                     len(documents))
  # Shard 1 holds groups 2..4 (C, D, E): only their documents asked.
  assert list(lexa_mining.shard_groups(5, 1, 2)) == [2, 3, 4]
  # Resumption: a finished shard is read back, not recomputed (other vectors change nothing);
  # one mined with other settings is an error.
  again = lexa_mining.mine_shard(vectors * 0, groups, str(two), 0, 2, per_group=2)
  assert again == results[0] and len(again["lines"]) == 2
  with pytest.raises(ValueError, match="was mined with"):
    lexa_mining.mine_shard(vectors, groups, str(two), 0, 2, per_group=3)
  with pytest.raises(FileNotFoundError, match="shard 0 of 3"):
    lexa_mining.merge_shards(str(two), 3, None)
