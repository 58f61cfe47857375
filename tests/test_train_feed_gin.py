"""Every gin/experiments file parses and wires the task-fed batch source (and, for stage 2 and
fine-tuning, the refresh hook sharing the same feed) to the training loop."""
import glob
import os

import gin
import pytest

from clqa_jax import gin_utils
from clqa_jax.data import train_feed
from clqa_jax.trainer import refresh
from clqa_jax.trainer import register_configurables  # noqa: F401

EXPERIMENTS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(
    os.path.dirname(os.path.dirname(__file__)), "gin", "experiments", "*.gin")))
RUNS = [e for e in EXPERIMENTS if e not in ("mini_common.gin", "xor_common.gin",
                                            "xor_refresh.gin")]
# experiment -> (task, corpus, refresh window or None)
EXPECTED = {
    "mini_teacher_en.gin": ("clqa.clr_pt", "passages/psgs_w100.tsv", None),
    "mini_clr_pt.gin": ("clqa.clr_pt", "passages/psgs_w100.tsv", None),
    "mini_mlqa_pt.gin": ("clqa.mlqa_pt.xor_retrieve", "passages/psgs_w100.tsv", "next"),
    "mini_finetune.gin": ("clqa.xor_retrieve", "passages/psgs_w100.tsv", "all"),
    "xor_retrieve_clr_pt.gin": ("clqa.clr_pt", "passages/psgs_w100.tsv", None),
    "xor_retrieve_mlqa_pt.gin": ("clqa.mlqa_pt.xor_retrieve", "passages/psgs_w100.tsv", "next"),
    "xor_retrieve_nq_finetune.gin": ("clqa.nq.en", "passages/psgs_w100.tsv", "all"),
    "xor_retrieve_finetune.gin": ("clqa.xor_retrieve", "passages/psgs_w100.tsv", "all"),
    "xor_full_mlqa_pt.gin": ("clqa.mlqa_pt.xor_full", "passages/all_w100.tsv", "next"),
    "xor_full_finetune.gin": ("clqa.xor_full", "passages/all_w100.tsv", "all"),
}


def test_every_run_file_is_covered():
  assert sorted(RUNS) == sorted(EXPECTED)


@pytest.mark.parametrize("name", RUNS)
def test_experiment_wires_feed_and_refresh(name):
  task, corpus, window = EXPECTED[name]
  gin.clear_config()
  try:
    # The required settings every header lists (unused ones just define a macro).
    gin_utils.parse_gin([f"experiments/{name}"], [
        "MODEL_DIR = '/tmp/x'", "RETRIEVAL_DIR = '/tmp/x/r'", "TEACHER_CHECKPOINT = '/tmp/t'",
        "INIT_CHECKPOINT = '/tmp/i'"])
    feed = gin.query_parameter("loop.train.batches").scoped_configurable_fn()
    assert isinstance(feed, train_feed.TrainFeed)
    assert (feed.task, feed.corpus) == (task, corpus)
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
