"""UMR's rounds driver on the mini corpus: 2 rounds of retrieve (BM25, then the round-1 student)
-> re-rank with a tiny random query-likelihood teacher -> umr_kd distillation; each pair is
scored once over both rounds (O4), round 2 starts from round 1's best checkpoint by dev R@2kt,
and a rerun skips the finished rounds. The student's questions lose their trailing "?". The
paper-settings experiment parses and wires the same driver."""
import glob
import io
import math
import os

import gin
import numpy as np
import pytest

pytest.importorskip("transformers")

from clqa_jax import gin_utils  # noqa: E402
from clqa_jax.checkpoints import training as checkpointing  # noqa: E402
from clqa_jax.data import train_feed  # noqa: E402
from clqa_jax.data.retrieval_store import RetrievalStore  # noqa: E402
from clqa_jax.losses import objectives  # noqa: E402
from clqa_jax.trainer import register_configurables  # noqa: E402,F401
from clqa_jax.trainer import umr_rounds  # noqa: E402
from fixtures.integration import mini_data  # noqa: E402
from fixtures.umr.teacher import write_tiny_teacher  # noqa: E402

SMALL = ["BATCH_SIZE = 8", "TOP_N = 4", "SAMPLED_PASSAGES = 2", "TRAIN_STEPS = 2",
         "MT5Config.scan_layers = True", "loop.train.log_every_steps = 1",
         "umr_rounds.UmrRounds.teacher_batch_size = 16",
         "umr_rounds.UmrRounds.encode_batch_size = 64", "EVAL_EVERY = 1",
         "eval_hook.DevEvaluation.max_questions = 16"]


@pytest.fixture(scope="module")
def root():
  old = mini_data.enable_compilation_cache()
  yield mini_data.data_root()
  mini_data.restore_compilation_cache(old)


def _rounds(root, work, teacher):
  with gin_utils.scoped_config():
    gin_utils.parse_gin(["experiments/mini_umr.gin"], [
        f"data_root.path = '{root}'", f"UMR_WORK_DIR = '{work}'",
        f"TEACHER_CHECKPOINT = '{teacher}'", *SMALL])
    return umr_rounds.umr_rounds()


def _pairs(store_root):
  version = RetrievalStore(os.path.join(store_root, "process_00000")).latest()
  rows = version.lookup(version.qids())
  return {(q, int(r)) for q, row in zip(version.qids(), rows) for r in row if r >= 0}


def _cache_entries(cache):
  total = 0
  for path in glob.glob(os.path.join(cache, "scores-*.npz")):
    with np.load(io.BytesIO(open(path, "rb").read())) as z:
      total += len(z["score"])
  return total


def test_two_umr_rounds_on_the_mini_corpus(root, tmp_path):
  teacher = write_tiny_teacher(str(tmp_path / "teacher"), os.path.join(root, "vocab", "spm.model"))
  work = tmp_path / "umr"
  records = _rounds(root, work, teacher)
  assert [r["round"] for r in records] == [1, 2]
  assert records[0]["start"] is None
  # Model selection: round 2 starts from round 1's step with the best recorded dev R@2kt.
  ckpts = checkpointing.run_checkpoints_dir(str(work / "round_1" / "train"))
  r2kt = {s: m["eval/r@2kt"] for s, m in checkpointing.read_metrics(ckpts).items()}
  # Steps 1 and 2 were evaluated; the keep-best policy leaves the best one and the latest.
  assert 2 in r2kt and set(r2kt) <= {1, 2}
  best = checkpointing.best_step_of(r2kt)
  assert records[1]["start"] == records[0]["selected"] == os.path.join(ckpts, str(best))
  assert records[0]["selected_by"] == "eval/r@2kt"
  for r in records:
    assert r["step"] == 2 and math.isfinite(r["metrics"]["loss/inbatch_teacher_kl"])
    assert checkpointing.Checkpointer(r["checkpoints"]).latest_step() == 2
  # Round 1 retrieved with BM25, round 2 with the round-1 student; both lists re-ranked.
  r1 = RetrievalStore(str(work / "round_1" / "retrieval" / "process_00000")).latest()
  r2 = RetrievalStore(str(work / "round_2" / "retrieval" / "process_00000")).latest()
  assert (r1.meta["retriever"], r2.meta["retriever"]) == ("bm25", "dense")
  scored = RetrievalStore(str(work / "round_2" / "reranked" / "process_00000")).latest()
  s = scored.lookup_scores(scored.qids())
  assert np.isfinite(s).all() and (np.diff(s, axis=1) <= 0).all()
  # O4: every distinct (qid, passage) pair of both rounds was scored exactly once.
  union = _pairs(work / "round_1" / "retrieval") | _pairs(work / "round_2" / "retrieval")
  assert _cache_entries(work / "score_cache") == len(union)
  new_in_round_2 = len(union) - len(_pairs(work / "round_1" / "retrieval"))
  assert records[1]["teacher_calls"] == math.ceil(new_in_round_2 / 16)   # batches of 16
  assert "UmrKdObjective" in (work / "round_2" / "train" / "config.gin").read_text()
  # A rerun skips both finished rounds (nothing retrieved, scored or trained again).
  again = _rounds(root, work, teacher)
  assert again == records
  assert _cache_entries(work / "score_cache") == len(union)


