"""LEXA as a run: experiments/mini_lexa.gin trains the tiny model on the mini corpus's topic
groups (synth all includes linked_paragraphs); a following run can start its queries from the
trained passage projection."""
import math

import gin
import jax
import numpy as np
import pytest

from clqa_jax import gin_utils
from clqa_jax.checkpoints import training as checkpointing
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

  trained = jax.device_get(stage1.state.params["retriever"])
  assert not np.allclose(trained["query_proj"], trained["passage_proj"])
  # A next run from it, queries initialised from the passage projection (no update: lr 0).
  tied = _run(root, [f"MODEL_DIR = '{tmp_path / 'tied'}'", "TRAIN_STEPS = 1",
                     "LEARNING_RATE = 0.0", f"INIT_CHECKPOINT = '{stage1.checkpoint_dir}'",
                     "training.CheckpointConfig.init_query_proj_from_passage_proj = True"])
  params = jax.device_get(tied.state.params["retriever"])
  np.testing.assert_array_equal(params["query_proj"], trained["passage_proj"])
  np.testing.assert_array_equal(params["passage_proj"], trained["passage_proj"])
