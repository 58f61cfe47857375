"""UnifiedModel: each method equals the direct module computation it replaces; objectives satisfy
the Objective protocol; the synthesis teacher ranks ties as index/exact.py does."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from clqa_jax.index import exact
from clqa_jax.losses import objectives
from clqa_jax.losses.objective import Objective
from clqa_jax.losses.teacher import Teacher
from clqa_jax.models import decoding
from clqa_jax.models.model_api import UnifiedModel
from clqa_jax.synth import teacher as synth_teacher
from clqa_jax.trainer import refresh
from clqa_jax.trainer import train_step
from fixtures.trainer.synthetic import synthetic_batch
from fixtures.trainer.tiny import tiny_config
from models_testutil import random_params

MAX_LEN = 4
HEAD = 1


@pytest.fixture(scope="module")
def setup():
  model = UnifiedModel.from_config(tiny_config())
  batch = {k: jnp.asarray(v) for k, v in synthetic_batch(0, batch_size=2).items()}
  params = random_params(model.module, batch["query_tokens"], batch["passage_tokens"],
                         batch["decoder_input_tokens"])
  return model, params, batch


def _assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(a)[0], jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=str(path))


def test_get_initial_variables_equals_module_init():
  model = UnifiedModel.from_config(tiny_config())
  shapes = {"query_tokens": (1, 3), "passage_tokens": (1, 2, 4), "decoder_input_tokens": (1, 2)}
  rng = jax.random.PRNGKey(5)
  got = jax.jit(lambda r: model.get_initial_variables(r, shapes))(rng)
  ones = [jnp.ones(s, jnp.int32) for s in shapes.values()]
  want = jax.jit(lambda r: model.module.init({"params": r, "dropout": r}, *ones,
                                             enable_dropout=False,
                                             return_reader_relevance=True))(rng)
  _assert_trees_equal(got, want)  # values and logical axis names
  with pytest.raises(ValueError, match="decoder_input_tokens"):
    model.get_initial_variables(rng, {"query_tokens": (1, 3), "passage_tokens": (1, 2, 4)})


def test_forward_loss_and_score_equal_the_module(setup):
  model, params, batch = setup
  module = model.module
  rng = jax.random.PRNGKey(3)
  mlqa = objectives.MlqaObjective()

  @jax.jit
  def run(params, batch):
    args = (batch["query_tokens"], batch["passage_tokens"], batch["decoder_input_tokens"])
    direct = module.apply({"params": params}, *args, return_reader_relevance=True)
    direct_dropout = module.apply({"params": params}, *args, enable_dropout=True,
                                  return_reader_relevance=True, rngs={"dropout": rng})
    return dict(
        forward=model.forward(params, *args), direct=direct,
        forward_dropout=model.forward(params, *args, rng=rng, enable_dropout=True),
        direct_dropout=direct_dropout,
        loss=model.loss_fn(params, batch, rng, objective=mlqa, num_questions=2)[0],
        direct_loss=mlqa.loss_from_outputs(direct_dropout, batch, 2)[0],
        score=model.score_batch(params, batch))

  out = jax.device_get(run(params, batch))
  _assert_trees_equal(out["forward"], out["direct"])
  _assert_trees_equal(out["forward_dropout"], out["direct_dropout"])
  assert not np.allclose(out["forward"]["logits"], out["forward_dropout"]["logits"])
  np.testing.assert_array_equal(out["loss"], out["direct_loss"])
  # Answer log-likelihood by hand from the eval-mode logits.
  log_probs = jax.nn.log_softmax(np.asarray(out["direct"]["logits"], np.float64), axis=-1)
  targets = np.asarray(batch["decoder_target_tokens"])
  token_ll = np.take_along_axis(np.asarray(log_probs), targets[..., None], -1)[..., 0]
  want = (token_ll * np.asarray(batch["decoder_loss_weights"])).sum(-1)
  assert out["score"].shape == (2,)
  np.testing.assert_allclose(out["score"], want, rtol=1e-5)


def test_predict_equals_decoding_over_the_module(setup):
  model, params, batch = setup
  module = model.module

  @jax.jit
  def run(params, query_tokens, passage_tokens):
    inputs = {"query_tokens": query_tokens, "passage_tokens": passage_tokens}
    enc = module.apply({"params": params}, query_tokens, passage_tokens,
                       method="encode_for_reader")
    direct_greedy = decoding.generate(module, params, enc["memory"], enc["memory_mask"],
                                      max_length=MAX_LEN)
    direct_beams = decoding.generate(module, params, enc["memory"], enc["memory_mask"],
                                     max_length=MAX_LEN, beam_size=2)
    return (model.predict_batch(params, inputs, max_length=MAX_LEN), direct_greedy,
            model.predict_beams(params, inputs, beam_size=2, max_length=MAX_LEN), direct_beams,
            model.predict_batch(params, inputs, beam_size=2, max_length=MAX_LEN))

  greedy, direct_greedy, beams, direct_beams, best = jax.device_get(
      run(params, batch["query_tokens"], batch["passage_tokens"]))
  assert greedy.shape == (2, MAX_LEN) and beams[0].shape == (2, 2, MAX_LEN)
  np.testing.assert_array_equal(greedy, direct_greedy)
  _assert_trees_equal(beams, direct_beams)
  np.testing.assert_array_equal(best, direct_beams[0][:, 0])
  with pytest.raises(ValueError, match="beam_size >= 2"):
    model.predict_beams(params, batch, beam_size=1)


def test_retrieval_methods_equal_the_module(setup):
  model, params, batch = setup
  module = model.module
  passages = batch["passage_tokens"].reshape(-1, batch["passage_tokens"].shape[-1])

  @jax.jit
  def run(params, queries, passages):
    apply = lambda *a, **kw: module.apply({"params": params}, *a, **kw)
    return dict(
        q=model.embed_queries(params, queries), q_ref=apply(queries, method="encode_queries"),
        p=model.embed_passages(params, passages),
        p_ref=apply(passages, method="encode_passages"),
        qs=model.token_states(params, queries, head=HEAD, is_query=True),
        qs_ref=apply(queries, HEAD, True, method="retrieval_token_states"),
        ps=model.token_states(params, passages, head=HEAD, is_query=False),
        ps_ref=apply(passages, HEAD, False, method="retrieval_token_states"))

  out = jax.device_get(run(params, batch["query_tokens"], passages))
  d = model.config.mt5.d_model
  assert out["q"].shape == (2, d) and out["p"].shape == (passages.shape[0], d)
  for name in ("q", "p", "qs", "ps"):
    np.testing.assert_array_equal(out[name], out[name + "_ref"], err_msg=name)


def test_callers_take_only_a_unified_model():
  module = UnifiedModel.from_config(tiny_config()).module
  with pytest.raises(TypeError, match="Teacher.model must be"):
    Teacher(model=module)
  with pytest.raises(TypeError, match="train.model must be"):
    train_step.make_train_step(model=module, objective=objectives.MlqaObjective(),
                               optimizer=optax.sgd(0.1))
  with pytest.raises(TypeError, match="UnifiedModel.module must be a flax module"):
    UnifiedModel(tiny_config())
  assert isinstance(refresh.unified_model(tiny_config()), UnifiedModel)


def test_objectives_satisfy_the_protocol():
  for name, cls in objectives.OBJECTIVES.items():
    objective = cls()
    assert isinstance(objective, Objective) and objective.name == name
  with pytest.raises(TypeError, match="train.objective must satisfy"):
    train_step.make_train_step(model=UnifiedModel.from_config(tiny_config()),
                               objective=object(), optimizer=optax.sgd(0.1))


def test_synth_dense_teacher_breaks_ties_as_exact_search():
  # Passages 0-3 tie (score 1), passage 4 wins (score 2); top-3 must keep rows 0 and 1, the
  # lower ids (a plain argpartition keeps 0 and 2 here).
  vectors = np.array([[1, 0]] * 4 + [[1, 1]], np.float32)
  query = np.array([[1, 1]], np.float32)
  pids = [f"p{i}" for i in range(5)]
  retriever = synth_teacher.DenseRetriever(pids, vectors, lambda qs: np.repeat(query, len(qs), 0),
                                           top_k=3)
  _, rows = exact.exact_topk(query, vectors, 3)
  got = retriever.retrieve(["q"])[0]
  assert [p for p, _ in got] == [pids[r] for r in rows[0]] == ["p4", "p0", "p1"]
  assert [s for _, s in got] == [2.0, 1.0, 1.0]


def test_synth_bm25_teacher_breaks_ties_as_exact_search():
  passages = [(f"p{i}", "", "alpha beta") for i in range(4)] + [("p4", "", "alpha gamma gamma")]
  retriever = synth_teacher.BM25Retriever(passages, top_k=3)
  scores = np.asarray(retriever.weights[[retriever.vocab["beta"]]].sum(axis=0)).ravel()
  assert len(set(scores[:4].tolist())) == 1 and scores[4] == 0  # p0-p3 tie on "beta"
  scores = np.asarray(retriever.weights[[retriever.vocab["beta"], retriever.vocab["gamma"]]]
                      .sum(axis=0)).ravel()
  _, rows = exact.scores_topk(scores[None], 3)
  got = [p for p, _ in retriever.retrieve(["beta gamma"])[0]]
  assert got == [passages[r][0] for r in rows[0]]
  assert got[1:] == ["p0", "p1"]
