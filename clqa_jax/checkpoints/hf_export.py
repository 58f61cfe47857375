"""Hugging Face–compatible export: mT5 backbone plus the CLASS retriever head.

Writes ``config.json`` and ``model.safetensors`` that ``transformers``'
``MT5ForConditionalGeneration.from_pretrained`` loads (``tie_word_embeddings`` as the model
has it: false for mT5). The retriever head is stored under the official CLASS names,
``encoder.block.{R}.layer.0.SelfAttention.{query_proj,passage_proj,layer_norm}.weight`` (R in
``config.json`` as ``retriever_layer``, the name the official code reads), so the same
directory is an official-layout CLASS checkpoint: ``clqa import class`` and the official
PyTorch code read it; plain ``transformers`` ignores those three tensors (with a warning).
The names and layouts come from ``param_mapping``'s table, the one the importers use.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from clqa_jax import fileio
from clqa_jax.checkpoints import param_mapping as pm

HF_DTYPES = ("float32", "bfloat16")


def hf_config(config) -> dict[str, Any]:
  """The transformers ``MT5Config`` dict for a UnifiedConfig (or MT5Config)."""
  mt5 = config.mt5 if hasattr(config, "mt5") else config
  out = {
      "architectures": ["MT5ForConditionalGeneration"],
      "model_type": "mt5",
      "vocab_size": mt5.vocab_size,
      "d_model": mt5.d_model,
      "d_kv": mt5.d_kv,
      "d_ff": mt5.d_ff,
      "num_heads": mt5.num_heads,
      "num_layers": mt5.num_encoder_layers,
      "num_decoder_layers": mt5.num_decoder_layers,
      "relative_attention_num_buckets": mt5.relative_attention_num_buckets,
      "relative_attention_max_distance": mt5.relative_attention_max_distance,
      "dropout_rate": mt5.dropout_rate,
      "layer_norm_epsilon": mt5.layer_norm_epsilon,
      "feed_forward_proj": "gated-gelu",
      "dense_act_fn": "gelu_new",
      "is_gated_act": True,
      "initializer_factor": 1.0,
      "is_encoder_decoder": True,
      "tie_word_embeddings": mt5.tie_word_embeddings,
      "pad_token_id": mt5.pad_id,
      "eos_token_id": mt5.eos_id,
      "decoder_start_token_id": mt5.decoder_start_id,
      "use_cache": True,
  }
  if hasattr(config, "mt5"):
    out["retriever_layer"] = config.resolved_retriever_layer
  return out


def hf_tensors(config, params: Any, include_retriever: bool = True) -> dict[str, np.ndarray]:
  """{Hugging Face name: array} for params of a UnifiedConfig (scanned or not)."""
  import jax

  mt5 = config.mt5
  tree = jax.tree.map(np.asarray, params)
  if mt5.scan_layers:
    tree = pm.unscan_layers(tree)
  rules = pm.mt5_rules(mt5)
  if include_retriever:
    rules = rules + pm.CLASS_RETRIEVER_RULES
  return pm.tree_to_hf(tree, mt5, rules, retriever_layer=config.resolved_retriever_layer)


def export_hf(config, params: Any, out_dir: str, *, dtype: str = "float32",
              include_retriever: bool = True, vocab_path: str | None = None,
              overwrite: bool = False) -> str:
  """Writes ``config.json`` + ``model.safetensors`` (+ ``spiece.model``) to a local or gs://
  directory, published whole or not at all.

  Args:
    config: the UnifiedConfig of ``params``.
    params: the unified model's parameters.
    out_dir: the directory to create.
    dtype: "float32" or "bfloat16" tensors.
    include_retriever: also write the retriever head under the official CLASS names.
    vocab_path: a SentencePiece model copied as ``spiece.model`` (the name HF's T5 tokenizer
      looks for), when given.
    overwrite: replace an existing ``out_dir``.
  """
  import ml_dtypes
  from safetensors.numpy import save_file

  if dtype not in HF_DTYPES:
    raise ValueError(f"dtype must be one of {HF_DTYPES}, got {dtype!r}")
  out_dir = fileio.abspath(out_dir.rstrip("/"))
  if fileio.exists(out_dir) and not overwrite:
    raise FileExistsError(f"{out_dir} exists; pass --overwrite to replace it")
  np_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.float32
  tensors = {k: np.ascontiguousarray(v.astype(np_dtype))
             for k, v in hf_tensors(config, params, include_retriever).items()}
  cfg = hf_config(config)
  cfg["torch_dtype"] = dtype
  # safetensors writes local files only: a gs:// out_dir is staged locally, then uploaded.
  with fileio.staged_local_dir(out_dir, overwrite=overwrite) as local:
    save_file(tensors, fileio.join(local, "model.safetensors"), metadata={"format": "pt"})
    fileio.write_json(fileio.join(local, "config.json"), cfg, sort_keys=True)
    if vocab_path:
      fileio.copy(vocab_path, fileio.join(local, "spiece.model"))
  return out_dir
