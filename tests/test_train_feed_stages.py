"""Training reads real tasks: the gin experiment files feed every stage from the SeqIO tasks and
stores built over a synthetic-data root (synth all on the mini corpus + a small vocabulary)."""
import json
import math
import os

import gin
import numpy as np
import pytest
import sentencepiece as spm

from clqa_jax import gin_utils
from clqa_jax.data import train_feed
from clqa_jax.data.retrieval_store import RetrievalStore
from clqa_jax.partitioning.partitioner import DataLayout
from clqa_jax.checkpoints import training as checkpointing
from clqa_jax.trainer import loop
from clqa_jax.trainer import register_configurables  # noqa: F401
from fixtures.integration import mini_data

# Small shapes: one question per device of the 8 forced CPU devices, 2 passages each. The dev
# evaluation is tested on its own (test_trainer_eval_hook.py).
SMALL = ["BATCH_SIZE = 8", "NUM_PASSAGES = 2", "SAVE_EVERY = 0", "MT5Config.scan_layers = True",
         "loop.train.log_every_steps = 1", "EVAL_EVERY = 0", "BEST_METRIC = None"]


@pytest.fixture(scope="module")
def root():
  old = mini_data.enable_compilation_cache()
  yield mini_data.data_root()
  mini_data.restore_compilation_cache(old)


def _records(root, pattern):
  import glob
  out = {}
  for path in glob.glob(os.path.join(root, pattern)):
    with open(path, encoding="utf-8") as f:
      for line in f:
        r = json.loads(line)
        out[r["id"]] = r
  return out


def _run(experiment, root, bindings):
  gin.clear_config()
  try:
    gin_utils.parse_gin([experiment], [f"data_root.path = '{root}'", *SMALL, *bindings])
    return loop.train()
  finally:
    gin.clear_config()


def test_stage1_feed_batches_follow_the_records_and_resume(root):
  gin.clear_config()
  gin.bind_parameter("data_root.path", root)
  try:
    feed = train_feed.TrainFeed(task="clqa.clr_pt", corpus="passages/psgs_w100.tsv", k=3, seed=1)
    source = feed(DataLayout(8, 4, 0, 2))
    records = _records(root, "stage1/clr_pt.*.jsonl-*")
    sp = spm.SentencePieceProcessor(model_file=os.path.join(root, "vocab", "spm.model"))
    questions, batch = source.next_with_questions()
    assert set(batch) == {"query_tokens", "passage_tokens", "passage_rows", "decoder_input_tokens",
                          "decoder_target_tokens", "decoder_loss_weights", "query_en_tokens"}
    assert batch["passage_tokens"].shape == (4, 3, 200)
    store = feed.passage_store
    for i, qid in enumerate(questions["qid"]):
      r = records[qid.decode()]
      # The teacher's first K pids, in order, are the passages.
      assert [store.pid(x) for x in batch["passage_rows"][i]] == r["teacher_pids"][:3]
      np.testing.assert_array_equal(batch["passage_tokens"][i], store.tokens(batch["passage_rows"][i]))
      assert sp.decode(batch["query_en_tokens"][i].tolist()) == "question: " + r["question_en"]
      target = batch["decoder_target_tokens"][i]
      assert sp.decode(target[target > 1].tolist()) in r["answers"]
      np.testing.assert_array_equal(batch["decoder_input_tokens"][i, 1:], target[:-1])
    later = [next(source) for _ in range(2)]
    state = source.get_state()
    assert state == {"position": 3}
    # A new source set to position 1 replays batches 1 and 2 exactly.
    resumed = feed(DataLayout(8, 4, 0, 2))
    resumed.set_state({"position": 1})
    for want in later:
      got = next(resumed)
      for name in want:
        np.testing.assert_array_equal(got[name], want[name])
  finally:
    gin.clear_config()


