"""UnifiedRetrieverReader: equal to the official single-sequence formulation, MaxSim teacher.

The official CLASS model encodes every (question, passage) pair as one sequence [q; p] with an
"independent" mask below layer R (query tokens see the query, passage rows see the passage),
re-encodes the query in every pair and averages its K query vectors. Our model encodes queries
and passages once each below R and joins them with explicit positions above R.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clqa_jax.models import MT5Config, UnifiedConfig, UnifiedModel, UnifiedRetrieverReader
from models_testutil import random_params
from official_formulation import official_forward, official_pairs

B, K, LQ, LP, T = 2, 3, 6, 9, 5
Q_LENS = [[4], [6]]
P_LENS = [[9, 5, 7], [3, 9, 6]]


def _tokens(lengths, width, rng, eos):
  out = np.zeros((len(lengths), width), np.int32)
  for i, n in enumerate(lengths):
    out[i, :n] = rng.integers(2, 500, n)
    if eos:
      out[i, n - 1] = 1
  return out


@pytest.fixture(scope="module")
def setup():
  rng = np.random.default_rng(0)
  query = np.stack([_tokens(l, LQ, rng, False)[0] for l in Q_LENS])                 # [B, Lq]
  passages = np.stack([_tokens(l, LP, rng, True) for l in P_LENS])                  # [B, K, Lp]
  dec = np.concatenate([np.zeros((B, 1), np.int32), rng.integers(2, 500, (B, T - 1))], 1)
  config = UnifiedConfig(mt5=MT5Config.preset("tiny", num_encoder_layers=3,
                                               num_decoder_layers=2, dropout_rate=0.1))
  assert config.resolved_retriever_layer == 1
  model = UnifiedRetrieverReader(config)
  params = random_params(model, query, passages, dec)
  return model, params, query, passages, dec


def _all_outputs(module, query, passages, dec, official_inputs, wide_passages, head):
  """Everything the tests compare, in one program (one compilation)."""
  ours = module(query, passages, dec, return_reader_relevance=True)
  ref = official_forward(module, *official_inputs, dec, return_teacher_states=True)
  return dict(
      ours=ours, ref=ref,
      encoded_queries=module.encode_queries(query),
      encoded_passages=module.encode_passages(wide_passages),
      maxsim=module.maxsim_scores(query, passages, head),
      query_states=module.retrieval_token_states(query, head, True),
      passage_states=module.retrieval_token_states(
          passages.reshape(-1, passages.shape[-1]), head, False),
      train=module(query, passages, dec, enable_dropout=True, return_reader_relevance=True),
      # Two queries per question (the reversed batch's query as the second) sharing passages.
      shared=module(_question_major(query, query[::-1]), passages,
                    _question_major(dec, dec[::-1]), return_reader_relevance=True),
      repeated=module(_question_major(query, query[::-1]),
                      _question_major(passages, passages), _question_major(dec, dec[::-1]),
                      return_reader_relevance=True))


def _question_major(a, b):
  """[B, ...] twice -> [2B, ...] with rows a[0], b[0], a[1], b[1], ..."""
  return jnp.stack([a, b], axis=1).reshape((-1,) + a.shape[1:])


HEAD = 1


@pytest.fixture(scope="module")
def outputs(setup):
  model, params, query, passages, dec = setup
  # Passages padded wider than in the batch must encode identically.
  wide = np.pad(passages.reshape(B * K, LP), ((0, 0), (0, 7)))
  run = jax.jit(functools.partial(model.apply, method=_all_outputs, head=HEAD))
  with jax.default_matmul_precision("highest"):
    first = run({"params": params}, query, passages, dec, official_pairs(query, passages),
                wide, rngs={"dropout": jax.random.PRNGKey(3)})
    padded = passages.copy()
    padded[0, 1] = 0
    second = run({"params": params}, query, padded, dec, official_pairs(query, passages),
                 wide, rngs={"dropout": jax.random.PRNGKey(4)})
  return jax.tree.map(np.asarray, first), jax.tree.map(np.asarray, second)


def test_equals_official_formulation(outputs):
  ours, ref = outputs[0]["ours"], outputs[0]["ref"]
  for name in ("query_vectors", "passage_vectors", "logits", "reader_relevance"):
    np.testing.assert_allclose(ours[name], ref[name], atol=1e-5, err_msg=name)
  np.testing.assert_allclose(ours["reader_relevance"].sum(-1), 1.0, atol=1e-5)
  scores = np.einsum("bd,bkd->bk", ref["query_vectors"], ref["passage_vectors"])
  np.testing.assert_allclose(ours["retrieval_scores"], scores, atol=1e-5)


def test_queries_sharing_passages_equal_repeated_passages(outputs):
  """C = 2 queries per question over B passage rows (the lower stack runs on them once) equal
  the same 2B rows with every passage row repeated (C = 1)."""
  shared, repeated = outputs[0]["shared"], outputs[0]["repeated"]
  assert shared["logits"].shape[0] == 2 * B
  for name in ("query_vectors", "passage_vectors", "retrieval_scores", "logits",
               "reader_relevance"):
    np.testing.assert_allclose(shared[name], repeated[name], atol=1e-5, err_msg=name)
  # The even rows are the batch's own queries.
  np.testing.assert_allclose(shared["logits"][0::2], outputs[0]["ours"]["logits"], atol=1e-5)


def test_encode_queries_and_passages_standalone(setup, outputs):
  _, params, *_ = setup
  out = outputs[0]
  np.testing.assert_allclose(out["encoded_queries"], out["ours"]["query_vectors"], atol=1e-5)
  np.testing.assert_allclose(out["encoded_passages"].reshape(B, K, -1),
                             out["ours"]["passage_vectors"], atol=1e-5)
  # The shared RMSNorm makes every vector's RMS equal to one before its learned scale.
  scale = np.asarray(params["retriever"]["layer_norm"]["scale"])
  rms = np.sqrt(np.mean((out["encoded_queries"] / scale) ** 2, axis=-1))
  np.testing.assert_allclose(rms, 1.0, rtol=1e-4)


def test_padding_passage_gets_no_relevance(outputs):
  rel = outputs[1]["ours"]["reader_relevance"]
  assert rel[0, 1] == 0.0
  np.testing.assert_allclose(rel.sum(-1), 1.0, atol=1e-5)
  # The other question's outputs do not depend on it.
  np.testing.assert_allclose(outputs[1]["ours"]["logits"][1], outputs[0]["ours"]["logits"][1],
                             atol=1e-5)


def test_dropout_training_mode(outputs):
  a, b = outputs[0]["train"], outputs[1]["train"]
  assert not np.allclose(a["logits"][1], b["logits"][1])   # different dropout keys
  assert not np.allclose(a["logits"], outputs[0]["ours"]["logits"])
  assert np.all(np.isfinite(a["reader_relevance"]))
  # Post-dropout attention: the relevance no longer sums to exactly one.
  assert not np.allclose(a["reader_relevance"].sum(-1), 1.0, atol=1e-3)


def test_maxsim_teacher_matches_numpy(setup, outputs):
  _, _, query, passages, _ = setup
  ref = outputs[0]["ref"]
  q_states = ref["q_states"][..., HEAD, :]     # [B, K, L, Dk] from the joint sequences
  k_states = ref["k_states"][..., HEAD, :]
  _, _, q_mask, p_mask, _ = official_pairs(query, passages)
  expected = np.zeros((B, K))
  for b in range(B):
    for k in range(K):
      q = q_states[b, k][q_mask[b, k]]
      p = k_states[b, k][p_mask[b, k]]
      expected[b, k] = (q @ p.T).max(axis=1).sum()
  np.testing.assert_allclose(outputs[0]["maxsim"], expected, rtol=1e-5, atol=1e-4)


def test_retrieval_token_states_give_batch_wide_maxsim(setup, outputs):
  """MaxSim of every query against every passage of the batch, from the public token states,
  equals maxsim_scores on each query's own passages and the reference on the other pairs."""
  _, _, query, passages, _ = setup
  out, ref = outputs[0], outputs[0]["ref"]
  q_states, p_states = out["query_states"], out["passage_states"]     # [B, Lq, Dk], [B*K, Lp, Dk]
  _, _, q_mask, p_mask, _ = official_pairs(query, passages)
  p_mask = p_mask.reshape(B * K, -1)
  ref_q = ref["q_states"][:, 0, :, HEAD]                            # a query's states: any k
  ref_k = ref["k_states"][..., HEAD, :].reshape(B * K, -1, ref_q.shape[-1])
  batch = np.zeros((B, B * K))
  expected = np.zeros((B, B * K))
  for b in range(B):
    qm = query[b] > 0
    for n in range(B * K):
      pm = passages.reshape(B * K, -1)[n] > 0
      batch[b, n] = (q_states[b][qm] @ p_states[n][pm].T).max(axis=1).sum()
      expected[b, n] = (ref_q[b][q_mask[b, 0]] @ ref_k[n][p_mask[n]].T).max(axis=1).sum()
  own = np.stack([batch[b, b * K:(b + 1) * K] for b in range(B)])
  np.testing.assert_allclose(own, out["maxsim"], rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(batch, expected, rtol=1e-5, atol=1e-4)


def test_greedy_and_beam_decoding_use_the_cache_correctly(setup):
  """Decoded tokens are the argmax of the teacher-forced logits on their own prefix, and beam
  scores are the teacher-forced log-likelihoods / length."""
  model, params, query, passages, _ = setup
  max_len = 6
  wrapped = UnifiedModel(model)

  @jax.jit
  def decode(params, query, passages):
    batch = {"query_tokens": query, "passage_tokens": passages}
    greedy = wrapped.predict_batch(params, batch, max_length=max_len)
    beams, scores = wrapped.predict_beams(params, batch, max_length=max_len, beam_size=2)
    shifted = lambda t: jnp.concatenate([jnp.zeros_like(t[..., :1]), t[..., :-1]], -1)
    greedy_logits = model.apply({"params": params}, query, passages, shifted(greedy))["logits"]
    best = beams[:, 0]
    beam_logits = model.apply({"params": params}, query, passages, shifted(best))["logits"]
    return greedy, greedy_logits, best, scores[:, 0], beam_logits

  with jax.default_matmul_precision("highest"):
    greedy, greedy_logits, best, best_score, beam_logits = map(
        np.asarray, decode(params, query, passages))
  for b in range(B):
    n = max_len if 1 not in greedy[b] else list(greedy[b]).index(1) + 1
    np.testing.assert_array_equal(greedy_logits[b, :n].argmax(-1), greedy[b, :n])
    assert (greedy[b, n:] == 0).all()
    n = max_len if 1 not in best[b] else list(best[b]).index(1) + 1
    logp = jax.nn.log_softmax(beam_logits[b, :n], axis=-1)
    total = float(np.take_along_axis(np.asarray(logp), best[b, :n, None], -1).sum())
    np.testing.assert_allclose(best_score[b], total / n, rtol=1e-4)


def test_passage_chunks_equal_all_passages_at_once(setup):
  """Encoding K = 3 passages one at a time (scan + remat) gives the outputs and gradients of
  encoding them together, with two queries per question sharing them too."""
  model, params, query, passages, dec = setup
  chunked = UnifiedRetrieverReader(
      UnifiedConfig(mt5=model.config.mt5, retriever_layer=model.config.retriever_layer,
                    passage_chunk_size=1))
  queries, decs = _question_major(query, query[::-1]), _question_major(dec, dec[::-1])

  def loss(module, p):
    out = module.apply({"params": p}, queries, passages, decs, return_reader_relevance=True)
    return (jnp.sum(out["logits"] ** 2) + jnp.sum(out["passage_vectors"] ** 2)
            + jnp.sum(out["reader_relevance"]) + jnp.sum(out["retrieval_scores"])), out

  with jax.default_matmul_precision("highest"):
    (l0, out0), g0 = jax.jit(jax.value_and_grad(functools.partial(loss, model), has_aux=True))(
        params)
    (l1, out1), g1 = jax.jit(jax.value_and_grad(functools.partial(loss, chunked),
                                                has_aux=True))(params)
  for name in out0:
    np.testing.assert_allclose(out1[name], out0[name], atol=1e-5, err_msg=name)
  np.testing.assert_allclose(l1, l0, rtol=1e-6)
  # Gradients up to ~50 here: compare at float32 accumulation error relative to each array.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(
      a, b, rtol=1e-4, atol=2e-5 * max(1.0, float(np.abs(b).max()))), g1, g0)
  with pytest.raises(ValueError, match="passage_chunk_size=2 does not divide the 3"):
    UnifiedRetrieverReader(UnifiedConfig(mt5=model.config.mt5, passage_chunk_size=2)).apply(
        {"params": params}, query, passages, dec)
