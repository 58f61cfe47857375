"""Import Hugging Face mT5 checkpoints (and the official CLASS layout) into our parameters.

A source directory holds ``config.json`` and the weights as ``model.safetensors``,
``pytorch_model.bin`` (read with ``torch.load(weights_only=True)``), or a sharded variant with
its ``*.index.json``. Tensor names are mapped by the table in ``param_mapping``; anything the
table does not expect, or expects but does not find, is an error listing the names.
"""
from __future__ import annotations

import json
import re
import struct
from typing import Any

import ml_dtypes
import numpy as np

from clqa_jax import fileio
from clqa_jax.checkpoints import param_mapping as pm
from clqa_jax.models.config import MT5Config

_SAFETENSORS_DTYPES = {
    "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16, "F64": np.float64,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
    "BOOL": np.bool_,
}


class CheckpointFormatError(ValueError):
  """A checkpoint file or config that cannot be read as an mT5 checkpoint."""


# The weight files of a Hugging Face directory, in the order they are looked for.
HF_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                   "pytorch_model.bin.index.json")


def _safetensors_header(f, path: str) -> dict[str, Any]:
  raw_len = f.read(8)
  if len(raw_len) != 8:
    raise CheckpointFormatError(f"{path}: truncated safetensors header")
  (header_len,) = struct.unpack("<Q", raw_len)
  try:
    return json.loads(f.read(header_len))
  except json.JSONDecodeError as e:
    raise CheckpointFormatError(f"{path}: bad safetensors header: {e}") from e


def read_safetensors(path: str) -> dict[str, np.ndarray]:
  """All tensors of one ``.safetensors`` file as numpy arrays (bf16 via ml_dtypes)."""
  with fileio.open(path, "rb") as f:
    header = _safetensors_header(f, path)
    data = f.read()
  out = {}
  for name, info in header.items():
    if name == "__metadata__":
      continue
    dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
    if dtype is None:
      raise CheckpointFormatError(f"{path}: tensor {name}: unsupported dtype {info['dtype']}")
    begin, end = info["data_offsets"]
    out[name] = np.frombuffer(data[begin:end], dtype=dtype).reshape(info["shape"])
  return out


def read_torch_bin(path: str) -> dict[str, np.ndarray]:
  """A ``pytorch_model.bin`` state dict, loaded with ``weights_only=True`` (no pickled code)."""
  import torch  # Only this path needs torch.

  with fileio.local_copy(path) as local:
    state = torch.load(local, map_location="cpu", weights_only=True)
  return {k: v.detach().float().numpy() if v.is_floating_point() else v.numpy()
          for k, v in state.items()}


def _weight_file(src: str) -> str:
  """The first of ``HF_WEIGHT_FILES`` that ``src`` holds."""
  for name in HF_WEIGHT_FILES:
    if fileio.exists(fileio.join(src, name)):
      return name
  raise FileNotFoundError(
      f"{src}: no model.safetensors, pytorch_model.bin or sharded index found")


def _weight_map(path: str) -> dict[str, str]:
  weight_map = fileio.read_json(path).get("weight_map")
  if not isinstance(weight_map, dict):
    raise CheckpointFormatError(f"{path}: no 'weight_map' object")
  return weight_map


def read_hf_tensors(src: str) -> dict[str, np.ndarray]:
  """Reads every tensor of a Hugging Face checkpoint directory (single file or sharded)."""
  name = _weight_file(src)
  reader = read_safetensors if name.startswith("model.safetensors") else read_torch_bin
  path = fileio.join(src, name)
  if not name.endswith(".index.json"):
    return reader(path)
  tensors: dict[str, np.ndarray] = {}
  for shard in sorted(set(_weight_map(path).values())):
    tensors.update(reader(fileio.join(src, shard)))
  return tensors


def hf_tensor_names(src: str) -> list[str]:
  """The tensor names of a Hugging Face directory, read from the safetensors header or the
  shard index where there is one (a single ``pytorch_model.bin`` is loaded)."""
  name = _weight_file(src)
  path = fileio.join(src, name)
  if name.endswith(".index.json"):
    return sorted(_weight_map(path))
  if name == "model.safetensors":
    with fileio.open(path, "rb") as f:
      return sorted(k for k in _safetensors_header(f, path) if k != "__metadata__")
  return sorted(read_torch_bin(path))


# The official CLASS name of the retriever head's query projection (``pm.CLASS_RETRIEVER_RULES``).
_RETRIEVER_TENSOR = re.compile(
    r"^encoder\.block\.\d+\.layer\.0\.SelfAttention\.query_proj\.weight$")


def has_class_retriever_head(src: str) -> bool:
  """Whether a Hugging Face directory also holds the official CLASS retriever head."""
  return any(_RETRIEVER_TENSOR.match(n) for n in hf_tensor_names(src))


