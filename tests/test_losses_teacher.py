"""The frozen teacher: dense and MaxSim scores over every passage of the batch agree with the
model's own per-question scores, and no gradient reaches the teacher's params."""
import jax
import jax.numpy as jnp
import numpy as np

from clqa_jax.losses.teacher import Teacher
from clqa_jax.trainer import state_init
from clqa_jax.trainer.synthetic_data import synthetic_batch
from fixtures.trainer.tiny import tiny_model

MODEL = tiny_model()


def _setup():
  params = state_init.model_init_fn(MODEL)(jax.random.PRNGKey(0))["params"]
  batch = {k: jnp.asarray(v) for k, v in synthetic_batch(3, batch_size=3, num_passages=2).items()}
  return params, batch


def test_teacher_scores_span_the_batch_and_match_the_model():
  params, batch = _setup()
  b, k = batch["passage_rows"].shape
  valid = np.asarray(batch["passage_rows"] >= 0)

  @jax.jit
  def compute(params, batch):
    out = {}
    for scorer in ("dense", "maxsim"):
      t = Teacher(model=MODEL, scorer=scorer, maxsim_head=1)
      o = t.outputs(params, batch)
      out[scorer] = t.scores(o, o)
      out["relevance"] = o["reader_relevance"]
    ref = MODEL.module.apply({"params": params}, batch["query_en_tokens"],
                             batch["passage_tokens"], batch["decoder_input_tokens"],
                             return_reader_relevance=True)
    out["ref_dense"] = ref["retrieval_scores"]
    out["ref_relevance"] = ref["reader_relevance"]
    out["ref_maxsim"] = MODEL.module.apply({"params": params}, batch["query_en_tokens"],
                                           batch["passage_tokens"], 1,
                                           method="maxsim_scores")
    return out

  out = jax.device_get(compute(params, batch))
  for scorer in ("dense", "maxsim"):
    scores = out[scorer]
    assert scores.shape == (b, b * k)
    own = scores.reshape(b, b, k)[np.arange(b), np.arange(b)]     # each query's own passages
    np.testing.assert_allclose(own[valid], out[f"ref_{scorer}"][valid], rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out["relevance"], out["ref_relevance"], rtol=1e-5, atol=1e-6)


def test_no_gradient_reaches_the_teacher():
  params, batch = _setup()
  t = Teacher(model=MODEL)

  def f(p):
    o = t.outputs(p, batch)
    return jnp.sum(t.scores(o, o)) + jnp.sum(o["reader_relevance"])

  grads = jax.jit(jax.grad(f))(params)
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(grads))
