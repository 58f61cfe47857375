"""Test setup: 8 forced CPU devices before JAX is imported; TensorFlow kept quiet and off GPUs."""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


import pytest  # noqa: E402  (after the environment above, which must precede jax imports)


@pytest.fixture
def fresh_gin():
  """An empty process-wide gin config for the test (command lines parse gin into it); the
  config from before is put back afterwards. Use with ``pytest.mark.usefixtures``."""
  from clqa_jax import gin_utils  # pylint: disable=g-import-not-at-top

  with gin_utils.scoped_config():
    yield
