"""The retriever-only DPR NLL and MixCSE objectives (peer-methods 2.3): the feed's labelled
(positive, hard negative) pairs, each objective against numpy on the batch that feed built,
and the mini experiments training a few steps."""
import math

import gin
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clqa_jax import gin_utils
from clqa_jax.data import passage_store as passage_store_lib
from clqa_jax.data import paths
from clqa_jax.data import train_feed
from clqa_jax.data.retrieval_store import RetrievalStore
from clqa_jax.losses import objectives
from clqa_jax.partitioning.partitioner import DataLayout
from clqa_jax.trainer import loop
from clqa_jax.trainer import register_configurables  # noqa: F401
from fixtures.integration import mini_data

DEPTH = 12  # stored passages searched for each question's pair


@pytest.fixture(scope="module")
def root():
  old = mini_data.enable_compilation_cache()
  yield mini_data.data_root()
  mini_data.restore_compilation_cache(old)


@pytest.fixture()
def labelled_feed(root, tmp_path):
  """A labelled-pairs feed over the mini XOR-Retrieve train questions, whose stored top-k is
  a fixed, per-question shuffle of the corpus rows."""
  gin.clear_config()
  gin.bind_parameter("data_root.path", root)
  try:
    feed = train_feed.TrainFeed(task="clqa.xor_retrieve", corpus="passages/psgs_w100.tsv",
                                retrieval=str(tmp_path / "retrieval"), k=DEPTH, seed=3,
                                labelled_pairs=True)
    store = feed.passage_store
    qids = [q.decode() for b in feed.question_batches(8, train=False) for q in b["qid"]]
    rng = np.random.default_rng(0)
    rows = np.stack([rng.permutation(len(store))[:DEPTH] for _ in qids])
    feed.retrieval_store.write(0, qids, rows, k=DEPTH)
    yield feed, dict(zip(qids, rows))
  finally:
    gin.clear_config()


def _bodies(feed, rows):
  """{row: raw corpus text} (the TSV, not the tokens the labeller decodes)."""
  return {r: p.text for r, p in passage_store_lib.read_passages(
      feed.passage_store, rows, paths.resolve(feed.corpus)).items()}


def test_pairs_are_the_first_answer_passage_and_the_first_answer_free_one(labelled_feed):
  feed, stored = labelled_feed
  source = feed(DataLayout(8, 8, 0, 1))
  questions, batch = source.next_with_questions()
  assert batch["passage_rows"].shape == (8, 2)
  assert batch["passage_tokens"].shape[:2] == (8, 2)
  texts = _bodies(feed, np.concatenate(list(stored.values())))
  found_positive = 0
  for i, qid in enumerate(questions["qid"]):
    answers = [a.decode() for a in questions["answers"][i] if a]
    ranked = stored[qid.decode()]
    with_answer = [r for r in ranked if any(a in texts[r] for a in answers)]
    without = [r for r in ranked if not any(a in texts[r] for a in answers)]
    want = [with_answer[0] if with_answer else -1, without[0] if without else -1]
    assert batch["passage_rows"][i].tolist() == want, qid
    found_positive += bool(with_answer)
  assert found_positive > 0  # the check saw real positives


def test_source_passage_is_the_positive(labelled_feed):
  feed, stored = labelled_feed
  labeller = feed(DataLayout(8, 8, 0, 1)).assembler.labeller
  store = feed.passage_store
  ranked = np.array([[3, 4, 5]], np.int32)
  src = store.pid(4)
  batch = {"source_pid": np.array([src.encode()]),
           "answers": np.array([[b"zzqq-not-in-any-passage"]])}
  # The source is the positive even though it is retrieved later; the first stored passage
  # other than it, answer-free, is the hard negative.
  assert labeller(batch, ranked).tolist() == [[4, 3]]
  with pytest.raises(KeyError, match="not in the passage store"):
    labeller({"source_pid": np.array([b"no-such-pid"]), "answers": batch["answers"]}, ranked)