def _read_hf_config(src: str) -> tuple[str, dict[str, Any]]:
  """(path, fields) of ``src/config.json``."""
  path = fileio.join(src, "config.json")
  try:
    hf = fileio.read_json(path)
  except FileNotFoundError:
    raise FileNotFoundError(f"{src}: config.json not found") from None
  except json.JSONDecodeError as e:
    raise CheckpointFormatError(f"{path}: line {e.lineno}: {e.msg}") from e
  if not isinstance(hf, dict):
    raise CheckpointFormatError(f"{path}: line 1: expected a JSON object")
  return path, hf


# config.json fields the official CLASS code adds to T5Config (model.py, RRAttention): the encoder
# block whose self-attention gives the retrieval vectors, and the attention head whose query/key
# states are the MaxSim token vectors (absent for the projection head CLASS trains).
RETRIEVER_LAYER_FIELD = "retriever_layer"
RETRIEVER_HEAD_FIELD = "retriever_head"
# The official train.py gives a teacher config without retriever_head this head.
DEFAULT_TEACHER_RETRIEVER_HEAD = 6


def _optional_index(path: str, hf: dict[str, Any], field: str, bound: int) -> int | None:
  """``hf[field]`` checked to be an integer in [0, bound); None when absent or null."""
  value = hf.get(field)
  if value is None:
    return None
  if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < bound:
    raise CheckpointFormatError(f"{path}: field {field} is {value!r}; expected an integer in "
                                f"[0, {bound})")
  return value


def retriever_layer_from_hf(src: str, requested: int | None = None) -> int | None:
  """The retriever layer R of a Hugging Face / CLASS directory, as the official code reads it.

  ``config.json``'s ``retriever_layer`` when present (the official teacher and evaluation code
  load it with the config), else ``requested`` (None: the model's default, encoder layers // 2).

  Raises:
    CheckpointFormatError: the field is no valid layer, or ``requested`` differs from it.
  """
  path, hf = _read_hf_config(src)
  stored = _optional_index(path, hf, RETRIEVER_LAYER_FIELD, hf.get("num_layers") or 0)
  if stored is None:
    return requested
  if requested is not None and requested != stored:
    raise CheckpointFormatError(
        f"{path}: field {RETRIEVER_LAYER_FIELD} is {stored}, but retriever layer {requested} "
        "was asked for; the checkpoint was trained with its own layer (drop --retriever_layer)")
  return stored


def retriever_head_from_hf(src: str) -> int | None:
  """``config.json``'s ``retriever_head`` (the MaxSim attention head), or None when absent."""
  path, hf = _read_hf_config(src)
  return _optional_index(path, hf, RETRIEVER_HEAD_FIELD, hf.get("num_heads") or 0)


def config_from_hf(src: str, **overrides: Any) -> MT5Config:
  """MT5Config from a Hugging Face ``config.json`` (T5.1.1/mT5 gated-GELU only)."""
  path, hf = _read_hf_config(src)
  proj = hf.get("feed_forward_proj", "relu")
  if proj != "gated-gelu":
    raise CheckpointFormatError(
        f"{path}: field feed_forward_proj is {proj!r}; only 'gated-gelu' (T5.1.1/mT5) is "
        "supported")
  required = ("vocab_size", "d_model", "d_kv", "d_ff", "num_heads", "num_layers")
  absent = [k for k in required if k not in hf]
  if absent:
    raise CheckpointFormatError(f"{path}: missing fields {absent}")
  fields = dict(
      vocab_size=hf["vocab_size"], d_model=hf["d_model"], d_kv=hf["d_kv"], d_ff=hf["d_ff"],
      num_heads=hf["num_heads"], num_encoder_layers=hf["num_layers"],
      num_decoder_layers=hf.get("num_decoder_layers") or hf["num_layers"],
      relative_attention_num_buckets=hf.get("relative_attention_num_buckets", 32),
      relative_attention_max_distance=hf.get("relative_attention_max_distance", 128),
      dropout_rate=hf.get("dropout_rate", 0.1),
      layer_norm_epsilon=hf.get("layer_norm_epsilon", 1e-6),
      # transformers' T5Config defaults to tied embeddings when the field is absent.
      tie_word_embeddings=hf.get("tie_word_embeddings", True),
      pad_id=hf.get("pad_token_id", 0) if hf.get("pad_token_id") is not None else 0,
      eos_id=hf.get("eos_token_id", 1) if hf.get("eos_token_id") is not None else 1,
      decoder_start_id=hf.get("decoder_start_token_id", 0) or 0,
  )
  fields.update(overrides)
  try:
    return MT5Config(**fields)
  except ValueError as e:
    raise CheckpointFormatError(f"{path}: {e}") from e


