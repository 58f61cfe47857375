"""LEXA mining on hand-built vectors: the same-language nearest-neighbour fraction (O3, the
paper's Fig. 2b) and the nearest other-topic paragraphs of each group."""
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
