"""Reader pre-training by span corruption: the feed's FiD features (one corrupted passage, span
targets) and gin/experiments/mini_span_corruption.gin training a few steps."""
import math
import types

import gin
import numpy as np
import pytest

from clqa_jax import gin_utils
from clqa_jax.data import paths
from clqa_jax.data import span_corruption_feed
from clqa_jax.data import train_feed
from clqa_jax.data import vocab as vocab_lib
from clqa_jax.trainer import loop
from clqa_jax.trainer import register_configurables  # noqa: F401
from fixtures.integration import mini_data

SMALL = ["BATCH_SIZE = 8", "SAVE_EVERY = 0", "MT5Config.scan_layers = True",
         "loop.train.log_every_steps = 1", "BEST_METRIC = None", "TRAIN_STEPS = 2"]


@pytest.fixture(scope="module")
def root():
  old = mini_data.enable_compilation_cache()
  yield mini_data.data_root()
  mini_data.restore_compilation_cache(old)


def _split_at(tokens, sentinels):
  """The runs of ``tokens`` after each of ``sentinels`` in turn (expected in that order)."""
  runs, j = [], 0
  for t in tokens:
    if j < len(sentinels) and t == sentinels[j]:
      runs.append([])
      j += 1
    elif runs:
      runs[-1].append(t)
    else:
      runs.append([t])
  assert j == len(sentinels)
  return runs


def test_targets_fit():
  assert span_corruption_feed.max_tokens_for_targets(50, 0.15, 3.0, 199) == 199  # 30 + 10 + 1
  n = span_corruption_feed.max_tokens_for_targets(20, 0.15, 3.0, 199)
  assert round(n * 0.15) + round(round(n * 0.15) / 3) + 1 <= 20 < (
      round((n + 1) * 0.15) + round(round((n + 1) * 0.15) / 3) + 1)


def test_feed_features_rebuild_the_passages(root):
  gin.clear_config()
  try:
    gin.bind_parameter("data_root.path", root)
    feed = span_corruption_feed.SpanCorruptionFeed(corpus="passages/all_w100.tsv",
                                                   languages=("fi", "ja"), sentinel_end=2560)
    source = feed(types.SimpleNamespace(per_process_batch_size=8, shard_id=0, num_shards=1))
    store = train_feed.open_passage_store("passages/all_w100.tsv")
    vocab = vocab_lib.task_vocabulary()
    size = 2560  # sentinels above the small vocabulary's 2500 pieces
    assert vocab.vocab_size == 2500
    batch = next(source)
    assert batch["passage_tokens"].shape == (8, 1, 200)
    assert batch["decoder_target_tokens"].shape == (8, 50)
    assert vocab.decode(batch["query_tokens"][0].tolist()) == "question:"
    for i, row in enumerate(batch["passage_rows"][:, 0]):
      assert store.pid(row).split("_")[0] in ("fi", "ja")
      original = store.tokens(np.array([row]))[0]
      original = original[original != 0].tolist()[:-1][:199]  # without EOS, cut to fit T
      noise = round(len(original) * 0.15)
      sentinels = [size - 1 - j for j in range(round(noise / 3))]   # from the vocabulary's end
      inputs = [t for t in batch["passage_tokens"][i, 0].tolist() if t]
      targets = [t for t in batch["decoder_target_tokens"][i].tolist() if t]
      assert inputs[-1] == targets[-1] == vocab.eos_id
      assert len(targets) == noise + len(sentinels) + 1
      # inputs = kept_1 s_1 kept_2 s_2 ... kept_m s_m; targets = s_1 span_1 ... s_m span_m.
      kept = _split_at(inputs[:-1], sentinels)
      spans = _split_at(targets[:-1], sentinels) + [[]]
      assert len(kept) == len(spans) == len(sentinels) + 1
      rebuilt = [x for a, b in zip(kept, spans) for x in a + b]
      assert rebuilt == original
      assert batch["decoder_input_tokens"][i, 0] == 0
      assert (batch["decoder_input_tokens"][i, 1:] == batch["decoder_target_tokens"][i, :-1]).all()
    # Resuming at a position replays the same stream.
    second = next(source)
    again = feed(types.SimpleNamespace(per_process_batch_size=8, shard_id=0, num_shards=1))
    again.set_state({"position": 1})
    assert all(np.array_equal(second[k], v) for k, v in next(again).items())
  finally:
    gin.clear_config()


def test_mini_span_corruption_trains(root, tmp_path):
  gin.clear_config()
  try:
    gin_utils.parse_gin(["experiments/mini_span_corruption.gin"], [
        f"data_root.path = '{root}'", *SMALL, f"MODEL_DIR = '{tmp_path / 'run'}'"])
    result = loop.train()
  finally:
    gin.clear_config()
  assert result.status == "completed" and result.step == 2
  metrics = result.last_metrics
  assert metrics["loss/reader_ce"] > 0
  assert metrics["loss"] == metrics["loss/reader_ce"]                 # the reader's loss alone
  assert all(math.isfinite(v) for v in result.last_metrics.values())
  assert "SpanCorruptionFeed" in (tmp_path / "run" / "config.gin").read_text()