def _finish(params: dict[str, Any], config: MT5Config) -> dict[str, Any]:
  return pm.scan_layers(params) if config.scan_layers else params


def load_hf_mt5(path: str, **config_overrides: Any) -> tuple[MT5Config, dict[str, Any]]:
  """Loads a Hugging Face mT5 checkpoint directory.

  Args:
    path: directory with config.json and model.safetensors / pytorch_model.bin.
    **config_overrides: MT5Config fields to change (e.g. dtype="bfloat16", scan_layers=True,
      dropout_rate=0.1).

  Returns:
    (MT5Config, params): params is a nested dict of float32 numpy arrays for
    ``MT5(config).apply({"params": params}, ...)``.

  Raises:
    CheckpointMappingError: listing missing and unexpected tensors.
  """
  config = config_from_hf(path, **config_overrides)
  tensors = read_hf_tensors(path)
  params = pm.hf_to_tree(tensors, config, pm.mt5_rules(config), source=path)
  return config, _finish(params, config)


def load_class_checkpoint(path: str, retriever_layer: int | None = None,
                          **config_overrides: Any):
  """Loads an official CLASS checkpoint (mT5 layout + retriever head at encoder block R).

  R is ``config.json``'s ``retriever_layer`` when present (``retriever_layer_from_hf``), else
  ``retriever_layer``, else encoder layers // 2.

  Returns:
    (UnifiedConfig, params) for ``UnifiedRetrieverReader``.
  """
  from clqa_jax.models.unified import UnifiedConfig  # Avoids a models <-> checkpoints cycle.

  mt5 = config_from_hf(path, **config_overrides)
  config = UnifiedConfig(mt5=mt5, retriever_layer=retriever_layer_from_hf(path, retriever_layer))
  tensors = read_hf_tensors(path)
  rules = pm.mt5_rules(mt5) + pm.CLASS_RETRIEVER_RULES
  params = pm.hf_to_tree(tensors, mt5, rules, retriever_layer=config.resolved_retriever_layer,
                         source=path)
  return config, _finish(params, mt5)


def config_record(config: Any) -> dict[str, Any]:
  """The JSON record of a model config (``model_config.json``): its kind and its fields."""
  kind = "unified" if hasattr(config, "mt5") else "mt5"
  return {"kind": kind, "config": config.to_dict()}


def config_from_record(record: dict[str, Any]):
  """MT5Config or UnifiedConfig from a ``config_record``."""
  from clqa_jax.models.unified import UnifiedConfig

  kind = record.get("kind")
  if kind == "mt5":
    return MT5Config.from_dict(record["config"])
  if kind == "unified":
    return UnifiedConfig.from_dict(record["config"])
  raise CheckpointFormatError(f"config record: unknown kind {kind!r} (expected mt5|unified)")


def load_hf_mt5_as_unified(path: str, retriever_layer: int | None = None, seed: int = 0,
                           **config_overrides: Any):
  """A Hugging Face mT5 checkpoint as the start of a ``UnifiedRetrieverReader`` (stage 1).

  The retriever head (``retriever/query_proj``, ``passage_proj``, ``layer_norm``), which
  plain mT5 lacks, is freshly initialised with ``seed``. R is ``config.json``'s
  ``retriever_layer`` when present (a ReAtt-style teacher saved by the official code), else
  ``retriever_layer``, else encoder layers // 2.

  Returns:
    (UnifiedConfig, params, initialised): ``initialised`` lists the parameter paths that did
    not come from the checkpoint.
  """
  mt5, params = load_hf_mt5(path, **config_overrides)
  return add_new_retriever_head(mt5, params, retriever_layer_from_hf(path, retriever_layer), seed)


def add_new_retriever_head(mt5: MT5Config, params: dict[str, Any],
                           retriever_layer: int | None, seed: int):
  """Plain mT5 ``params`` plus a retriever head initialised with ``seed``: the start of a
  ``UnifiedRetrieverReader`` (any mT5 source imported with ``--unified``).

  Returns:
    (UnifiedConfig, params, initialised): ``initialised`` lists the head's parameter paths.
  """
  import jax

  from clqa_jax.models.unified import RetrieverHead, UnifiedConfig

  config = UnifiedConfig(mt5=mt5, retriever_layer=retriever_layer)
  head = RetrieverHead(mt5.d_model, mt5.layer_norm_epsilon)
  dummy = jax.numpy.zeros((1, mt5.d_model), jax.numpy.float32)
  head_params = head.init(jax.random.PRNGKey(seed), dummy, True)["params"]
  head_params = jax.tree.map(np.asarray, _unbox(head_params))
  params = dict(params, retriever=head_params)
  initialised = sorted(f"retriever/{p}" for p in pm.flatten(head_params))
  return config, params, initialised


def _unbox(tree):
  import flax.linen as nn

  return nn.meta.unbox(tree)
