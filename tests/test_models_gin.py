"""gin/models/*.gin build exactly the presets."""
import glob
import os

import gin
import pytest

from clqa_jax import gin_utils
from clqa_jax.models import PRESETS, MT5Config, UnifiedConfig

GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "gin", "models")


@pytest.mark.parametrize("preset", PRESETS)
def test_size_file_equals_preset(preset):
  gin.clear_config()
  try:
    gin_utils.parse_gin([f"models/mt5_{preset}.gin", "models/unified.gin"],
                        ["UnifiedConfig.retriever_layer = 1"])
    config = UnifiedConfig()
  finally:
    gin.clear_config()
  assert config.mt5 == MT5Config.preset(preset)
  assert config.retriever_layer == 1


def test_every_model_gin_file_is_covered():
  names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(GIN_DIR, "*.gin")))
  assert names == sorted([f"mt5_{p}.gin" for p in PRESETS] + ["unified.gin"])


def test_gin_binding_overrides_one_preset_dimension():
  gin.clear_config()
  try:
    gin_utils.parse_gin(["models/mt5_tiny.gin", "models/unified.gin"],
                        ["MT5Config.vocab_size = 1024", "MT5Config.dtype = 'bfloat16'"])
    config = UnifiedConfig()
  finally:
    gin.clear_config()
  assert config.mt5 == MT5Config.preset("tiny", vocab_size=1024, dtype="bfloat16")


def test_size_files_hold_no_dimensions():
  """The dimensions live once, in the Python presets; the size files only name one."""
  for path in glob.glob(os.path.join(GIN_DIR, "mt5_*.gin")):
    text = open(path, encoding="utf-8").read()
    assert "d_model" not in text.replace("MT5Config.<field>", "") and "mt5_preset.name" in text
