"""The dev evaluation during training (``trainer.eval_hook`` through gin/experiments/dev_eval.gin)
on the mini corpus: its metrics reach TensorBoard, the kept-best checkpoint is the step with the
best metric, its R@kt is the official metric of an independent exact numpy search, and
``clqa export --step best`` exports that step."""
import os

import gin
import jax
import numpy as np
import pytest

from clqa_jax import gin_utils
from clqa_jax.checkpoints import exported
from clqa_jax.checkpoints import training as checkpointing
from clqa_jax.cli import main as cli_main
from clqa_jax.data import readers
from clqa_jax.data import retrieval_store
from clqa_jax.data import spm_train
from clqa_jax.eval import xor_retrieve
from clqa_jax.index import exact
from clqa_jax.serving import questions as questions_lib
from clqa_jax.trainer import eval_hook as eval_hook_lib
from clqa_jax.trainer import loop
from clqa_jax.trainer import register_configurables  # noqa: F401
from fixtures.integration import mini_data

STEPS, EVAL_EVERY, TOP_K, QUESTIONS = 4, 2, 3, 64
# The shapes of the other mini-corpus training tests (compiled programs are reused), a high
# learning rate so that the rankings move between evaluations, and a shallow retrieval depth so
# that R@2kt (the kept-best metric) is "an answer in the top 3 of the 96 passages".
BINDINGS = ["BATCH_SIZE = 8", "NUM_PASSAGES = 2", "SAVE_EVERY = 0", "MT5Config.scan_layers = True",
            "loop.train.log_every_steps = 1", f"TRAIN_STEPS = {STEPS}", f"REFRESH_EVERY = {STEPS}",
            f"EVAL_EVERY = {EVAL_EVERY}", "LEARNING_RATE = 3e-2",
            f"DevEvaluation.top_k = {TOP_K}", f"DevEvaluation.max_questions = {QUESTIONS}",
            "DevEvaluation.max_answer_length = 4", "DevEvaluation.progress = False",
            # A trajectory whose dev R@2kt differs between the two evaluations (keep-best must
            # choose): 1.6 at step 2 and 21.9 at step 4; at 1e-2 it is 1.6 at both.
            "UnifiedConfig.query_encoding = 'shared'"]


def _read_scalars(logdir):
  """{tag: {step: value}} of the TensorBoard event files in ``logdir``."""
  from tensorboard.backend.event_processing import event_accumulator
  from tensorboard.util import tensor_util

  acc = event_accumulator.EventAccumulator(logdir, size_guidance={"tensors": 0, "scalars": 0})
  acc.Reload()
  out = {}
  for tag in acc.Tags()["tensors"]:
    out[tag] = {e.step: float(tensor_util.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)}
  for tag in acc.Tags()["scalars"]:
    out.setdefault(tag, {}).update({e.step: float(e.value) for e in acc.Scalars(tag)})
  return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  old = mini_data.enable_compilation_cache()
  root = mini_data.data_root()
  model_dir = str(tmp_path_factory.mktemp("evalrun"))
  gin.clear_config()
  try:
    gin_utils.parse_gin(["experiments/mini_mlqa_pt.gin"], [
        f"data_root.path = '{root}'", f"MODEL_DIR = '{model_dir}'",
        f"RETRIEVAL_DIR = '{os.path.join(model_dir, 'retrieval')}'", *BINDINGS])
    # The experiment's own hook (its gin bindings), kept here to look at what it retrieved.
    hook = eval_hook_lib.DevEvaluation()
    assert isinstance(gin.query_parameter("loop.train.eval_hook"), gin.config.ConfigurableReference)
    result = loop.train(eval_hook=hook)
  finally:
    gin.clear_config()
    mini_data.restore_compilation_cache(old)
  yield root, model_dir, hook, result


