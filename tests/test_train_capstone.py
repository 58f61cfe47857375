"""The capstone's mini experiments (FiD-KD, forward KL, attention offset, JSD over Algorithm-1
data, fine-tuning on entity-augmented data) train from the real tasks for a few steps, with the settings of
test_train_feed_stages.py."""
import math

import gin
import pytest

from clqa_jax import gin_utils
from clqa_jax.synth import config as synth_config
from clqa_jax.synth import stages
from clqa_jax.trainer import loop
from clqa_jax.trainer import register_configurables  # noqa: F401
from fixtures.integration import mini_data

SMALL = ["BATCH_SIZE = 8", "NUM_PASSAGES = 2", "SAVE_EVERY = 0", "MT5Config.scan_layers = True",
         "loop.train.log_every_steps = 1", "EVAL_EVERY = 0", "BEST_METRIC = None",
         "TRAIN_STEPS = 2", "REFRESH_EVERY = 5", "INIT_CHECKPOINT = None"]

# experiment -> (its term's metric, the model option it sets)
EXPERIMENTS = {
    "mini_fidkd.gin": ("loss/fidkd", "reader_relevance_mode = 'fidkd_logits'"),
    "mini_capstone_forward.gin": ("loss/reader_kl",
                                  "reader_relevance_mode = 'all_layers_probs'"),
    "mini_attention_offset.gin": ("loss/retriever_kl", "attention_offset_weight = 0.01"),
}


@pytest.fixture(scope="module")
def root():
  old = mini_data.enable_compilation_cache()
  yield mini_data.data_root()
  mini_data.restore_compilation_cache(old)


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_capstone_experiment_trains(root, tmp_path, name):
  metric, option = EXPERIMENTS[name]
  gin.clear_config()
  try:
    gin_utils.parse_gin([f"experiments/{name}"], [
        f"data_root.path = '{root}'", *SMALL, f"MODEL_DIR = '{tmp_path / 'run'}'",
        f"RETRIEVAL_DIR = '{tmp_path / 'run' / 'retrieval'}'"])
    result = loop.train()
  finally:
    gin.clear_config()
  assert result.status == "completed" and result.step == 2
  assert metric in result.last_metrics
  assert all(math.isfinite(v) for v in result.last_metrics.values())
  assert option in (tmp_path / "run" / "config.gin").read_text()


def _train_one_language(root, tmp_path, experiment: str, task: str, lang: str):
  """2 steps of ``experiment`` on one language of ``task`` (the step-0 refresh re-retrieves
  every training question, so one language keeps it short); returns the completed result."""
  try:
    gin_utils.parse_gin([f"experiments/{experiment}"], [
        f"data_root.path = '{root}'", *SMALL, f"MODEL_DIR = '{tmp_path / 'run'}'",
        f"RETRIEVAL_DIR = '{tmp_path / 'run' / 'retrieval'}'",
        f"train_feed.TrainFeed.task = '{task}'", f"train_feed.TrainFeed.languages = ['{lang}']"])
    result = loop.train()
  finally:
    gin.clear_config()
  assert result.status == "completed" and result.step == 2
  return result


def test_capstone_jsd_trains_on_algorithm1_translations(root, tmp_path):
  """``clqa synth translate`` (dictionary backend) of the stage-2 XOR-Full questions feeds
  clqa.algorithm1.xor_full; q and its translation q' train together."""
  gin.clear_config()
  cfg = synth_config.SynthConfig(output_dir=root, translate_input="stage2/xor_full.fi.jsonl-*",
                                 translate_fields=("question", "answers"))
  result = stages.run_translate(cfg)
  assert sum(result["counts"]["records"].values()) > 0
  result = _train_one_language(root, tmp_path, "mini_capstone_jsd.gin", "algorithm1.xor_full",
                               "fi")
  assert {"loss/answer_jsd", "loss/relevance_jsd"} <= set(result.last_metrics)
  assert all(math.isfinite(v) for v in result.last_metrics.values())
  assert "CapstoneJsdObjective" in (tmp_path / "run" / "config.gin").read_text()


def test_finetune_trains_on_entity_augmented_questions(root, tmp_path):
  """``clqa synth entity_augment`` of the stage-2 XOR-Full questions feeds
  clqa.entity_augment.xor_full (mini_entity_augment.gin)."""
  gin.clear_config()
  cfg = synth_config.SynthConfig(output_dir=root, translate_input="stage2/xor_full.ko.jsonl-*")
  stages.run_linked_paragraphs(cfg)
  result = stages.run_entity_augment(cfg)
  assert result["counts"]["augmented"]["ko"] > 0
  result = _train_one_language(root, tmp_path, "mini_entity_augment.gin",
                               "entity_augment.xor_full", "ko")
  assert {"loss/reader_ce", "loss/retriever_kl"} <= set(result.last_metrics)
  assert "entity_augment.xor_full" in (tmp_path / "run" / "config.gin").read_text()
