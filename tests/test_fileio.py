"""The file-I/O layer on local paths (tests/test_gcs_*.py runs the same calls against a GCS
emulator)."""
import os

import pytest
from fake_gcs import fake_gcs, object_paths  # noqa: F401  (fake_gcs is a fixture)

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


def test_relative_to_and_resolve(tmp_path):
  index = str(tmp_path / "index")
  assert fileio.relative_to(os.path.join(index, "passages"), index) == "passages"
  assert fileio.relative_to(os.path.join(index, "a", "b"), index + "/") == "a/b"
  for outside in (index, str(tmp_path), str(tmp_path / "index2" / "p"), "gs://b/index/p"):
    assert fileio.relative_to(outside, index) is None, outside
  assert fileio.relative_to("gs://b/index/passages", "gs://b/index/") == "passages"
  assert fileio.relative_to("gs://b/index2/p", "gs://b/index") is None
  assert fileio.resolve(index, "a/b") == os.path.join(index, "a", "b")
  assert fileio.resolve("gs://b/index", "passages") == "gs://b/index/passages"
  assert fileio.resolve(index, "/data/store") == "/data/store"
  assert fileio.resolve(index, "gs://b/store") == "gs://b/store"


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


def test_remote_walk_publish_and_staging(fake_gcs):
  """gcsfs-shaped paths: walk_files keeps subdirectories, publish_dir moves nested files into
  a prefix with no object yet, and staged/local copies round-trip a directory."""
  fileio.write_json("gs://b/run/sub/x.json", {"a": 1})
  fileio.atomic_write("gs://b/run/a.txt", "hi")
  assert fileio.walk_files("gs://b/run") == ["a.txt", "sub/x.json"]
  assert fileio.listdir("gs://b/run") == ["a.txt", "sub"]
  with fileio.publish_dir("gs://b/pub", commit_marker="DONE") as tmp:
    fileio.atomic_write(fileio.join(tmp, "d", "y"), b"y")
    fileio.atomic_write(fileio.join(tmp, "DONE"), "")
  with fileio.staged_local_dir("gs://b/staged") as local:
    with open(os.path.join(local, "q"), "w") as f:
      f.write("q")
  assert object_paths(fake_gcs) == ["gs://b/pub/DONE", "gs://b/pub/d/y", "gs://b/run/a.txt",
                                     "gs://b/run/sub/x.json", "gs://b/staged/q"]
  with fileio.local_copy("gs://b/pub") as local:
    assert sorted(os.listdir(local)) == ["DONE", "d"]
    with open(os.path.join(local, "d", "y"), "rb") as f:
      assert f.read() == b"y"


def test_pinned_local_copy_lives_with_its_owner(tmp_path, fake_gcs):
  class Owner:
    pass

  local_file = str(tmp_path / "a.npy")
  assert fileio.pinned_local_copy(local_file, Owner()) == local_file  # local: no copy
  fileio.atomic_write("gs://b/store/x.bin", b"xyz")
  owner = Owner()
  local = fileio.pinned_local_copy("gs://b/store", owner)
  assert not fileio.is_remote(local)
  with open(os.path.join(local, "x.bin"), "rb") as f:
    assert f.read() == b"xyz"
  del owner
  assert not os.path.exists(local)


@pytest.mark.parametrize("remote", [False, True])
def test_publish_built_dir(tmp_path, fake_gcs, remote):
  final = "gs://b/store" if remote else str(tmp_path / "store")
  built = tmp_path / "store.build"
  (built / "sub").mkdir(parents=True)
  (built / "sub" / "a").write_bytes(b"a")
  (built / "DONE").write_text("")
  fileio.publish_built_dir(str(built), final, commit_marker="DONE")
  assert not built.exists()
  assert fileio.walk_files(final) == ["DONE", "sub/a"]
  built.mkdir()
  (built / "b").write_bytes(b"b")
  with pytest.raises(FileExistsError):
    fileio.publish_built_dir(str(built), final)
  fileio.publish_built_dir(str(built), final, overwrite=True)
  assert fileio.walk_files(final) == ["b"]
  if not remote:
    assert sorted(os.listdir(tmp_path)) == ["store"]  # the old directory is gone


def test_mtime_ns(tmp_path, fake_gcs):
  path = tmp_path / "a"
  path.write_text("x")
  assert fileio.mtime_ns(str(path)) == os.stat(path).st_mtime_ns
  fileio.atomic_write("gs://b/a", "x")
  assert fileio.mtime_ns("gs://b/a") % 10**9 == 0