def test_student_questions_lose_their_trailing_question_mark(root):
  with gin_utils.scoped_config():
    gin.bind_parameter("data_root.path", root)
    kwargs = dict(task="clqa.xor_retrieve", corpus="passages/psgs_w100.tsv", k=2)
    # Every training question (a batch per language task): some end in "?" (bn, fi, ...),
    # some not (ar: U+061F).
    batches = list(train_feed.TrainFeed(**kwargs).question_batches(1024, train=False))
    batch = {k: np.concatenate([np.asarray(b[k]) for b in batches])
             for k in ("question", "question_pretokenized")}
    plain = train_feed.TrainFeed(**kwargs).query_tokens(batch)
    feed = train_feed.TrainFeed(**kwargs, strip_question_mark=True)
    stripped = feed.query_tokens(batch)
    sp = feed._sp  # the vocabulary the tokens were re-encoded with
    texts = [t.decode() for t in batch["question_pretokenized"]]
    assert any(t.endswith("?") for t in texts) and not all(t.endswith("?") for t in texts)
    for i, text in enumerate(texts):
      got = sp.decode(stripped[i][stripped[i] > 0].tolist())
      assert got == sp.decode(sp.encode(text.rstrip().rstrip("?？").rstrip()))
      assert not got.endswith("?") and got.startswith("question: ")
      if not text.endswith(("?", "？")):  # nothing to strip: the task's own tokens
        np.testing.assert_array_equal(stripped[i], plain[i])
    # The same encoding as the task's: the stripped tokens are a prefix of the task's.
    i = next(i for i, t in enumerate(texts) if t.endswith("?"))
    n = int((stripped[i] > 0).sum())
    assert n < int((plain[i] > 0).sum())
    np.testing.assert_array_equal(stripped[i][:n - 1], plain[i][:n - 1])


def test_paper_settings_experiment_wires_the_driver():
  with gin_utils.scoped_config():
    gin_utils.parse_gin(["experiments/xor_retrieve_umr.gin"], [
        "UMR_WORK_DIR = '/tmp/u'", "TEACHER_CHECKPOINT = '/tmp/t'", "INIT_CHECKPOINT = '/tmp/i'"])
    feed = gin.query_parameter("umr_rounds.UmrRounds.feed").scoped_configurable_fn()
    assert (feed.task, feed.k, feed.sample_passages) == ("clqa.xor_retrieve", 100, 16)
    assert gin.query_parameter("%BATCH_SIZE") == 16
    assert gin.query_parameter("%TEACHER_MULTIPLIER") == 10.0
    assert gin.query_parameter("optimizer.adamw_with_clipping.clip_norm") == 2.0
    assert gin.query_parameter("optimizer.adamw_with_clipping.weight_decay") == 0.0
    assert math.ceil(gin.query_parameter("%TRAIN_STEPS")
                     * gin.query_parameter("%WARMUP_FRACTION")) == 1237
    assert isinstance(gin.query_parameter("loop.train.objective").scoped_configurable_fn(),
                      objectives.UmrKdObjective)
    driver = gin.query_parameter("umr_rounds.umr_rounds.driver").scoped_configurable_fn()
    assert (driver.rounds, driver.initial_retriever, driver.teacher_dtype,
            driver.init_checkpoint) == (2, "dense", "bfloat16", "/tmp/i")
    assert feed.strip_question_mark
    assert gin.query_parameter("%EVAL_EVERY") == 238
    assert checkpointing.CheckpointConfig().best_metric == "eval/r@2kt"
    hook = gin.query_parameter("loop.train.eval_hook").scoped_configurable_fn()
    assert (hook.data_file, hook.reader_k, hook.work_dir) == (
        "xor/xor_dev_retrieve_eng_span_v1_1.jsonl", 0, "/tmp/u")
