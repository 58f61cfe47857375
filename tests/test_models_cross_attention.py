"""The unified model's decoder cross-attention options (reference/peer-methods.md 1.3 c-e): the
reader relevance modes against a numpy computation from per-layer cross-attention scores run by
hand, and the attention offset (bit-equal to the plain model at lambda = 0, the attention
re-weighting alpha * w^lambda, cached decoding equal to teacher forcing), scanned and unrolled.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clqa_jax.layers.attention import MultiHeadAttention
from clqa_jax.layers.transformer import DecoderLayer
from clqa_jax.models import MT5Config, UnifiedConfig, UnifiedModel, UnifiedRetrieverReader
from clqa_jax.models import layer_stack
from models_testutil import random_params

B, K, LQ, LP, T = 2, 3, 4, 6, 4
NUM_DECODER_LAYERS = 3
LAMBDA = 0.7   # large, so the offset visibly changes the attention of the tiny model


def _inputs():
  rng = np.random.default_rng(0)
  query = np.zeros((B, LQ), np.int32)
  query[0, :3] = rng.integers(2, 500, 3)
  query[1, :] = rng.integers(2, 500, LQ)
  passages = np.zeros((B, K, LP), np.int32)
  for b, lengths in enumerate([[6, 2, 0], [4, 6, 5]]):   # passage (0, 2) is padding
    for k, n in enumerate(lengths):
      if n:
        passages[b, k, :n] = rng.integers(2, 500, n)
        passages[b, k, n - 1] = 1
  dec = np.concatenate([np.zeros((B, 1), np.int32), rng.integers(2, 500, (B, T - 1))], 1)
  return query, passages, dec


def _config(scan, mode="class", weight=None):
  mt5 = MT5Config.preset("tiny", num_encoder_layers=2, num_decoder_layers=NUM_DECODER_LAYERS,
                         dropout_rate=0.1, scan_layers=scan)
  return UnifiedConfig(mt5=mt5, reader_relevance_mode=mode, attention_offset_weight=weight)


def _cross_query_key(layer, h, self_bias, self_mask, memory):
  """A decoder layer's cross-attention queries and keys, computed step by step from its
  sub-modules (not through the layer's own cross-attention call)."""
  x = layer.pre_self_attention_layer_norm(h)
  h = h + layer.self_attention(x, x, bias=self_bias, mask=self_mask)
  query = layer.encoder_decoder_attention.project_query(layer.pre_cross_attention_layer_norm(h))
  key, _ = layer.encoder_decoder_attention.project_key_value(memory)
  return query, key


def _by_hand(config, params, query, passages, dec, memory_bias):
  """Every decoder layer's cross-attention queries/keys (eval mode), layer by layer."""
  module = UnifiedRetrieverReader(config)
  c = config.mt5
  variables = {"params": params}
  enc = module.apply(variables, query, passages, method="encode_for_reader")
  h = module.apply(variables, dec, method=lambda m, t: m.token_embedder(t))
  positions = jnp.arange(T)
  self_bias = module.apply(variables, method=lambda m: m.decoder.relpos_bias(
      positions[None], positions[None]))
  self_mask = (positions[None, :] <= positions[:, None])[None, None]
  mmask = enc["memory_mask"][:, None, None, :]
  bias = None if memory_bias is None else memory_bias[:, None, None, :]
  layer_def = DecoderLayer(c, parent=None)
  per_layer = []
  decoder = params["decoder"]
  stacked = decoder["layers"] if c.scan_layers else [decoder[f"layers_{i}"]
                                                     for i in range(c.num_decoder_layers)]
  for i in range(c.num_decoder_layers):
    p = {"params": layer_stack.layer_params(stacked, i, c.scan_layers)}
    per_layer.append(layer_def.apply(p, h, self_bias, self_mask, enc["memory"],
                                     method=_cross_query_key))
    h, _ = layer_def.apply(p, h, self_bias, self_mask, mmask, memory=enc["memory"],
                           memory_bias=bias)
  return enc, per_layer


def _everything(params, query, passages, dec, rng, scan):
  """One program per layout: the model's outputs in every mode and the hand-run layers."""
  out = {}
  for name, mode, weight in (("plain", "class", None), ("zero", "class", 0.0),
                             ("class", "class", LAMBDA),
                             ("probs", "all_layers_probs", LAMBDA),
                             ("logits", "fidkd_logits", LAMBDA),
                             ("probs_plain", "all_layers_probs", None),
                             ("logits_plain", "fidkd_logits", None)):
    module = UnifiedRetrieverReader(_config(scan, mode, weight))
    out[name] = module.apply({"params": params}, query, passages, dec,
                             return_reader_relevance=True)
    if name in ("plain", "zero", "probs"):
      out[name + "_train"] = module.apply({"params": params}, query, passages, dec,
                                          enable_dropout=True, return_reader_relevance=True,
                                          rngs={"dropout": rng})
  offset = UnifiedRetrieverReader(_config(scan, weight=LAMBDA))
  out["bias"] = offset.apply({"params": params}, query, passages,
                             method="encode_for_decoding")["memory_bias"]
  for name, weight in (("plain", None), ("offset", LAMBDA)):
    enc, layers = _by_hand(_config(scan, weight=weight), params, query, passages, dec,
                           out["bias"] if weight else None)
    out[f"hand_{name}"] = dict(memory_mask=enc["memory_mask"], layers=layers)
  return out


@pytest.fixture(scope="module", params=[True, False], ids=["scan", "unrolled"])
def run(request):
  scan = request.param
  query, passages, dec = _inputs()
  params = random_params(UnifiedRetrieverReader(_config(scan)), query, passages, dec)
  with jax.default_matmul_precision("highest"):
    out = jax.jit(functools.partial(_everything, scan=scan))(
        params, query, passages, dec, jax.random.PRNGKey(5))
  return scan, params, (query, passages, dec), jax.tree.map(np.asarray, out)


def _np_first(hand, bias):
  """Per-layer first-position scores [L, N, H, S] (bias added) and masked probabilities."""
  mask = hand["memory_mask"]
  logits = np.stack([np.einsum("nhd,nshd->nhs", q[:, 0], k) for q, k in hand["layers"]])
  if bias is not None:
    logits = logits + bias[None, :, None, :]
  masked = np.where(mask[None, :, None, :], logits, -np.inf)
  probs = np.exp(masked - masked.max(-1, keepdims=True))
  return logits, probs / probs.sum(-1, keepdims=True)


def _np_relevance(hand, bias):
  """(class, all_layers_probs, fidkd_logits) relevances [N, K] in numpy."""
  logits, probs = _np_first(hand, bias)
  n = logits.shape[1]
  mask = hand["memory_mask"].reshape(n, K, -1)
  probs = probs.reshape(probs.shape[:3] + (K, -1))
  logits = logits.reshape(logits.shape[:3] + (K, -1))
  last = probs[-1].sum(-1).mean(1)
  all_layers = probs.sum(-1).mean((0, 2))
  # FiD's get_crossattention_scores: masked_fill(~mask, 0), sum over layers, heads and tokens,
  # divided by ntokens * layers * heads.
  layers, _, heads = logits.shape[:3]
  summed = np.where(mask[None, :, None], logits, 0.0).sum((0, 2, 4))
  count = mask.sum(-1) * layers * heads
  fidkd = np.where(count > 0, summed / np.maximum(count, 1), 0.0)
  return last, all_layers, fidkd


def test_relevance_modes_equal_numpy_from_per_layer_attention(run):
  _, _, _, out = run
  for suffix, hand, bias in (("_plain", out["hand_plain"], None),
                             ("", out["hand_offset"], out["bias"])):
    last, all_layers, fidkd = _np_relevance(hand, bias)
    np.testing.assert_allclose(out["probs" + suffix]["reader_relevance"], all_layers, atol=1e-5)
    np.testing.assert_allclose(out["logits" + suffix]["reader_relevance"], fidkd, rtol=1e-5,
                               atol=1e-5)
    cls = out["plain" if suffix else "class"]["reader_relevance"]
    np.testing.assert_allclose(cls, last, atol=1e-5)
  # Padding passage (0, 2): no relevance in any mode; the probabilities sum to one over K.
  for name in ("probs", "logits", "class", "probs_plain", "logits_plain"):
    assert out[name]["reader_relevance"][0, 2] == 0.0, name
  np.testing.assert_allclose(out["probs"]["reader_relevance"].sum(-1), 1.0, atol=1e-5)
  # The modes differ from each other (the mode is honoured).
  assert not np.allclose(out["probs"]["reader_relevance"], out["class"]["reader_relevance"])
  # Training mode: post-dropout probabilities, finite.
  assert np.all(np.isfinite(out["probs_train"]["reader_relevance"]))
  assert not np.allclose(out["probs_train"]["reader_relevance"],
                         out["probs"]["reader_relevance"])


def test_relevance_mode_leaves_logits_alone(run):
  _, _, _, out = run
  for name in ("probs_plain", "logits_plain"):
    np.testing.assert_allclose(out[name]["logits"], out["plain"]["logits"], atol=1e-5)


def test_offset_bias_is_lambda_log_softmax_of_the_retrieval_scores(run):
  _, _, _, out = run
  scores = out["plain"]["retrieval_scores"]
  present = np.array([[True, True, False], [True, True, True]])
  masked = np.where(present, scores, -np.inf)
  top = masked.max(-1, keepdims=True)
  log_w = masked - top - np.log(np.exp(masked - top).sum(-1, keepdims=True))
  expected = np.where(present, LAMBDA * log_w, 0.0)
  np.testing.assert_allclose(out["bias"], np.repeat(expected, LQ + LP, axis=1), atol=1e-5)


def test_zero_offset_is_bit_equal_to_the_plain_model(run):
  _, _, _, out = run
  for suffix in ("", "_train"):
    for name in ("logits", "reader_relevance"):
      np.testing.assert_array_equal(out["zero" + suffix][name], out["plain" + suffix][name])
  # A non-zero offset changes the answer distribution.
  assert not np.allclose(out["class"]["logits"], out["plain"]["logits"], atol=1e-4)


def test_one_attention_call_reweights_by_the_retriever_distribution():
  """alpha' = alpha * w^lambda / sum(alpha * w^lambda) per passage slot."""
  rng = np.random.default_rng(1)
  n, t, k, slots, d = 2, 3, 3, 4, 16
  attention = MultiHeadAttention(d, 2, 8)
  x = rng.standard_normal((n, t, d)).astype(np.float32)
  memory = rng.standard_normal((n, k * slots, d)).astype(np.float32)
  mask = np.ones((n, k * slots), bool)
  mask[0, -2:] = False
  w = rng.dirichlet(np.ones(k), size=n).astype(np.float32)          # softmax_k s
  bias = np.repeat(LAMBDA * np.log(w), slots, axis=1)
  params = attention.init(jax.random.PRNGKey(0), x, memory)
  call = functools.partial(attention.apply, params, x, memory, mask=mask[:, None, None, :],
                           return_probs=True)
  _, alpha = call()
  _, shifted = call(bias=bias[:, None, None, :])
  expected = np.asarray(alpha) * np.repeat(w ** LAMBDA, slots, axis=1)[:, None, None, :]
  expected /= expected.sum(-1, keepdims=True)
  np.testing.assert_allclose(shifted, expected, rtol=1e-5, atol=1e-7)
  assert np.all(np.asarray(shifted)[0, ..., -2:] == 0.0)


def _decode_all(config, params, query, passages, dec):
  """Teacher-forced logits, the same through the decoding cache, and greedy answers."""
  module = UnifiedRetrieverReader(config)
  variables = {"params": params}
  forced = module.apply(variables, query, passages, dec)["logits"]
  enc = module.apply(variables, query, passages, method="encode_for_decoding")
  cache = module.apply(variables, enc["memory"], enc["memory_mask"], T,
                       enc.get("memory_bias"), method="init_decoding_cache")
  stepped = []
  for t in range(T):
    logits, cache = module.apply(variables, cache, dec[:, t], method="decode_step")
    stepped.append(logits)
  greedy = UnifiedModel(module).predict_batch(params, {"query_tokens": query,
                                                       "passage_tokens": passages},
                                              max_length=T)
  shifted = jnp.concatenate([jnp.zeros_like(greedy[:, :1]), greedy[:, :-1]], -1)
  greedy_forced = module.apply(variables, query, passages, shifted)["logits"]
  return dict(forced=forced, stepped=jnp.stack(stepped, 1), greedy=greedy,
              greedy_forced=greedy_forced)


def test_cached_decoding_carries_the_offset(run):
  scan, params, (query, passages, dec), _ = run
  weights = {"plain": None, "zero": 0.0, "offset": LAMBDA}

  def decode_each(params, query, passages, dec):   # one program for the three models
    return {name: _decode_all(_config(scan, weight=w), params, query, passages, dec)
            for name, w in weights.items()}

  with jax.default_matmul_precision("highest"):
    outs = jax.tree.map(np.asarray, jax.jit(decode_each)(params, query, passages, dec))
  for name in ("forced", "stepped", "greedy"):
    np.testing.assert_array_equal(outs["zero"][name], outs["plain"][name], err_msg=name)
  offset = outs["offset"]
  np.testing.assert_allclose(offset["stepped"], offset["forced"], rtol=1e-5, atol=1e-5)
  assert not np.allclose(offset["stepped"], outs["plain"]["stepped"], atol=1e-4)
  for b in range(B):
    n = T if 1 not in offset["greedy"][b] else list(offset["greedy"][b]).index(1) + 1
    np.testing.assert_array_equal(offset["greedy_forced"][b, :n].argmax(-1),
                                  offset["greedy"][b, :n])


def test_config_validates_and_round_trips():
  config = _config(True, "fidkd_logits", 0.01)
  assert UnifiedConfig.from_dict(config.to_dict()) == config
  assert UnifiedConfig.from_dict({"mt5": config.mt5.to_dict()}).reader_relevance_mode == "class"
  with pytest.raises(ValueError, match="reader_relevance_mode must be one of"):
    _config(True, "last_layer")
  with pytest.raises(ValueError, match="attention_offset_weight must be None or a number"):
    _config(True, weight="0.01")
