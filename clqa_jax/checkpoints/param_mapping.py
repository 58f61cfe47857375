"""Table-driven mapping between Hugging Face (Py)Torch T5/mT5 tensor names and our tree.

Each ``Rule`` pairs a Hugging Face name pattern with a path template in our (unscanned)
parameter tree and a named layout transform. ``{i}`` in both is a layer index. The same table
serves the import of Hugging Face mT5 checkpoints and of the official CLASS checkpoints (the
mT5 layout plus the retriever head at encoder block R).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable

import numpy as np

from clqa_jax.models.config import MT5Config


class CheckpointMappingError(ValueError):
  """Source tensors that have no destination, or destinations the source does not provide."""


@dataclasses.dataclass(frozen=True)
class Rule:
  hf: str          # pattern with optional {i} (a layer index)
  ours: str        # our path, '/'-separated, with the same {i}
  transform: str   # a key of TRANSFORMS


# transform(hf_array, config) -> our array; inverse(our_array, config) -> hf array.
def _in_heads(w, c):      # Linear [H*Dk, D] -> [D, H, Dk]
  return np.ascontiguousarray(w.T).reshape(c.d_model, c.num_heads, c.d_kv)


def _in_heads_inv(w, c):
  return np.ascontiguousarray(w.reshape(c.d_model, c.num_heads * c.d_kv).T)


def _out_heads(w, c):     # Linear [D, H*Dk] -> [H, Dk, D]
  return np.ascontiguousarray(w.T).reshape(c.num_heads, c.d_kv, c.d_model)


def _out_heads_inv(w, c):
  return np.ascontiguousarray(w.reshape(c.num_heads * c.d_kv, c.d_model).T)


def _transpose(w, c):
  return np.ascontiguousarray(w.T)


def _identity(w, c):
  return w


TRANSFORMS: dict[str, tuple[Callable, Callable]] = {
    "identity": (_identity, _identity),
    "transpose": (_transpose, _transpose),
    "in_heads": (_in_heads, _in_heads_inv),
    "out_heads": (_out_heads, _out_heads_inv),
}


def _attention_rules(hf_prefix: str, ours_prefix: str) -> list[Rule]:
  return [Rule(f"{hf_prefix}.{p}.weight", f"{ours_prefix}/{q}", t) for p, q, t in (
      ("q", "query", "in_heads"), ("k", "key", "in_heads"), ("v", "value", "in_heads"),
      ("o", "out", "out_heads"))]


def _mlp_rules(hf_prefix: str, ours_prefix: str) -> list[Rule]:
  return [Rule(f"{hf_prefix}.DenseReluDense.{n}.weight", f"{ours_prefix}/mlp/{n}", "transpose")
          for n in ("wi_0", "wi_1", "wo")]


MT5_RULES: list[Rule] = [
    Rule("shared.weight", "token_embedder/embedding", "identity"),
    Rule("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
         "encoder/relpos_bias/rel_embedding", "transpose"),
    Rule("encoder.block.{i}.layer.0.layer_norm.weight",
         "encoder/layers_{i}/pre_attention_layer_norm/scale", "identity"),
    *_attention_rules("encoder.block.{i}.layer.0.SelfAttention", "encoder/layers_{i}/attention"),
    Rule("encoder.block.{i}.layer.1.layer_norm.weight",
         "encoder/layers_{i}/pre_mlp_layer_norm/scale", "identity"),
    *_mlp_rules("encoder.block.{i}.layer.1", "encoder/layers_{i}"),
    Rule("encoder.final_layer_norm.weight", "encoder/encoder_norm/scale", "identity"),
    Rule("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
         "decoder/relpos_bias/rel_embedding", "transpose"),
    Rule("decoder.block.{i}.layer.0.layer_norm.weight",
         "decoder/layers_{i}/pre_self_attention_layer_norm/scale", "identity"),
    *_attention_rules("decoder.block.{i}.layer.0.SelfAttention",
                      "decoder/layers_{i}/self_attention"),
    Rule("decoder.block.{i}.layer.1.layer_norm.weight",
         "decoder/layers_{i}/pre_cross_attention_layer_norm/scale", "identity"),
    *_attention_rules("decoder.block.{i}.layer.1.EncDecAttention",
                      "decoder/layers_{i}/encoder_decoder_attention"),
    Rule("decoder.block.{i}.layer.2.layer_norm.weight",
         "decoder/layers_{i}/pre_mlp_layer_norm/scale", "identity"),
    *_mlp_rules("decoder.block.{i}.layer.2", "decoder/layers_{i}"),
    Rule("decoder.final_layer_norm.weight", "decoder/decoder_norm/scale", "identity"),
    Rule("lm_head.weight", "decoder/logits_dense", "transpose"),
]

# The official CLASS retriever head lives in encoder block R's self-attention module; {R} is
# substituted with the retriever layer.
CLASS_RETRIEVER_RULES: list[Rule] = [
    Rule("encoder.block.{R}.layer.0.SelfAttention.query_proj.weight",
         "retriever/query_proj", "transpose"),
    Rule("encoder.block.{R}.layer.0.SelfAttention.passage_proj.weight",
         "retriever/passage_proj", "transpose"),
    Rule("encoder.block.{R}.layer.0.SelfAttention.layer_norm.weight",
         "retriever/layer_norm/scale", "identity"),
]

# Aliases of ``shared.weight`` that Hugging Face may also store (tied storage).
HF_EMBEDDING_ALIASES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")


def expand_rules(rules: list[Rule], config: MT5Config,
                 retriever_layer: int | None = None) -> dict[str, tuple[str, str]]:
  """{hf name: (our path, transform)} with every layer index filled in."""
  out: dict[str, tuple[str, str]] = {}
  for rule in rules:
    hf, ours = rule.hf, rule.ours
    if "{R}" in hf:
      if retriever_layer is None:
        raise ValueError("retriever rules need retriever_layer")
      hf = hf.replace("{R}", str(retriever_layer))
    if "{i}" not in hf:
      out[hf] = (ours, rule.transform)
      continue
    num = config.num_encoder_layers if hf.startswith("encoder.") else config.num_decoder_layers
    for i in range(num):
      out[hf.format(i=i)] = (ours.format(i=i), rule.transform)
  return out


def mt5_rules(config: MT5Config) -> list[Rule]:
  """The rules for a config (the untied head only when the embeddings are untied)."""
  if config.tie_word_embeddings:
    return [r for r in MT5_RULES if r.hf != "lm_head.weight"]
  return list(MT5_RULES)


def mismatch_error(headline: str, missing: list[str], unexpected: list[str],
                   problems: list[str] = ()) -> CheckpointMappingError:
  """The error that lists every missing and every unexpected source name (and other
  problems), one line each, under ``headline``."""
  lines = [headline]
  if missing:
    lines.append(f"missing ({len(missing)}): " + ", ".join(missing))
  if unexpected:
    lines.append(f"unexpected ({len(unexpected)}): " + ", ".join(unexpected))
  lines.extend(problems)
  return CheckpointMappingError("\n".join(lines))


def hf_to_tree(tensors: dict[str, np.ndarray], config: MT5Config, rules: list[Rule],
               retriever_layer: int | None = None, source: str = "checkpoint") -> dict[str, Any]:
  """Maps Hugging Face tensors to our nested (unscanned) param tree.

  Raises CheckpointMappingError listing every unexpected source tensor and every missing one.
  """
  table = expand_rules(rules, config, retriever_layer)
  tensors = dict(tensors)
  problems = []
  if "shared.weight" not in tensors:
    for alias in HF_EMBEDDING_ALIASES:
      if alias in tensors:
        tensors["shared.weight"] = tensors[alias]
        break
  for alias in HF_EMBEDDING_ALIASES:
    if alias in tensors and alias != "shared.weight":
      a = tensors.pop(alias)
      if "shared.weight" in tensors and not np.array_equal(a, tensors["shared.weight"]):
        problems.append(f"{alias} differs from shared.weight (untied input embeddings are "
                        "not supported)")
  if "lm_head.weight" in tensors and "lm_head.weight" not in table:
    # A tied head may still be stored (e.g. in .bin files); it must equal the embedding.
    head = tensors.pop("lm_head.weight")
    if "shared.weight" in tensors and not np.array_equal(head, tensors["shared.weight"]):
      problems.append("lm_head.weight differs from shared.weight but the config ties them "
                      "(set tie_word_embeddings=false in config.json)")
  unexpected = sorted(set(tensors) - set(table))
  missing = sorted(set(table) - set(tensors))
  if unexpected or missing or problems:
    raise mismatch_error(f"{source}: tensors do not match the mT5 layout for this config",
                         missing, unexpected, problems)
  flat = {}
  for name, (path, transform) in table.items():
    array = TRANSFORMS[transform][0](np.asarray(tensors[name], np.float32), config)
    flat[path] = array
  return unflatten(flat)


def tree_to_hf(params: dict[str, Any], config: MT5Config, rules: list[Rule],
               retriever_layer: int | None = None) -> dict[str, np.ndarray]:
  """Inverse of ``hf_to_tree`` for an unscanned tree (Hugging Face export)."""
  flat = flatten(params)
  out = {}
  for name, (path, transform) in expand_rules(rules, config, retriever_layer).items():
    if path not in flat:
      raise CheckpointMappingError(f"parameter {path} missing for {name}")
    out[name] = TRANSFORMS[transform][1](np.asarray(flat[path]), config)
  return out


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in tree.items():
    path = f"{prefix}/{k}" if prefix else k
    if isinstance(v, dict):
      out.update(flatten(v, path))
    else:
      out[path] = v
  return out


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
  tree: dict[str, Any] = {}
  for path, v in flat.items():
    node = tree
    *parents, leaf = path.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = v
  return tree


_LAYER = re.compile(r"^layers_(\d+)$")


def scan_layers(params: dict[str, Any]) -> dict[str, Any]:
  """Stacks ``layers_0..layers_{L-1}`` subtrees of every stack into one ``layers`` tree."""
  out = {}
  for k, v in params.items():
    if not isinstance(v, dict):
      out[k] = v
      continue
    layer_keys = sorted((int(_LAYER.match(n).group(1)), n) for n in v if _LAYER.match(n))
    if layer_keys:
      if [i for i, _ in layer_keys] != list(range(len(layer_keys))):
        raise ValueError(f"{k}: layer indices are not contiguous from 0")
      layers = [v[n] for _, n in layer_keys]
      rest = {n: w for n, w in v.items() if not _LAYER.match(n)}
      rest["layers"] = _stack([flatten(layer) for layer in layers])
      out[k] = rest
    else:
      out[k] = scan_layers(v)
  return out


def _stack(flats: list[dict[str, Any]]) -> dict[str, Any]:
  return unflatten({p: np.stack([f[p] for f in flats]) for p in flats[0]})


def unscan_layers(params: dict[str, Any]) -> dict[str, Any]:
  """Inverse of ``scan_layers``."""
  out = {}
  for k, v in params.items():
    if not isinstance(v, dict):
      out[k] = v
    elif "layers" in v and isinstance(v["layers"], dict):
      flat = flatten(v["layers"])
      n = next(iter(flat.values())).shape[0]
      rest = {name: w for name, w in v.items() if name != "layers"}
      for i in range(n):
        rest[f"layers_{i}"] = unflatten({p: a[i] for p, a in flat.items()})
      out[k] = rest
    else:
      out[k] = unscan_layers(v)
  return out