def test_query_length_cuts_the_query_tokens(root):
  gin.clear_config()
  gin.bind_parameter("data_root.path", root)
  try:
    full, short = (train_feed.TrainFeed(task="clqa.clr_pt", corpus="passages/psgs_w100.tsv", k=2,
                                        passage_length=32, **extra)
                   for extra in ({}, {"query_length": 6}))
    want = next(full(DataLayout(4, 4, 0, 1)))
    got = next(short(DataLayout(4, 4, 0, 1)))
    assert want["query_tokens"].shape == (4, 50) and got["query_tokens"].shape == (4, 6)
    assert (want["query_tokens"][:, 6:] != 0).any()  # the cut removes real tokens
    for name in ("query_tokens", "query_en_tokens"):
      np.testing.assert_array_equal(got[name], want[name][:, :6])
    np.testing.assert_array_equal(got["passage_tokens"], want["passage_tokens"])
  finally:
    gin.clear_config()


def test_every_stage_trains_from_real_tasks(root, tmp_path):
  teacher = _run("experiments/mini_teacher_en.gin", root,
                 [f"MODEL_DIR = '{tmp_path / 'teacher'}'", "TRAIN_STEPS = 2"])
  stage1 = _run("experiments/mini_clr_pt.gin", root,
                [f"MODEL_DIR = '{tmp_path / 'stage1'}'", "TRAIN_STEPS = 2",
                 f"TEACHER_CHECKPOINT = '{teacher.checkpoint_dir}'"])
  stage2 = _run("experiments/mini_mlqa_pt.gin", root,
                [f"MODEL_DIR = '{tmp_path / 'stage2'}'", "TRAIN_STEPS = 2", "REFRESH_EVERY = 2",
                 f"RETRIEVAL_DIR = '{tmp_path / 'stage2' / 'retrieval'}'",
                 f"INIT_CHECKPOINT = '{stage1.checkpoint_dir}'"])
  finetune = _run("experiments/mini_finetune.gin", root,
                  [f"MODEL_DIR = '{tmp_path / 'ft'}'", "TRAIN_STEPS = 1", "REFRESH_EVERY = 5",
                   f"RETRIEVAL_DIR = '{tmp_path / 'ft' / 'retrieval'}'",
                   f"INIT_CHECKPOINT = '{stage2.checkpoint_dir}'"])
  for name, result, steps in (("teacher", teacher, 2), ("stage1", stage1, 2),
                              ("stage2", stage2, 2), ("ft", finetune, 1)):
    assert result.status == "completed" and result.step == steps, name
    assert all(math.isfinite(v) for v in result.last_metrics.values()), name
    assert checkpointing.Checkpointer(result.checkpoint_dir).latest_step() == steps, name
    config = (tmp_path / name / "config.gin").read_text()
    assert "TrainFeed" in config, name
  # Stage 1 distilled the teacher (its terms are reported) on parallel queries.
  assert {"loss/retrieval_kd_en", "loss/retrieval_kd_xx", "loss/attention_kl"} <= set(
      stage1.last_metrics)
  # Stage 2 refreshed at step 0 for the 2-step window; fine-tuning for all of its questions.
  store2 = RetrievalStore(str(tmp_path / "stage2" / "retrieval" / "process_00000"))
  assert store2.versions() == [0] and len(store2.latest()) >= 1
  store_ft = RetrievalStore(str(tmp_path / "ft" / "retrieval" / "process_00000"))
  train_questions = _records(root, "xor/xor_train_retrieve_eng_span.jsonl")
  assert len(store_ft.latest()) == len(train_questions)


@pytest.mark.parametrize("field,value", [("passage_length", 201), ("passage_length", 1),
                                         ("query_length", 51), ("query_length", 1),
                                         ("answer_length", 51)])
def test_feed_lengths_are_checked_against_the_stored_limits(field, value):
  with pytest.raises(ValueError, match=field):
    train_feed.TrainFeed(task="clqa.clr_pt", corpus="passages/psgs_w100.tsv", **{field: value})


def test_feed_dimensions_follow_the_configured_lengths():
  feed = train_feed.TrainFeed.__new__(train_feed.TrainFeed)
  feed.k, feed.passage_length, feed.answer_length, feed.labelled_pairs = 4, 96, 16, False
  feed.query_length = 24
  assert feed.feature_dimensions() == dict(num_passages=4, query_length=24, passage_length=96,
                                           target_length=16)
