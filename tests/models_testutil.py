"""Tiny random Hugging Face mT5 models written to disk, as references for parity tests."""
from __future__ import annotations

import os

import numpy as np

# Two configurations: encoder layers != decoder layers in both directions; the second uses few
# buckets and a short max distance so that the logarithmic buckets and saturation are exercised.
HF_CONFIGS = {
    "a": dict(vocab_size=300, d_model=32, d_kv=8, d_ff=48, num_heads=4, num_layers=3,
              num_decoder_layers=2, relative_attention_num_buckets=32,
              relative_attention_max_distance=128),
    "b": dict(vocab_size=200, d_model=48, d_kv=12, d_ff=64, num_heads=2, num_layers=2,
              num_decoder_layers=3, relative_attention_num_buckets=8,
              relative_attention_max_distance=12),
}


def build_hf_mt5(name: str, seed: int = 0, eos_like: int | None = None, **overrides):
  """A random MT5ForConditionalGeneration (eval mode, untied head, dropout 0); ``overrides``
  change fields of ``HF_CONFIGS[name]`` (e.g. vocab_size)."""
  import torch
  import transformers

  cfg = transformers.MT5Config(
      **{**HF_CONFIGS[name], **overrides}, dropout_rate=0.0, feed_forward_proj="gated-gelu",
      tie_word_embeddings=False, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
  torch.manual_seed(seed)
  model = transformers.MT5ForConditionalGeneration(cfg).eval()
  with torch.no_grad():
    # HF's default init gives near-uniform outputs at this size; spread the logits so greedy
    # and beam decisions are well separated, and make EOS likely enough to end some answers.
    model.lm_head.weight.mul_(4.0)
    if eos_like is not None:
      model.lm_head.weight[1] = 1.05 * model.lm_head.weight[eos_like]
  return model


def save_hf(model, directory: str, safe: bool = True) -> str:
  os.makedirs(directory, exist_ok=True)
  model.save_pretrained(directory, safe_serialization=safe)
  return directory


def padded_batch(vocab: int, lengths: list[int], seed: int = 0) -> np.ndarray:
  """Token ids [B, max(lengths)] ending in EOS (1), right-padded with 0."""
  rng = np.random.default_rng(seed)
  out = np.zeros((len(lengths), max(lengths)), np.int32)
  for i, n in enumerate(lengths):
    out[i, :n - 1] = rng.integers(2, vocab, n - 1)
    out[i, n - 1] = 1
  return out


def random_params(model, *init_args, seed: int = 0):
  """Random float32 numpy parameters with the model's tree, without compiling its init.

  Kernels get std 1/sqrt(fan_in) (fan_in = the leading dim, or heads*kv for attention
  outputs), norm scales 1 + N(0, 0.1^2) (so they are not all ones), tables std 1.
  """
  import jax
  import flax.linen as nn

  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), *init_args)["params"]
  rng = np.random.default_rng(seed)

  def make(path, leaf):
    names = [getattr(p, "key", str(p)) for p in path]
    box = leaf if isinstance(leaf, nn.Partitioned) else None
    shape = leaf.value.shape if box else leaf.shape
    axes = tuple(box.names) if box else ()
    if axes and axes[0] == "layers":
      axes = axes[1:]
    core = shape[len(shape) - len(axes):] if axes else shape
    if names[-1] == "scale":
      value = 1.0 + 0.1 * rng.standard_normal(shape)
    elif names[-1] in ("embedding", "rel_embedding"):
      value = rng.standard_normal(shape)
    else:
      fan_in = core[0] * core[1] if names[-1] == "out" else core[0]
      value = rng.standard_normal(shape) / np.sqrt(fan_in)
    return value.astype(np.float32)

  return jax.tree_util.tree_map_with_path(
      make, shapes, is_leaf=lambda x: isinstance(x, nn.Partitioned))
