"""A local Google Cloud Storage emulator for tests of gs:// paths, with no traffic off 127.0.0.1.

``GcsEmulator`` runs ``gcp-storage-emulator`` (in memory) as a subprocess on a free loopback
port, with GCS's generation preconditions added (``gcs_emulator_server.py``: orbax's OCDBT
commits through tensorstore need them). ``emulator_env`` names the environment that points every client at it and keeps each one
from looking for real credentials:

  gcsfs (fileio/epath, orbax's directories)  STORAGE_EMULATOR_HOST, token 'anon' (fsspec config)
  tensorstore (orbax's array data)           TENSORSTORE_GCS_HTTP_URL, GOOGLE_AUTH_TOKEN_FOR_TESTING
                                             (a fixed token: no credential file, no metadata server)
  google-auth, should anything ask it        GCE metadata host/IP/root on a closed loopback port,
                                             NO_GCE_CHECK, no GOOGLE_APPLICATION_CREDENTIALS,
                                             an empty CLOUDSDK_CONFIG

gcsfs's default class (``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT``) asks a gRPC storage-control API
for each bucket's layout, which the emulator does not serve (60 s timeouts per bucket); the
emulator runs use gcsfs's plain JSON-API class instead.

tensorstore reads ``TENSORSTORE_GCS_HTTP_URL`` once per process, so one emulator serves a whole
test session (``tests/conftest.py``: fixtures ``gcs_emulator`` and ``gcs_bucket``).
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid

LOOPBACK = "127.0.0.1"
PROJECT = "clqa-test"
_START_TIMEOUT_S = 30.0
# The emulator with GCS's generation preconditions (see that module).
_SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gcs_emulator_server.py")


def free_loopback_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind((LOOPBACK, 0))
    return s.getsockname()[1]


def closed_loopback_port() -> int:
  """A loopback port nothing listens on (connections to it are refused at once)."""
  return free_loopback_port()


def _die_with_parent() -> None:
  """In the emulator's process: a SIGTERM when the test process dies (Linux), so a killed
  test run leaves no server behind."""
  import ctypes  # pylint: disable=g-import-not-at-top
  import signal  # pylint: disable=g-import-not-at-top

  pr_set_pdeathsig = 1
  ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class GcsEmulator:
  """An in-memory GCS emulator subprocess on ``LOOPBACK``; ``url`` is its endpoint."""

  def __init__(self, log_path: str):
    self.port = free_loopback_port()
    self.url = f"http://{LOOPBACK}:{self.port}"
    self.log_path = log_path
    self._log = None
    self._proc: subprocess.Popen | None = None

  def start(self) -> "GcsEmulator":
    self._log = open(self.log_path, "wb")  # pylint: disable=consider-using-with
    self._proc = subprocess.Popen(
        [sys.executable, _SERVER, "start", "--host", LOOPBACK,
         "--port", str(self.port), "--in-memory", "--quiet"],
        stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    deadline = time.monotonic() + _START_TIMEOUT_S
    while True:
      if self._proc.poll() is not None:
        raise RuntimeError(f"GCS emulator exited with {self._proc.returncode} before serving; "
                           f"log {self.log_path}:\n{self.log_text()}")
      try:
        self._request("GET", "/storage/v1/b")
        return self
      except (urllib.error.URLError, ConnectionError):
        if time.monotonic() > deadline:
          self.stop()
          raise RuntimeError(f"GCS emulator did not answer on {self.url} within "
                             f"{_START_TIMEOUT_S:.0f}s; log {self.log_path}:\n{self.log_text()}")
        time.sleep(0.1)

  def stop(self) -> None:
    if self._proc is not None and self._proc.poll() is None:
      self._proc.terminate()
      try:
        self._proc.wait(timeout=10)
      except subprocess.TimeoutExpired:
        self._proc.kill()
        self._proc.wait()
    self._proc = None
    if self._log is not None:
      self._log.close()
      self._log = None

  def log_text(self) -> str:
    with open(self.log_path, "rb") as f:
      return f.read().decode("utf-8", "replace")[-4000:]

  def _request(self, method: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(self.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    # A direct opener: no proxy from the environment may take the request off loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=5) as resp:
      text = resp.read()
    return json.loads(text) if text else {}

  def create_bucket(self, prefix: str = "clqa") -> str:
    """Creates a new empty bucket and returns its name."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    self._request("POST", f"/storage/v1/b?project={PROJECT}", {"name": name})
    return name


def emulator_env(url: str, cloudsdk_config: str) -> dict[str, str]:
  """The environment variables that point gcsfs and tensorstore at the emulator at ``url``
  and keep every credential lookup on this machine (``cloudsdk_config``: an empty directory)."""
  metadata = f"{LOOPBACK}:{closed_loopback_port()}"
  dead_proxy = f"http://{LOOPBACK}:{closed_loopback_port()}"
  return {
      "STORAGE_EMULATOR_HOST": url,
      "FSSPEC_GS_TOKEN": "anon",
      "FSSPEC_GS_PROJECT": PROJECT,
      "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
      "TENSORSTORE_GCS_HTTP_URL": url,
      "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",
      "GCE_METADATA_HOST": metadata,
      "GCE_METADATA_IP": metadata,
      "GCE_METADATA_ROOT": metadata,
      "NO_GCE_CHECK": "true",
      "CLOUDSDK_CONFIG": cloudsdk_config,
      "EPATH_USE_TF": "false",
      # Clients without an emulator setting (TensorFlow's gfile on gs://, which some readers
      # may still use) send every non-loopback request to a closed loopback proxy: they fail
      # at once, without even resolving a public host name. Loopback goes direct.
      **{name: dead_proxy for name in PROXY_ENV},
      "GCS_RETRY_CONFIG_MAX_RETRIES": "0",  # gfile: fail at once rather than after backoffs
      "NO_PROXY": NO_PROXY, "no_proxy": NO_PROXY,
  }


PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
NO_PROXY = f"{LOOPBACK},localhost"
UNSET_ENV = ("GOOGLE_APPLICATION_CREDENTIALS",)


def _is_loopback(address) -> bool:
  if isinstance(address, (str, bytes)):  # AF_UNIX
    return True
  host = address[0]
  # This machine's own name resolves through /etc/hosts, to loopback.
  return host in ("localhost", "::1", "", socket.gethostname()) or host.startswith("127.") or \
      host.startswith("::ffff:127.")


_STDLIB = sysconfig.get_paths()["stdlib"]


class ConnectionGuard:
  """Records (and refuses) every Python-level connection to, or name lookup of, a
  non-loopback host.

  Covers gcsfs/aiohttp, google-auth and urllib; the C++ clients (tensorstore, TensorFlow's
  gfile) are kept on loopback by ``emulator_env`` alone (emulator URL, fixed test token, dead
  proxy).
  """

  def __init__(self):
    self.refused: list[str] = []

  def install(self, monkeypatch) -> None:
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    guard = self

    def connect(sock, address):
      guard._check(address)
      return original_connect(sock, address)

    def connect_ex(sock, address):
      guard._check(address)
      return original_connect_ex(sock, address)

    original_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
      guard._check((host.decode() if isinstance(host, bytes) else host or LOOPBACK, 0))
      return original_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

  def _check(self, address) -> None:
    if not _is_loopback(address):
      # Where the attempt came from (thread and innermost frames outside this module), so that
      # a library that phones home is named in the failure.
      frames = [f"{f.filename}:{f.lineno}" for f in traceback.extract_stack()[:-2]
                if not f.filename.startswith(_STDLIB) and not f.filename.endswith(
                    "gcs_emulator.py")][-6:]
      self.refused.append(f"{address!r} from thread {threading.current_thread().name!r} "
                          f"at {' <- '.join(reversed(frames))}")
      raise ConnectionRefusedError(f"test guard: connection to non-loopback {address!r}")


def use_plain_gcsfs(monkeypatch) -> None:
  """Makes fsspec's 'gs'/'gcs' protocols gcsfs's JSON-API class in this process (see above)."""
  import importlib  # pylint: disable=g-import-not-at-top

  from gcsfs.core import GCSFileSystem  # pylint: disable=g-import-not-at-top

  # The module, not the ``fsspec.registry`` mapping that the package exports under its name.
  registry_module = importlib.import_module("fsspec.registry")
  for proto in ("gs", "gcs"):
    monkeypatch.setitem(registry_module._registry, proto, GCSFileSystem)  # pylint: disable=protected-access


def clear_client_caches() -> None:
  """Forgets cached gcsfs instances (and their listings) so each test starts from the server."""
  from etils.epath import backend  # pylint: disable=g-import-not-at-top
  from gcsfs.core import GCSFileSystem  # pylint: disable=g-import-not-at-top

  backend.fsspec_backend._get_filesystem.cache_clear()  # pylint: disable=protected-access
  GCSFileSystem.clear_instance_cache()


def serialize_orbax_gcs_requests(monkeypatch) -> None:
  """orbax builds its own tensorstore contexts (``gcs_request_concurrency`` at its default):
  limit them to one request at a time, as the emulator needs (see emulator_env)."""
  from orbax.checkpoint._src.serialization import tensorstore_utils  # pylint: disable=g-import-not-at-top

  for name in ("_DEFAULT_OCDBT_TS_CONTEXT", "_BASE_TS_CONTEXT"):
    context = dict(getattr(tensorstore_utils, name))
    context["gcs_request_concurrency"] = {"limit": 1}
    monkeypatch.setattr(tensorstore_utils, name, context)


@contextlib.contextmanager
def clients_on_emulator(emulator: GcsEmulator, monkeypatch, cloudsdk_config: str):
  """Points every GCS client of this process (and of subprocesses, through the environment) at
  ``emulator`` while the block runs; any Python connection to a non-loopback address raises
  there and fails the block at its end."""
  import fsspec.config  # pylint: disable=g-import-not-at-top

  for key, value in emulator_env(emulator.url, cloudsdk_config).items():
    monkeypatch.setenv(key, value)
  for key in UNSET_ENV:
    monkeypatch.delenv(key, raising=False)
  gs_conf = {"token": "anon", "project": PROJECT}
  monkeypatch.setitem(fsspec.config.conf, "gs", gs_conf)
  monkeypatch.setitem(fsspec.config.conf, "gcs", gs_conf)
  use_plain_gcsfs(monkeypatch)
  serialize_orbax_gcs_requests(monkeypatch)
  guard = ConnectionGuard()
  guard.install(monkeypatch)
  clear_client_caches()
  try:
    yield
  finally:
    clear_client_caches()
  assert not guard.refused, f"connections off loopback were attempted: {guard.refused}"