def test_eval_metrics_reach_tensorboard_and_select_the_kept_checkpoint(run, tmp_path):
  root, model_dir, hook, result = run
  assert result.status == "completed" and result.step == STEPS
  scalars = _read_scalars(os.path.join(model_dir, "summaries"))
  eval_steps = list(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY))
  for name in ("eval/r@2kt", "eval/r@5kt", "eval/f1", "eval/em", "eval/r@2kt/ja", "eval/f1/ru"):
    assert sorted(scalars[name]) == eval_steps, name
    assert all(0.0 <= v <= 100.0 for v in scalars[name].values()), name
  # The macro figure is the mean of the per-language ones.
  langs = [t.split("/")[-1] for t in scalars if t.startswith("eval/r@2kt/")]
  assert sorted(langs) == sorted({q.lang for q in hook.questions})
  for step in eval_steps:
    mean = np.mean([scalars[f"eval/r@2kt/{lang}"][step] for lang in langs])
    assert scalars["eval/r@2kt"][step] == pytest.approx(mean, rel=1e-5)
  # Keep-best: the best checkpoint is the evaluated step with the highest eval/r@2kt.
  values = scalars["eval/r@2kt"]
  assert len(set(values.values())) > 1, f"eval/r@2kt did not change between steps: {values}"
  best = max(eval_steps, key=lambda s: (values[s], s))   # ties: the later step, as orbax
  config = checkpointing.CheckpointConfig(best_metric="eval/r@2kt")
  ckpt = checkpointing.Checkpointer(result.checkpoint_dir, config)
  assert ckpt.best_step() == best
  assert set(ckpt.all_steps()) == {best, STEPS}    # keep = 1 latest, plus the best
  ckpt.close()
  # `clqa export --step best` exports that step.
  out = str(tmp_path / "best")
  assert cli_main.main(["export", "--checkpoint_dir", model_dir, "--step", "best",
                        "--out", out]) == 0
  source = exported.read_manifest(out)["source"]
  assert source["step"] == best and source["selected_by"] == "eval/r@2kt"
  # The work directory of every evaluation was removed.
  assert os.listdir(os.path.join(model_dir, eval_hook_lib.WORK_SUBDIR)) == []


def test_eval_recall_equals_official_metric_of_exact_numpy_search(run):
  root, model_dir, hook, result = run
  params = result.state.params
  model = hook.model
  sp = spm_train.load_processor(os.path.join(root, "vocab", "spm.model"))
  qs = questions_lib.load_questions(os.path.join(root, "xor", "xor_dev_retrieve_eng_span.jsonl"),
                                    "xor-retrieve", limit=QUESTIONS)
  query_tokens = questions_lib.tokenize_queries(sp, qs)
  corpus = list(readers.read_passages_tsv(os.path.join(root, "passages", "psgs_w100.tsv")))
  passage_tokens = np.asarray(hook.store.tokens_array)
  assert len(corpus) == passage_tokens.shape[0] == 96

  def stored(vectors):  # the hook keeps float16 embeddings and scores them in float32
    return np.asarray(vectors, np.float32).astype(np.float16).astype(np.float32)

  q = stored(jax.jit(model.embed_queries)(params, query_tokens))
  p = stored(jax.jit(model.embed_passages)(params, passage_tokens))
  _, rows = exact.exact_topk(q, p, TOP_K)
  np.testing.assert_array_equal(hook.last_rows, rows)
  predictions = [xor_retrieve.RetrievalPrediction(qu.key, qu.lang, [corpus[r].text for r in row])
                 for qu, row in zip(qs, rows)]
  table = xor_retrieve.evaluate_xor_retrieve(predictions, questions_lib.gold_questions(qs), (2, 5))
  scalars = _read_scalars(os.path.join(model_dir, "summaries"))
  for metric in ("R@2kt", "R@5kt"):
    name = f"eval/{metric.lower()}"
    assert scalars[name][STEPS] == pytest.approx(table.macro[metric], rel=1e-5)
    for lang, scores in table.scores.items():
      assert scalars[f"{name}/{lang}"][STEPS] == pytest.approx(scores[metric], rel=1e-5), lang


def test_refresh_spread_reaches_tensorboard(run):
  """The step-0 refresh's first-ranked spread (``refresh.first_ranked_spread``) is written at
  step 0 and equals the count over the retrieval version it published."""
  _, model_dir, _, _ = run
  store = retrieval_store.RetrievalStore(os.path.join(model_dir, "retrieval", "process_00000"))
  version = store.version(0)
  first = version.lookup(version.qids())[:, 0]
  distinct = len(np.unique(first[first >= 0]))
  scalars = _read_scalars(os.path.join(model_dir, "summaries"))
  assert scalars["refresh/distinct_first"] == {0: float(distinct)}
  assert scalars["refresh/distinct_first_fraction"][0] == pytest.approx(
      distinct / min(int((first >= 0).sum()), 96))
  assert 1 <= distinct <= 96
