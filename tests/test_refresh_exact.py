"""Passage refresh: after a refresh the batches carry the new passages, and the retrieval is the
exact search over the re-encoded corpus (a numpy reference over encode_passages /
encode_queries outputs), with each question's source passage excluded."""
import logging

import gin
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clqa_jax.data import train_feed
from clqa_jax.models import MT5Config, UnifiedConfig
from clqa_jax.models.model_api import UnifiedModel
from clqa_jax.models.unified import UnifiedRetrieverReader
from clqa_jax.partitioning.partitioner import DataLayout
from clqa_jax.trainer import refresh
from fixtures.integration import mini_data

K = 3
EVERY = 2
MODEL = UnifiedRetrieverReader(UnifiedConfig(MT5Config.preset("tiny", vocab_size=2560,
                                                              dropout_rate=0.0)))


@pytest.fixture(scope="module")
def root():
  old = mini_data.enable_compilation_cache()
  root = mini_data.data_root()
  gin.clear_config()
  gin.bind_parameter("data_root.path", root)
  yield root
  gin.clear_config()
  mini_data.restore_compilation_cache(old)


def _params(seed):
  q = jnp.zeros((1, 8), jnp.int32)
  return MODEL.init(jax.random.PRNGKey(seed), q, jnp.zeros((1, 2, 8), jnp.int32), q)["params"]


def _reference(feed, params, questions):
  """Exact top-K rows per question by numpy over the model's float16-stored vectors."""
  store = feed.passage_store
  passages = np.asarray(MODEL.apply({"params": params}, jnp.asarray(store.tokens_array),
                                    method="encode_passages"))
  queries = np.asarray(MODEL.apply({"params": params}, jnp.asarray(feed.query_tokens(questions)),
                                   method="encode_queries"))
  p16 = passages.astype(np.float16).astype(np.float32)
  q16 = queries.astype(np.float16).astype(np.float32)
  scores = q16 @ p16.T
  sources = store.rows([s.decode() for s in questions["source_pid"]])
  out = []
  for i in range(len(scores)):
    order = np.lexsort((np.arange(scores.shape[1]), -scores[i]))  # by score, ties: lower row
    out.append([r for r in order if r != sources[i]][:K])
  return np.array(out), sources


@pytest.mark.parametrize("window", ["next"])
def test_refresh_is_exact_search_and_batches_follow_it(root, tmp_path, window):
  feed = train_feed.TrainFeed(task="clqa.mlqa_pt.xor_retrieve", corpus="passages/psgs_w100.tsv",
                              retrieval=str(tmp_path / "retrieval"), k=K, seed=3)
  source = feed(DataLayout(4, 4, 0, 1))
  hook = refresh.PassageRefresh(feed=feed, model=UnifiedModel(MODEL), every=EVERY, window=window,
                                encode_batch_size=32, progress=False)
  for step, seed in ((0, 0), (EVERY, 1)):
    params = _params(seed)
    window_batches = source.peek(EVERY)
    assert hook(step, params) == step
    version = feed.retrieval_store.latest()
    assert version.step == step and version.k == K
    for questions in window_batches:
      want, sources = _reference(feed, params, questions)
      np.testing.assert_array_equal(version.lookup(questions["qid"]), want)
      assert not (want == sources[:, None]).any()
      # The batch the loop takes next is this window's, with the refreshed passages.
      got_questions, batch = source.next_with_questions()
      np.testing.assert_array_equal(got_questions["qid"], questions["qid"])
      np.testing.assert_array_equal(batch["passage_rows"], want)
      np.testing.assert_array_equal(batch["passage_tokens"], feed.passage_store.tokens(want))
    if step:
      # The second window under the first params would have other passages: the new ones
      # come from the re-encoded corpus.
      old_rows, _ = _reference(feed, _params(0), window_batches[0])
      assert not np.array_equal(old_rows, version.lookup(window_batches[0]["qid"]))
  # Resuming a checkpoint trained with version 0 pins the batches to it again.
  hook.restore(0)
  assert source.retrieval_version.step == 0


def test_all_window_covers_every_question_of_a_mixture(root, tmp_path):
  feed = train_feed.TrainFeed(task="clqa.xor_retrieve", corpus="passages/psgs_w100.tsv",
                              retrieval=str(tmp_path / "retrieval"), k=K)
  source = feed(DataLayout(4, 4, 0, 1))
  hook = refresh.PassageRefresh(feed=feed, model=UnifiedModel(MODEL), every=EVERY, window="all",
                                encode_batch_size=32, progress=False)
  hook(0, _params(0))
  qids = {q for b in feed.question_batches(4, train=False) for q in b["qid"]}
  version = feed.retrieval_store.latest()
  assert len(version) == len(qids) > 600
  next(source)  # every training batch finds its questions in the store


def test_first_ranked_spread():
  spread = refresh.first_ranked_spread(np.array([3, 3, -1, 5, 3]), corpus_rows=96)
  assert spread == {"refresh/distinct_first": 2.0, "refresh/distinct_first_fraction": 0.5}
  # At most min(questions, corpus rows) passages can be ranked first.
  spread = refresh.first_ranked_spread(np.arange(10) % 4, corpus_rows=4)
  assert spread["refresh/distinct_first_fraction"] == 1.0
  # The collapse bar: 5% of min(questions, corpus rows), rounded up (the demo's 189 dev
  # questions over 96 passages: 5).
  assert refresh.collapse_floor(189, 96) == 5 and refresh.collapse_floor(707, 672) == 34


def test_collapsed_retriever_is_reported(root, tmp_path, caplog):
  """A refresh reports how many passages it ranks first; with every query vector the same (the
  query projection zeroed: what a retriever distilled from a uniform reader relevance ends up
  like) that is at most 2 over 700 questions, and a collapse warning is logged; the random
  initialisation ranks many passages first and is not reported."""
  feed = train_feed.TrainFeed(task="clqa.xor_retrieve", corpus="passages/psgs_w100.tsv",
                              retrieval=str(tmp_path / "retrieval"), k=K)
  feed(DataLayout(4, 4, 0, 1))
  hook = refresh.PassageRefresh(feed=feed, model=UnifiedModel(MODEL), every=EVERY, window="all",
                                encode_batch_size=32, progress=False)
  params = _params(0)
  with caplog.at_level(logging.WARNING, logger=refresh.__name__):
    hook(0, params)
  first = feed.retrieval_store.latest().first_rows()
  assert hook.last_metrics == refresh.first_ranked_spread(first, 96)
  assert hook.last_metrics["refresh/distinct_first"] >= 10
  assert "collapsed" not in caplog.text
  box = params["retriever"]["query_proj"]
  collapsed = {**params, "retriever": {**params["retriever"],
                                       "query_proj": box.replace_boxed(jnp.zeros_like(box.value))}}
  with caplog.at_level(logging.WARNING, logger=refresh.__name__):
    hook(EVERY, collapsed)
  assert hook.last_metrics["refresh/distinct_first"] <= 2
  assert "the retriever has collapsed" in caplog.text
