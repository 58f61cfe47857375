"""The capstone's self-training rounds (peer-methods 1.4, 1.8) on the mini corpus: round 1 trains
on the gold passages alone, round 2 starts from round 1's checkpoint and takes its hard negatives
from round 1's model's retrieval (answer-free, gold passages first); a rerun skips both rounds.
Plus the labelling rules on hand-made cases."""
import json
import math
import os

import numpy as np
import pytest

from clqa_jax import gin_utils
from clqa_jax.checkpoints import training as checkpointing
from clqa_jax.data import readers
from clqa_jax.data.records import Passage, Question
from clqa_jax.data.retrieval_store import RetrievalStore
from clqa_jax.trainer import register_configurables  # noqa: F401
from clqa_jax.trainer import self_training
from clqa_jax.trainer import umr_rounds
from fixtures.integration import mini_data

HARD_NEGATIVES = 2
SMALL = ["BATCH_SIZE = 8", "TRAIN_STEPS = 1", "MAX_POSITIVES = 1",
         f"HARD_NEGATIVES = {HARD_NEGATIVES}", f"NUM_PASSAGES = {1 + HARD_NEGATIVES}",
         "MINING_DEPTH = 8", "MT5Config.scan_layers = True", "loop.train.log_every_steps = 1",
         "umr_rounds.UmrRounds.encode_batch_size = 128"]


def test_gold_passages_are_the_dataset_s_else_answer_matches():
  questions = [Question("a", "fi", "q", ("Helsinki",)), Question("b", "ja", "q", ("Oslo",)),
               Question("c", "ko", "q", ("yes",))]
  passages = [Passage("1", "Tokyo is big.", "Japan"), Passage("2", "Oslo is in Norway.", "Norway"),
              Passage("3", "Helsinki is the capital.", "Finland"),
              Passage("4", "Oslo again.", "Oslo")]
  gold = self_training.gold_pids(questions, {"a": ["Finland", "Japan"]}, passages, 2)
  # a: its gold titles' passages (not answer matches); b: answer matches; c: "yes" never matches.
  assert gold == {"a": ["1", "3"], "b": ["2", "4"], "c": []}
  assert self_training.gold_pids(questions, {}, passages, 1)["b"] == ["2"]


def test_training_rows_put_gold_first_then_answer_free_retrievals():
  rows, labels = self_training.training_rows([7], [3, 7, 5, -1, 9, 2, 4], {5}, 3, 5)
  np.testing.assert_array_equal(rows, [7, 3, 9, 2, -1])
  np.testing.assert_array_equal(labels, [1, 0, 0, 0, -np.inf])
  with pytest.raises(ValueError, match="do not fit"):
    self_training.training_rows([1, 2], [], set(), 3, 4)


@pytest.fixture(scope="module")
def root():
  old = mini_data.enable_compilation_cache()
  yield mini_data.data_root()
  mini_data.restore_compilation_cache(old)


def _rounds(root, work):
  with gin_utils.scoped_config():
    gin_utils.parse_gin(["experiments/mini_self_training.gin"], [
        f"data_root.path = '{root}'", f"SELF_TRAINING_DIR = '{work}'", *SMALL])
    return umr_rounds.umr_rounds()


def _store(path):
  version = RetrievalStore(os.path.join(path, "process_00000")).latest()
  qids = version.qids()
  return version, dict(zip(qids, version.lookup(qids).tolist())), dict(
      zip(qids, version.lookup_scores(qids).tolist()))


def test_two_self_training_rounds_on_the_mini_corpus(root, tmp_path):
  work = tmp_path / "self_training"
  records = _rounds(root, work)
  assert [(r["round"], r["mode"]) for r in records] == [(1, "self_training"),
                                                        (2, "self_training")]
  round_1 = checkpointing.run_checkpoints_dir(str(work / "round_1" / "train"))
  assert records[0]["start"] is None and records[1]["start"] == round_1
  for r in records:
    assert r["step"] == 1 and math.isfinite(r["metrics"]["loss/multi_positive"])
    assert r["metrics"]["loss/multi_positive"] > 0
  assert "MultiPositiveObjective" in (work / "round_2" / "train" / "config.gin").read_text()

  questions_path = os.path.join(root, "xor", "xor_train_retrieve_eng_span.jsonl")
  questions = {q.qid: q for q in readers.read_xor_jsonl(questions_path)}
  corpus = list(readers.read_passages_tsv(os.path.join(root, "passages", "psgs_w100.tsv")))
  title_of_row = [p.title for p in corpus]
  text_of_row = [p.text for p in corpus]
  with open(questions_path, encoding="utf-8") as f:
    gold_titles = {o["id"]: set(o["gold_titles"]) for o in map(json.loads, f)}
  # Round 1: each question's gold passage alone (in-batch negatives only).
  assert records[0]["store"] == str(work / "round_1" / "labelled")
  assert records[0]["negatives_from"] is None
  _, rows_1, labels_1 = _store(records[0]["store"])
  assert set(rows_1) == set(questions)
  for qid, rows in rows_1.items():
    assert title_of_row[rows[0]] in gold_titles[qid] and labels_1[qid][0] == 1
    assert rows[1:] == [-1] * HARD_NEGATIVES
  # Round 2 retrieved with round 1's model and took its hard negatives from that retrieval.
  retrieval = str(work / "round_2" / "retrieval")
  assert records[1]["negatives_from"] == retrieval
  version, retrieved, _ = _store(retrieval)
  assert (version.meta["retriever"], version.meta["checkpoint"]) == ("dense", round_1)
  assert version.k == 8
  labelled, rows_2, labels_2 = _store(records[1]["store"])
  assert labelled.meta["negatives_from"] == retrieval
  negatives = 0
  for qid, rows in rows_2.items():
    assert rows[0] == rows_1[qid][0] and labels_2[qid][0] == 1
    want = [r for r in retrieved[qid] if r >= 0 and r != rows[0] and not
            self_training.contains_answer(text_of_row[r], questions[qid].answers)]
    assert rows[1:] == (want[:HARD_NEGATIVES] + [-1] * HARD_NEGATIVES)[:HARD_NEGATIVES]
    assert all(label == 0 for label in labels_2[qid][1:1 + len(want[:HARD_NEGATIVES])])
    negatives += len(want[:HARD_NEGATIVES])
  assert negatives > len(rows_2)  # hard negatives were found for most questions
  # A rerun skips both finished rounds.
  assert _rounds(root, work) == records
