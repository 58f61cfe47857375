"""The lexa_pt objective: eq. (1) over the global batch with the model's passage encoder, the
topic mask holding with duplicate topics and mined negatives, and the microbatched vector cache
giving the plain gradient."""
import jax
import numpy as np

from clqa_jax.losses import objectives
from clqa_jax.losses.lexa_objective import LexaPtObjective
from clqa_jax.trainer import state_init
from clqa_jax.trainer import train_step
from fixtures.trainer.tiny import tiny_model

MODEL = tiny_model()
PARAMS = state_init.model_init_fn(MODEL)(jax.random.PRNGKey(0))["params"]
OBJECTIVE = LexaPtObjective()
# Groups 0 and 2 are the same topic (a topic drawn twice into one batch).
TOPICS = np.array([5, 7, 5, 9], np.int32)


def _tokens(rng, shape):
  out = rng.integers(3, 128, shape).astype(np.int32)
  out[..., -2:] = 0
  out[..., -3] = 1
  return out


def _batch(seed=0, negatives=True):
  rng = np.random.default_rng(seed)
  g, n, h, lp = 4, 3, 2, 8
  batch = {"anchor_tokens": _tokens(rng, (g, lp)), "document_tokens": _tokens(rng, (g, n, lp)),
           "document_mask": np.array([[1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 0, 0]], bool),
           "topic_ids": TOPICS}
  if negatives:
    batch.update(negative_tokens=_tokens(rng, (g, h, lp)),
                 negative_mask=np.array([[1, 1], [1, 0], [1, 1], [1, 1]], bool),
                 # Group 1's first mined document is of topic 5: out of groups 0 and 2's N.
                 negative_topic_ids=np.array([[8, 9], [5, 8], [7, 9], [11, 12]], np.int32))
  return batch


def _np_eq1(batch):
  """Eq. (1) from the passage vectors, every candidate of another topic in N."""
  def emb(t):
    return np.asarray(MODEL.embed_passages(PARAMS, t.reshape(-1, t.shape[-1])), np.float64)
  anchors = emb(batch["anchor_tokens"])
  g, n, _ = batch["document_tokens"].shape
  docs = emb(batch["document_tokens"]).reshape(g, n, -1)
  cands = [(docs[b, i], batch["topic_ids"][b]) for b in range(g) for i in range(n)
           if batch["document_mask"][b, i]]
  if "negative_tokens" in batch:
    negs = emb(batch["negative_tokens"]).reshape(g, batch["negative_tokens"].shape[1], -1)
    cands += [(negs[b, i], batch["negative_topic_ids"][b, i]) for b in range(g)
              for i in range(negs.shape[1]) if batch["negative_mask"][b, i]]
  out = []
  for b in range(g):
    neg = sum(np.exp(anchors[b] @ v) for v, t in cands if t != batch["topic_ids"][b])
    loss = 0.0
    for i in range(n):
      if batch["document_mask"][b, i]:
        pos = np.exp(anchors[b] @ docs[b, i])
        loss -= np.log(pos / (neg + pos))
    out.append(loss)
  return np.array(out)


def test_lexa_pt_is_eq1_over_the_batch_with_the_passage_encoder():
  assert isinstance(objectives.objective_by_name("lexa_pt"), LexaPtObjective)
  for negatives in (False, True):
    batch = _batch(negatives=negatives)
    want = _np_eq1(batch)
    loss, metrics = OBJECTIVE.loss(PARAMS, batch, model=MODEL, rng=None, num_questions=4)
    np.testing.assert_allclose(loss, want.mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["loss/lexa_contrastive"], want.mean(), rtol=1e-5)
    assert metrics["lexa/positives"] == 9 / 4


def _group_losses(batch):
  return np.asarray(OBJECTIVE.group_losses(OBJECTIVE.vectors(MODEL, PARAMS, batch), batch))


def test_a_same_topic_document_never_enters_a_denominator():
  """O2 with a duplicate topic in the batch: group 2's and the topic-5 mined documents are not
  negatives of group 0, whatever they are; any other-topic document is."""
  base = _batch()
  losses = _group_losses(base)
  rng = np.random.default_rng(1)
  same_topic = dict(base, document_tokens=base["document_tokens"].copy(),
                    negative_tokens=base["negative_tokens"].copy())
  same_topic["document_tokens"][2] = _tokens(rng, same_topic["document_tokens"][2].shape)
  same_topic["negative_tokens"][1, 0] = _tokens(rng, same_topic["negative_tokens"][1, 0].shape)
  changed = _group_losses(same_topic)
  np.testing.assert_array_equal(changed[0], losses[0])
  # The same documents are negatives of the other topics' groups.
  assert changed[1] != losses[1] and changed[3] != losses[3]
  other_topic = dict(base, document_tokens=base["document_tokens"].copy())
  other_topic["document_tokens"][3] = _tokens(rng, other_topic["document_tokens"][3].shape)
  assert _group_losses(other_topic)[0] != losses[0]


def test_vector_cache_over_microbatches_equals_the_plain_gradient():
  batch = _batch()
  plain, m_plain = train_step.accumulated_gradients(
      OBJECTIVE, MODEL, PARAMS, batch, jax.random.PRNGKey(0), num_microbatches=1, teacher=None,
      teacher_params=None)
  cached, m_cached = jax.jit(lambda p, b: train_step.vector_cache_gradients(
      OBJECTIVE, MODEL, p, b, num_microbatches=2))(PARAMS, batch)
  for k in m_plain:
    np.testing.assert_allclose(m_cached[k], m_plain[k], rtol=1e-5, err_msg=k)
  for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(plain)[0], jax.tree.leaves(cached)):
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-5, err_msg=str(path))
  assert max(float(np.abs(x).max()) for x in jax.tree.leaves(plain)) > 0
