"""Every gin/experiments file parses and wires the task-fed batch source (and, for stage 2 and
fine-tuning, the refresh hook sharing the same feed) and the dev evaluation with its kept-best
metric to the training loop."""
import glob
import os

import gin
import pytest

from clqa_jax import gin_utils
from clqa_jax.data import train_feed
from clqa_jax.checkpoints import training
from clqa_jax.trainer import eval_hook
from clqa_jax.trainer import refresh
from clqa_jax.trainer import register_configurables  # noqa: F401

EXPERIMENTS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(
    os.path.dirname(os.path.dirname(__file__)), "gin", "experiments", "*.gin")))
# UMR and self-training experiments run the rounds driver (tests/test_umr_rounds.py,
# tests/test_self_training_rounds.py), not one loop.train; LEXA trains on topic groups, not the
# TrainFeed (tests/test_lexa_run.py); span corruption reads passages alone
# (tests/test_train_span_corruption.py).
RUNS = [e for e in EXPERIMENTS if e not in ("mini_common.gin", "xor_common.gin",
                                            "xor_refresh.gin", "dev_eval.gin", "mini_lexa.gin",
                                            "mini_span_corruption.gin", "mini_self_training.gin")
        and not e.endswith("_umr.gin")]
# experiment -> (task, corpus, refresh window or None)
EXPECTED = {
    "mini_teacher_en.gin": ("clqa.teacher_en", "passages/psgs_w100.tsv", None),
    "mini_clr_pt.gin": ("clqa.clr_pt", "passages/psgs_w100.tsv", None),
    "mini_mlqa_pt.gin": ("clqa.mlqa_pt.xor_retrieve", "passages/psgs_w100.tsv", "next"),
    "mini_finetune.gin": ("clqa.xor_retrieve", "passages/psgs_w100.tsv", "all"),
    "mini_finetune_full.gin": ("clqa.xor_full", "passages/all_w100.tsv", "all"),
    "mini_fidkd.gin": ("clqa.xor_retrieve", "passages/psgs_w100.tsv", "all"),
    "mini_capstone_forward.gin": ("clqa.xor_retrieve", "passages/psgs_w100.tsv", "all"),
    "mini_capstone_jsd.gin": ("clqa.algorithm1.xor_full", "passages/all_w100.tsv", "all"),
    "mini_entity_augment.gin": ("clqa.entity_augment.xor_full", "passages/all_w100.tsv", "all"),
    "mini_attention_offset.gin": ("clqa.xor_retrieve", "passages/psgs_w100.tsv", "all"),
    "mini_dpr.gin": ("clqa.xor_retrieve", "passages/psgs_w100.tsv", "all"),
    "mini_mixcse.gin": ("clqa.xor_retrieve", "passages/psgs_w100.tsv", "all"),
    "xor_retrieve_mixcse.gin": ("clqa.xor_retrieve", "passages/psgs_w100.tsv", "all"),
    "xor_retrieve_clr_pt.gin": ("clqa.clr_pt", "passages/psgs_w100.tsv", None),
    "xor_retrieve_mlqa_pt.gin": ("clqa.mlqa_pt.xor_retrieve", "passages/psgs_w100.tsv", "next"),
    "xor_retrieve_nq_finetune.gin": ("clqa.nq.en", "passages/psgs_w100.tsv", "all"),
    "xor_retrieve_finetune.gin": ("clqa.xor_retrieve", "passages/psgs_w100.tsv", "all"),
    "xor_full_mlqa_pt.gin": ("clqa.mlqa_pt.xor_full", "passages/all_w100.tsv", "next"),
    "xor_full_finetune.gin": ("clqa.xor_full", "passages/all_w100.tsv", "all"),
}
MINI_DEV = ("xor-retrieve", "xor/xor_dev_retrieve_eng_span.jsonl", "passages/psgs_w100.tsv",
            "eval/r@2kt")
XOR_RETRIEVE_DEV = ("xor-retrieve", "xor/xor_dev_retrieve_eng_span_v1_1.jsonl",
                    "passages/psgs_w100.tsv", "eval/r@2kt")
