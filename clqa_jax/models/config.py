"""``MT5Config``: the frozen, validated description of a T5.1.1/mT5 encoder-decoder."""
from __future__ import annotations

import dataclasses
import json
from typing import Any

import gin
import jax
import jax.numpy as jnp

REMAT_POLICIES = ("none", "full", "dots", "dots_with_no_batch_dims")
ACTIVATION_DTYPES = ("float32", "bfloat16")

# name -> (vocab, d_model, d_kv, d_ff, heads, encoder layers, decoder layers); the public
# google/mt5-* checkpoints, plus "tiny" for tests.
_PRESETS: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "tiny": (512, 64, 16, 128, 4, 4, 2),
    "small": (250112, 512, 64, 1024, 6, 8, 8),
    "base": (250112, 768, 64, 2048, 12, 12, 12),
    "large": (250112, 1024, 64, 2816, 16, 24, 24),
    "xl": (250112, 2048, 64, 5120, 32, 24, 24),
    "xxl": (250112, 4096, 64, 10240, 64, 24, 24),
}
PRESETS = tuple(_PRESETS)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class MT5Config:
  """Dimensions and options of the model (defaults: mT5-small).

  ``dtype`` is the activation dtype; parameters are always float32. ``remat_policy`` picks what
  each layer keeps for the backward pass ("none" keeps everything). ``scan_layers`` stores each
  stack's layers stacked on a leading ``layers`` axis and runs them with ``lax.scan``.
  """
  vocab_size: int = 250112
  d_model: int = 512
  d_kv: int = 64
  d_ff: int = 1024
  num_heads: int = 6
  num_encoder_layers: int = 8
  num_decoder_layers: int = 8
  relative_attention_num_buckets: int = 32
  relative_attention_max_distance: int = 128
  dropout_rate: float = 0.1
  layer_norm_epsilon: float = 1e-6
  dtype: str = "float32"
  tie_word_embeddings: bool = False
  remat_policy: str = "none"
  scan_layers: bool = False
  pad_id: int = 0
  eos_id: int = 1
  decoder_start_id: int = 0

  def __post_init__(self):
    positive = ("vocab_size", "d_model", "d_kv", "d_ff", "num_heads", "num_encoder_layers",
                "num_decoder_layers", "relative_attention_num_buckets",
                "relative_attention_max_distance")
    for name in positive:
      value = getattr(self, name)
      if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"MT5Config.{name} must be a positive int, got {value!r}")
    if self.relative_attention_num_buckets % 2:
      raise ValueError("MT5Config.relative_attention_num_buckets must be even (bidirectional "
                       f"buckets are split in halves), got {self.relative_attention_num_buckets}")
    if self.relative_attention_max_distance < self.relative_attention_num_buckets // 2:
      raise ValueError("MT5Config.relative_attention_max_distance must be >= num_buckets/2")
    if not 0.0 <= self.dropout_rate < 1.0:
      raise ValueError(f"MT5Config.dropout_rate must be in [0, 1), got {self.dropout_rate}")
    if not self.layer_norm_epsilon > 0:
      raise ValueError(f"MT5Config.layer_norm_epsilon must be > 0, got {self.layer_norm_epsilon}")
    if self.dtype not in ACTIVATION_DTYPES:
      raise ValueError(f"MT5Config.dtype must be one of {ACTIVATION_DTYPES}, got {self.dtype!r}")
    if self.remat_policy not in REMAT_POLICIES:
      raise ValueError(
          f"MT5Config.remat_policy must be one of {REMAT_POLICIES}, got {self.remat_policy!r}")
    for name in ("pad_id", "eos_id", "decoder_start_id"):
      if not 0 <= getattr(self, name) < self.vocab_size:
        raise ValueError(f"MT5Config.{name}={getattr(self, name)} outside the vocabulary")

  @classmethod
  def preset(cls, name: str, **overrides: Any) -> "MT5Config":
    """A named preset ("tiny", "small", "base", "large", "xl", "xxl") with optional overrides."""
    if name not in _PRESETS:
      raise ValueError(f"unknown MT5Config preset {name!r}; choose one of {PRESETS}")
    v, d, dkv, dff, h, le, ld = _PRESETS[name]
    fields = dict(vocab_size=v, d_model=d, d_kv=dkv, d_ff=dff, num_heads=h,
                  num_encoder_layers=le, num_decoder_layers=ld)
    fields.update(overrides)
    return cls(**fields)

  @property
  def activation_dtype(self) -> jnp.dtype:
    return jnp.dtype(self.dtype)

  def replace(self, **changes: Any) -> "MT5Config":
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "MT5Config":
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
      raise ValueError(f"MT5Config: unknown fields {unknown}")
    return cls(**d)

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)

  @classmethod
  def from_json(cls, text: str) -> "MT5Config":
    return cls.from_dict(json.loads(text))


def _bound_in_gin(configurable: str, parameter: str) -> bool:
  try:
    gin.query_parameter(f"{configurable}.{parameter}")
    return True
  except ValueError:
    return False


@gin.configurable
def mt5_preset(name: str = "small") -> MT5Config:
  """The gin size files' constructor (``mt5_preset.name = "large"``): the dimensions of the
  named preset, except those bound on ``MT5Config`` in gin, which win (``MT5Config.vocab_size =
  1024`` on top of ``mt5_preset.name = "tiny"``); options such as ``MT5Config.dtype`` come from
  gin as usual. The sizes themselves live only in ``_PRESETS``."""
  if name not in _PRESETS:
    raise ValueError(f"unknown MT5Config preset {name!r}; choose one of {PRESETS}")
  preset = dataclasses.asdict(MT5Config.preset(name))
  sizes = ("vocab_size", "d_model", "d_kv", "d_ff", "num_heads", "num_encoder_layers",
           "num_decoder_layers")
  return MT5Config(**{k: preset[k] for k in sizes if not _bound_in_gin("MT5Config", k)})


def remat_policy(name: str):
  """The ``jax.checkpoint`` policy for a ``MT5Config.remat_policy`` name (None = no remat)."""
  policies = jax.checkpoint_policies
  return {
      "none": None,
      "full": policies.nothing_saveable,
      "dots": policies.checkpoint_dots,
      "dots_with_no_batch_dims": policies.dots_with_no_batch_dims_saveable,
  }[name]
