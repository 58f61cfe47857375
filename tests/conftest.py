"""Test setup: 8 forced CPU devices before JAX is imported; TensorFlow kept quiet and off GPUs."""
import os

# LLVM at -O1: compiling the tiny models' programs dominates the suite's time; -O1 compiles
# faster than the default -O2 and its programs run as fast (-O0 would run 1.5x slower).
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8 "
                      "--xla_backend_optimization_level=1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


import logging  # noqa: E402

import pytest  # noqa: E402  (after the environment above, which must precede jax imports)


@pytest.fixture(autouse=True)
def _restore_logger_levels():
  """Commands run in-process set the project's and the libraries' logger levels (--log_level);
  each test starts from the levels the one before it found, whatever order tests run in."""
  from clqa_jax.cli import log_setup  # pylint: disable=g-import-not-at-top

  names = (log_setup.OWN_LOGGER, *log_setup.LIBRARY_LOGGERS)
  levels = {name: logging.getLogger(name).level for name in names}
  yield
  for name, level in levels.items():
    logging.getLogger(name).setLevel(level)


@pytest.fixture
def fresh_gin():
  """An empty process-wide gin config for the test (command lines parse gin into it); the
  config from before is put back afterwards. Use with ``pytest.mark.usefixtures``."""
  from clqa_jax import gin_utils  # pylint: disable=g-import-not-at-top

  with gin_utils.scoped_config():
    yield


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory):
  """One local GCS emulator (127.0.0.1) for the session: tensorstore reads its endpoint once per
  process. A failure to start fails the test that asked for it."""
  from gcs_emulator import GcsEmulator  # pylint: disable=g-import-not-at-top

  emulator = GcsEmulator(str(tmp_path_factory.mktemp("gcs-emulator") / "emulator.log")).start()
  yield emulator
  emulator.stop()


@pytest.fixture
def gcs_bucket(gcs_emulator, monkeypatch, tmp_path_factory):
  """A new empty bucket on the emulator, as 'gs://NAME', with every GCS client pointed at the
  emulator for the test (gcs_emulator.clients_on_emulator)."""
  import gcs_emulator as emu  # pylint: disable=g-import-not-at-top

  with emu.clients_on_emulator(gcs_emulator, monkeypatch,
                               str(tmp_path_factory.mktemp("gcloud-config"))):
    yield f"gs://{gcs_emulator.create_bucket()}"
