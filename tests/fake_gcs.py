"""An in-memory stand-in for ``gs://`` paths, for tests of code that must not touch local disk.

``fake_gcs`` routes every ``gs://`` path that ``clqa_jax.fileio`` (etils.epath's fsspec backend)
sees to an fsspec memory filesystem shaped like gcsfs (paths ``bucket/key``, no directories of
its own). Tests that use it also prove nothing was written to a local ``gs:`` directory.
"""
from __future__ import annotations

import pytest
from fsspec.implementations.memory import MemoryFileSystem


class FakeGcsFileSystem(MemoryFileSystem):
  """A memory filesystem addressed like gcsfs: ``gs://bucket/key`` <-> ``bucket/key``."""
  protocol = ("gs", "gcs")
  root_marker = ""
  store: dict = {}
  pseudo_dirs = [""]
  cachable = False

  @classmethod
  def _strip_protocol(cls, path):
    path = str(path)
    for prefix in ("gs://", "gcs://"):
      if path.startswith(prefix):
        path = path[len(prefix):]
    return path.strip("/")


@pytest.fixture
def fake_gcs(monkeypatch, tmp_path):
  """A fresh empty fake bucket store for the test; yields the filesystem (to inspect keys).

  The working directory is moved to ``tmp_path`` so that a stray local write to a relative
  ``gs:/...`` path would show up there (see ``assert_no_local_gs_dir``).
  """
  from etils.epath import backend as backend_lib  # pylint: disable=g-import-not-at-top

  fs = FakeGcsFileSystem()
  FakeGcsFileSystem.store = {}
  FakeGcsFileSystem.pseudo_dirs = [""]
  fs.store = FakeGcsFileSystem.store
  fs.pseudo_dirs = FakeGcsFileSystem.pseudo_dirs
  real_fs = backend_lib.fsspec_backend.fs

  def fs_for(path):
    return fs if str(path).startswith("gs://") else real_fs(path)

  monkeypatch.setattr(backend_lib.fsspec_backend, "fs", fs_for)
  monkeypatch.chdir(tmp_path)
  yield fs
  assert not (tmp_path / "gs:").exists(), "a gs:// path was written to a local 'gs:' directory"


def object_paths(fs: FakeGcsFileSystem) -> list[str]:
  """Every object stored in the fake buckets, as ``gs://`` paths, sorted."""
  return sorted("gs://" + k.lstrip("/") for k in fs.store)
