"""LEXA as a run: experiments/mini_lexa.gin trains the tiny model on the mini corpus's topic
groups (synth all includes linked_paragraphs); one mining round with the stage-1 params (the
same-language-NN fraction before and after) feeds stage 2; a following run can start its
queries from the trained passage projection."""
import os

import math

import gin
import jax
import numpy as np
import pytest

from clqa_jax import gin_utils
from clqa_jax.checkpoints import training as checkpointing
from clqa_jax.checkpoints.exported import read_model_config
from clqa_jax.models.model_api import UnifiedModel
from clqa_jax.trainer import lexa_mining
from clqa_jax.trainer import state_init
from clqa_jax.trainer import loop
from clqa_jax.trainer import register_configurables  # noqa: F401
from fixtures.integration import mini_data

SMALL = ["BATCH_SIZE = 8", "N_MAX = 4", "SAVE_EVERY = 0", "MT5Config.scan_layers = True",
         "topic_feed.TopicGroupFeed.passage_length = 48", "loop.train.log_every_steps = 1"]


@pytest.fixture(scope="module")
def root():
  old = mini_data.enable_compilation_cache()
  yield mini_data.data_root()
  mini_data.restore_compilation_cache(old)


def _run(root, bindings):
  gin.clear_config()
  try:
    gin_utils.parse_gin(["experiments/mini_lexa.gin"],
                        [f"data_root.path = '{root}'", *SMALL, *bindings])
    return loop.train()
  finally:
    gin.clear_config()


def test_mini_lexa_trains_and_offers_the_passage_projection_to_queries(root, tmp_path):
  stage1 = _run(root, [f"MODEL_DIR = '{tmp_path / 'lexa1'}'", "TRAIN_STEPS = 2"])
  assert stage1.status == "completed" and stage1.step == 2
  assert all(math.isfinite(v) for v in stage1.last_metrics.values())
  assert stage1.last_metrics["loss/lexa_contrastive"] > 0
  assert 2 <= stage1.last_metrics["lexa/positives"] <= 4     # documents per group, n_max = 4
  assert checkpointing.Checkpointer(stage1.checkpoint_dir).latest_step() == 2
  assert "TopicGroupFeed" in (tmp_path / "lexa1" / "config.gin").read_text()

  # One mining round: the probe before (initial params) and after stage 1, the store written.
  model = UnifiedModel.from_config(read_model_config(str(tmp_path / "lexa1")))
  groups = lexa_mining.read_groups(os.path.join(root, "linked_paragraphs",
                                                "paragraphs.jsonl-*-of-*"))
  vocab = os.path.join(root, "vocab", "spm.model")
  initial = state_init.model_init_fn(model)(jax.random.PRNGKey(42))["params"]
  before = lexa_mining.mine(model, initial, groups, vocab, str(tmp_path / "probe0"))
  store = str(tmp_path / "lexa1" / "hard_negatives.jsonl")
  after = lexa_mining.mine(model, jax.device_get(stage1.state.params), groups, vocab,
                           str(tmp_path / "mining"), out_path=store)
  for report in (before, after):
    assert 0.0 <= report.same_language_nn_fraction <= 1.0
    assert report.groups == len(groups) and report.documents == sum(map(len, groups))
  assert after.negatives == 3 * len(groups)
  stage2 = _run(root, [f"MODEL_DIR = '{tmp_path / 'lexa2'}'", "TRAIN_STEPS = 1",
                       "LEXA_TASK = 'clqa.lexa_pt.mined'", f"HARD_NEGATIVES = '{store}'",
                       f"INIT_CHECKPOINT = '{stage1.checkpoint_dir}'"])
  assert stage2.status == "completed" and math.isfinite(stage2.last_metrics["loss"])

  trained = jax.device_get(stage1.state.params["retriever"])
  assert not np.allclose(trained["query_proj"], trained["passage_proj"])
  # A next run from it, queries initialised from the passage projection (no update: lr 0).
  tied = _run(root, [f"MODEL_DIR = '{tmp_path / 'tied'}'", "TRAIN_STEPS = 1",
                     "LEARNING_RATE = 0.0", f"INIT_CHECKPOINT = '{stage1.checkpoint_dir}'",
                     "training.CheckpointConfig.init_query_proj_from_passage_proj = True"])
  params = jax.device_get(tied.state.params["retriever"])
  np.testing.assert_array_equal(params["query_proj"], trained["passage_proj"])
  np.testing.assert_array_equal(params["passage_proj"], trained["passage_proj"])