XOR_FULL_DEV = ("xor-full", "xor/xor_dev_full_v1_1.jsonl", "passages/all_w100.tsv", "eval/f1")
# experiment -> (task, dev file, corpus, kept-best metric) of its dev evaluation, or None
DEV_EVAL = {
    "mini_teacher_en.gin": None, "mini_clr_pt.gin": MINI_DEV, "mini_mlqa_pt.gin": MINI_DEV,
    "mini_finetune.gin": MINI_DEV, "mini_fidkd.gin": MINI_DEV,
    "mini_finetune_full.gin": ("xor-full", "xor/xor_dev_full.jsonl", "passages/all_w100.tsv",
                               "eval/f1"),
    "mini_capstone_forward.gin": MINI_DEV, "mini_attention_offset.gin": MINI_DEV,
    "mini_capstone_jsd.gin": ("xor-full", "xor/xor_dev_full.jsonl", "passages/all_w100.tsv",
                              "eval/f1"),
    "mini_entity_augment.gin": ("xor-full", "xor/xor_dev_full.jsonl", "passages/all_w100.tsv",
                                "eval/f1"),
    "mini_dpr.gin": MINI_DEV, "mini_mixcse.gin": MINI_DEV,
    "xor_retrieve_mixcse.gin": XOR_RETRIEVE_DEV,
    "xor_retrieve_clr_pt.gin": XOR_RETRIEVE_DEV,
    "xor_retrieve_mlqa_pt.gin": XOR_RETRIEVE_DEV, "xor_retrieve_nq_finetune.gin": XOR_RETRIEVE_DEV,
    "xor_retrieve_finetune.gin": XOR_RETRIEVE_DEV, "xor_full_mlqa_pt.gin": XOR_FULL_DEV,
    "xor_full_finetune.gin": XOR_FULL_DEV,
}


# Retriever-only experiments: labelled (positive, hard negative) batches, no reader evaluated.
RETRIEVER_ONLY = ("mini_dpr.gin", "mini_mixcse.gin", "xor_retrieve_mixcse.gin")


def test_every_run_file_is_covered():
  assert sorted(RUNS) == sorted(EXPECTED) == sorted(DEV_EVAL)


@pytest.mark.parametrize("name", RUNS)
def test_experiment_wires_feed_and_refresh(name):
  task, corpus, window = EXPECTED[name]
  gin.clear_config()
  try:
    # The required settings every header lists (unused ones just define a macro).
    gin_utils.parse_gin([f"experiments/{name}"], [
        "MODEL_DIR = '/tmp/x'", "RETRIEVAL_DIR = '/tmp/x/r'", "TEACHER_CHECKPOINT = '/tmp/t'",
        "INIT_CHECKPOINT = '/tmp/i'"])
    _check_dev_eval(name)
    feed = gin.query_parameter("loop.train.batches").scoped_configurable_fn()
    assert isinstance(feed, train_feed.TrainFeed)
    assert (feed.task, feed.corpus) == (task, corpus)
    assert feed.labelled_pairs == (name in RETRIEVER_ONLY)
    assert feed.uses_retrieval_store == (window is not None)
    every = gin.query_parameter("loop.train.refresh_every_steps")
    if window is None:
      with pytest.raises(ValueError, match="no value bound"):
        gin.query_parameter("loop.train.refresh_hook")
      return
    hook = gin.query_parameter("loop.train.refresh_hook").scoped_configurable_fn()
    assert isinstance(hook, refresh.PassageRefresh)
    assert hook.feed is feed and hook.window == window
    assert hook.every == gin.query_parameter("%REFRESH_EVERY") and every is not None
  finally:
    gin.clear_config()


def _check_dev_eval(name):
  expected = DEV_EVAL[name]
  if expected is None:
    with pytest.raises(ValueError, match="no value bound"):
      gin.query_parameter("loop.train.eval_hook")
    assert training.CheckpointConfig().best_metric is None
    return
  hook = gin.query_parameter("loop.train.eval_hook").scoped_configurable_fn()
  assert isinstance(hook, eval_hook.DevEvaluation)
  assert (hook.task, hook.data_file, hook.corpus) == expected[:3]
  reader_k = 0 if name in RETRIEVER_ONLY else gin.query_parameter("%NUM_PASSAGES")
  assert hook.work_dir == "/tmp/x" and hook.reader_k == reader_k
  assert gin.query_parameter("%EVAL_EVERY") > 0
  assert training.CheckpointConfig().best_metric == expected[3]
