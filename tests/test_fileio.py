"""The file-I/O layer on local paths (tests/test_gcs_*.py runs the same calls against a GCS
emulator)."""
import os

import pytest

from clqa_jax import fileio


def test_atomic_write_and_read(tmp_path):
  path = str(tmp_path / "sub" / "a.json")
  fileio.write_json(path, {"x": "é"})
  assert fileio.read_json(path) == {"x": "é"}
  assert fileio.read_text(path).endswith("\n")
  fileio.atomic_write(path, b"\x00\x01")
  assert fileio.read_bytes(path) == b"\x00\x01"
  assert fileio.listdir(str(tmp_path / "sub")) == ["a.json"]  # no temporary left behind
  with pytest.raises(FileExistsError):
    fileio.atomic_write(path, "y", overwrite=False)


def test_atomic_open_failure_keeps_old_content(tmp_path):
  path = str(tmp_path / "f.txt")
  fileio.atomic_write(path, "old")
  with pytest.raises(RuntimeError):
    with fileio.atomic_open(path) as f:
      f.write("new, half")
      raise RuntimeError("boom")
  assert fileio.read_text(path) == "old"
  assert fileio.listdir(str(tmp_path)) == ["f.txt"]


def test_publish_dir(tmp_path):
  final = str(tmp_path / "out")
  with fileio.publish_dir(final) as tmp:
    assert not fileio.exists(final)
    fileio.atomic_write(fileio.join(tmp, "a", "b.txt"), "b")
    fileio.atomic_write(fileio.join(tmp, "c.txt"), "c")
  assert fileio.walk_files(final) == ["a/b.txt", "c.txt"]
  with pytest.raises(FileExistsError):
    with fileio.publish_dir(final):
      pass
  with pytest.raises(ValueError):
    with fileio.publish_dir(final, overwrite=True) as tmp:
      fileio.atomic_write(fileio.join(tmp, "d.txt"), "d")
      raise ValueError("failed build")
  assert fileio.walk_files(final) == ["a/b.txt", "c.txt"]
  with fileio.publish_dir(final, overwrite=True) as tmp:
    fileio.atomic_write(fileio.join(tmp, "d.txt"), "d")
  assert fileio.walk_files(final) == ["d.txt"]
  assert fileio.listdir(str(tmp_path)) == ["out"]


def test_glob_listdir_copy(tmp_path):
  for name in ("s-00001.jsonl", "s-00000.jsonl", "t.txt"):
    fileio.atomic_write(str(tmp_path / name), name)
  assert [os.path.basename(p) for p in fileio.glob(str(tmp_path / "s-*.jsonl"))] == [
      "s-00000.jsonl", "s-00001.jsonl"]
  with pytest.raises(FileNotFoundError):
    fileio.listdir(str(tmp_path / "missing"))
  fileio.copytree(str(tmp_path), str(tmp_path / "copy"))
  assert fileio.read_text(str(tmp_path / "copy" / "t.txt")) == "t.txt"
  assert fileio.size(str(tmp_path / "t.txt")) == 5


def test_paths_keep_gs_scheme():
  assert fileio.join("gs://b/run", "ckpt", "x") == "gs://b/run/ckpt/x"
  assert fileio.dirname("gs://b/run/x.json") == "gs://b/run"
  assert fileio.basename("gs://b/run/") == "run"
  assert fileio.abspath("gs://b/run") == "gs://b/run"
  assert fileio.is_remote("gs://b") and not fileio.is_remote("/tmp/gs:")


def test_local_copy_and_staged_dir_are_identity_locally(tmp_path):
  path = str(tmp_path / "v.model")
  fileio.atomic_write(path, b"spm")
  with fileio.local_copy(path) as local:
    assert local == path
  with fileio.staged_local_dir(str(tmp_path / "idx")) as local:
    fileio.atomic_write(os.path.join(local, "x"), "1")
  assert fileio.walk_files(str(tmp_path / "idx")) == ["x"]


def test_mtime_ns_follows_rewrites(tmp_path):
  path = str(tmp_path / "f.txt")
  fileio.atomic_write(path, "a")
  os.utime(path, ns=(1_000_000_123, 2_000_000_456))
  assert fileio.mtime_ns(path) == 2_000_000_456
  fileio.atomic_write(path, "b")
  assert fileio.mtime_ns(path) != 2_000_000_456