class TableEncoder:
  """A stand-in retrieval head: the mean of a random embedding table over non-pad tokens."""

  def __init__(self, vocab=2560, dim=6):
    self.table = np.random.default_rng(5).normal(size=(vocab, dim)).astype(np.float32)

  def numpy(self, tokens):
    tokens = np.asarray(tokens)
    real = (tokens != 0)[..., None]
    return (self.table[tokens] * real).sum(-2) / np.maximum(real.sum(-2), 1)

  def embed_queries(self, params, tokens, *, rng=None, enable_dropout=False):
    real = (tokens != 0)[..., None]
    return (jnp.asarray(self.table)[tokens] * real).sum(-2) / jnp.maximum(real.sum(-2), 1)

  embed_passages = embed_queries


def np_log_softmax(x, mask):
  x = np.where(mask, np.asarray(x, np.float64), -np.inf)
  z = x - x.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _unit(x):
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@pytest.mark.parametrize("name", ["dpr_nll", "mixcse"])
def test_objective_matches_numpy_on_the_feed_batch(labelled_feed, name):
  feed, _ = labelled_feed
  batch = next(feed(DataLayout(8, 8, 0, 1)))
  b = len(batch["query_tokens"])
  rows = batch["passage_rows"]
  mask = rows >= 0
  assert mask[:, 1].all() and mask[:, 0].any()
  model = TableEncoder()
  q = model.numpy(batch["query_tokens"])
  p = model.numpy(batch["passage_tokens"])  # [B, 2, D]
  arrays = {k: jnp.asarray(v) for k, v in batch.items()}
  loss, metrics = objectives.objective_by_name(name).loss(
      None, arrays, model=model, rng=jax.random.PRNGKey(0), num_questions=b)
  flat = p.reshape(2 * b, -1)
  if name == "dpr_nll":
    log_p = np_log_softmax(q @ flat.T, mask.reshape(1, -1))
    per_q = [-log_p[i, 2 * i] if mask[i, 0] else 0.0 for i in range(b)]
  else:  # tau 0.05, lambda 0.2, the one hard negative (passage 1) mixed in
    qn, pn = _unit(q), _unit(flat).reshape(b, 2, -1)
    mixed = _unit(0.2 * pn[:, 0] + 0.8 * pn[:, 1])
    logits = np.concatenate([qn @ pn.reshape(2 * b, -1).T, (qn * mixed).sum(-1)[:, None]],
                            -1) / 0.05
    full_mask = np.concatenate([np.broadcast_to(mask.reshape(1, -1), (b, 2 * b)),
                                np.ones((b, 1), bool)], -1)
    log_p = np_log_softmax(logits, full_mask)
    per_q = [-log_p[i, 2 * i] if mask[i, 0] else 0.0 for i in range(b)]
  np.testing.assert_allclose(loss, np.sum(per_q) / b, rtol=1e-4)
  np.testing.assert_allclose(metrics[f"loss/{name}"], loss)


# NUM_PASSAGES is the depth searched for each question's labelled pair (an answer passage and
# an answer-free one): deep enough that the untrained model's ranking holds an answer passage
# for some question of every batch.
SMALL = ["BATCH_SIZE = 8", "NUM_PASSAGES = 32", "SAVE_EVERY = 0", "MT5Config.scan_layers = True",
         "loop.train.log_every_steps = 1", "EVAL_EVERY = 0", "BEST_METRIC = None",
         "TRAIN_STEPS = 2", "REFRESH_EVERY = 5", "INIT_CHECKPOINT = None"]


@pytest.mark.parametrize("name,metric", [("mini_dpr.gin", "loss/dpr_nll"),
                                         ("mini_mixcse.gin", "loss/mixcse")])
def test_mini_experiment_trains(root, tmp_path, name, metric):
  gin.clear_config()
  try:
    gin_utils.parse_gin([f"experiments/{name}"], [
        f"data_root.path = '{root}'", *SMALL, f"MODEL_DIR = '{tmp_path / 'run'}'",
        f"RETRIEVAL_DIR = '{tmp_path / 'run' / 'retrieval'}'"])
    result = loop.train()
  finally:
    gin.clear_config()
  assert result.status == "completed" and result.step == 2
  assert metric in result.last_metrics and result.last_metrics[metric] > 0
  assert all(math.isfinite(v) for v in result.last_metrics.values())
