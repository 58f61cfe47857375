"""The file-I/O layer and orbax checkpoints against a local GCS emulator (gs:// paths).

The same calls as tests/test_fileio.py, on ``gs://BUCKET/...`` (fixture ``gcs_bucket``), plus
what GCS alone has: directories that are only key prefixes, and transfers between the local
disk and the bucket.
"""
import os

import numpy as np
import pytest

from clqa_jax import fileio


def test_atomic_write_and_read(gcs_bucket):
  path = fileio.join(gcs_bucket, "sub", "a.json")
  fileio.write_json(path, {"x": "é"})
  assert fileio.read_json(path) == {"x": "é"}
  assert fileio.read_text(path).endswith("\n")
  fileio.atomic_write(path, b"\x00\x01")
  assert fileio.read_bytes(path) == b"\x00\x01"
  assert fileio.listdir(fileio.join(gcs_bucket, "sub")) == ["a.json"]  # no temporary left
  with pytest.raises(FileExistsError):
    fileio.atomic_write(path, "y", overwrite=False)
  assert fileio.isfile(path) and not fileio.isdir(path)
  assert fileio.size(path) == 2
  assert fileio.mtime_ns(path) > 0 and fileio.mtime_ns(path) % 1_000_000_000 == 0


def test_atomic_open_streams_and_failure_keeps_old_content(gcs_bucket):
  path = fileio.join(gcs_bucket, "f.txt")
  with fileio.atomic_open(path) as f:
    for i in range(3):
      f.write(f"line {i}\n")
  assert fileio.read_text(path) == "line 0\nline 1\nline 2\n"
  with pytest.raises(RuntimeError):
    with fileio.atomic_open(path) as f:
      f.write("new, half")
      raise RuntimeError("boom")
  assert fileio.read_text(path) == "line 0\nline 1\nline 2\n"
  assert fileio.listdir(gcs_bucket) == ["f.txt"]
  with fileio.open(path, "rb") as f:
    assert f.read(4) == b"line"


def test_directories_are_prefixes(gcs_bucket):
  run = fileio.join(gcs_bucket, "run")
  assert not fileio.exists(run) and not fileio.isdir(run)
  fileio.makedirs(run)  # nothing to create on GCS; the first file makes the directory
  fileio.atomic_write(fileio.join(run, "a", "b.txt"), "b")
  for path in (run, run + "/", fileio.join(run, "a")):
    assert fileio.exists(path) and fileio.isdir(path) and not fileio.isfile(path), path
  assert fileio.listdir(run) == fileio.listdir(run + "/") == ["a"]
  assert fileio.listdir(gcs_bucket) == fileio.listdir(gcs_bucket + "/") == ["run"]
  with pytest.raises(FileNotFoundError):
    fileio.listdir(fileio.join(gcs_bucket, "missing"))
  with pytest.raises(FileNotFoundError):
    fileio.read_text(fileio.join(run, "missing.txt"))


def test_glob_walk_copy_remove(gcs_bucket):
  for name in ("s-00001.jsonl", "s-00000.jsonl", "t.txt", "d/u.txt"):
    fileio.atomic_write(fileio.join(gcs_bucket, *name.split("/")), name)
  assert fileio.glob(fileio.join(gcs_bucket, "s-*.jsonl")) == [
      fileio.join(gcs_bucket, "s-00000.jsonl"), fileio.join(gcs_bucket, "s-00001.jsonl")]
  assert fileio.glob(fileio.join(gcs_bucket, "*", "u.txt")) == [
      fileio.join(gcs_bucket, "d", "u.txt")]
  assert fileio.glob(fileio.join(gcs_bucket, "missing", "*.txt")) == []
  assert fileio.walk_files(gcs_bucket) == ["d/u.txt", "s-00000.jsonl", "s-00001.jsonl",
                                           "t.txt"]
  fileio.copytree(gcs_bucket, fileio.join(gcs_bucket, "copy"))
  assert fileio.walk_files(fileio.join(gcs_bucket, "copy")) == [
      "d/u.txt", "s-00000.jsonl", "s-00001.jsonl", "t.txt"]
  assert fileio.read_text(fileio.join(gcs_bucket, "copy", "d", "u.txt")) == "d/u.txt"
  fileio.replace(fileio.join(gcs_bucket, "t.txt"), fileio.join(gcs_bucket, "d", "u.txt"))
  assert fileio.read_text(fileio.join(gcs_bucket, "d", "u.txt")) == "t.txt"
  assert not fileio.exists(fileio.join(gcs_bucket, "t.txt"))
  fileio.remove(fileio.join(gcs_bucket, "d", "u.txt"))
  fileio.remove(fileio.join(gcs_bucket, "d", "u.txt"), missing_ok=True)
  with pytest.raises(FileNotFoundError):
    fileio.remove(fileio.join(gcs_bucket, "d", "u.txt"))
  assert not fileio.exists(fileio.join(gcs_bucket, "d"))
  fileio.rmtree(fileio.join(gcs_bucket, "copy"))
  assert fileio.listdir(gcs_bucket) == ["s-00000.jsonl", "s-00001.jsonl"]
  fileio.rmtree(fileio.join(gcs_bucket, "copy"))  # missing_ok by default
  with pytest.raises(FileNotFoundError):
    fileio.rmtree(fileio.join(gcs_bucket, "copy"), missing_ok=False)


def test_copy_between_local_and_bucket(gcs_bucket, tmp_path):
  local = str(tmp_path / "a.bin")
  fileio.atomic_write(local, bytes(range(256)) * 1000)
  remote = fileio.join(gcs_bucket, "x", "a.bin")
  fileio.copy(local, remote)
  fileio.copy(remote, str(tmp_path / "back.bin"))
  assert fileio.read_bytes(str(tmp_path / "back.bin")) == bytes(range(256)) * 1000
  with pytest.raises(FileExistsError):
    fileio.copy(local, remote, overwrite=False)
  fileio.copytree(str(tmp_path), fileio.join(gcs_bucket, "tree"))
  assert fileio.walk_files(fileio.join(gcs_bucket, "tree")) == ["a.bin", "back.bin"]


def test_publish_dir(gcs_bucket):
  final = fileio.join(gcs_bucket, "out")
  with fileio.publish_dir(final, commit_marker="DONE") as tmp:
    assert not fileio.exists(final)
    fileio.atomic_write(fileio.join(tmp, "a", "b.txt"), "b")
    fileio.atomic_write(fileio.join(tmp, "c.txt"), "c")
    fileio.atomic_write(fileio.join(tmp, "DONE"), "")
  assert fileio.walk_files(final) == ["DONE", "a/b.txt", "c.txt"]
  with pytest.raises(FileExistsError):
    with fileio.publish_dir(final):
      pass
  with pytest.raises(ValueError):
    with fileio.publish_dir(final, overwrite=True) as tmp:
      fileio.atomic_write(fileio.join(tmp, "d.txt"), "d")
      raise ValueError("failed build")
  assert fileio.walk_files(final) == ["DONE", "a/b.txt", "c.txt"]
  with fileio.publish_dir(final + "/", overwrite=True) as tmp:
    fileio.atomic_write(fileio.join(tmp, "d.txt"), "d")
  assert fileio.walk_files(final) == ["d.txt"]
  assert fileio.listdir(gcs_bucket) == ["out"]  # no temporary directory left


def test_local_copy_and_staged_local_dir(gcs_bucket):
  model = fileio.join(gcs_bucket, "vocab", "v.model")
  fileio.atomic_write(model, b"spm")
  fileio.atomic_write(fileio.join(gcs_bucket, "vocab", "sub", "x.txt"), "x")
  with fileio.local_copy(model) as local:
    assert not fileio.is_remote(local) and os.path.basename(local) == "v.model"
    with open(local, "rb") as f:
      assert f.read() == b"spm"
  assert not os.path.exists(local)
  with fileio.local_copy(fileio.join(gcs_bucket, "vocab")) as local:
    assert fileio.walk_files(local) == ["sub/x.txt", "v.model"]
  idx = fileio.join(gcs_bucket, "idx")
  with fileio.staged_local_dir(idx, commit_marker="DONE") as local:
    assert os.path.isdir(local)
    os.makedirs(os.path.join(local, "shards"))
    with open(os.path.join(local, "shards", "0.npy"), "wb") as f:
      np.save(f, np.arange(4))
    with open(os.path.join(local, "DONE"), "w") as f:
      f.write("")
  assert fileio.walk_files(idx) == ["DONE", "shards/0.npy"]
  with pytest.raises(FileExistsError):
    with fileio.staged_local_dir(idx):
      pass
  with pytest.raises(ValueError):
    with fileio.staged_local_dir(idx, overwrite=True) as local:
      raise ValueError("failed build")
  assert fileio.walk_files(idx) == ["DONE", "shards/0.npy"]


def _state_at(step: int, scale: float):
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from clqa_jax.trainer.train_state import TrainState  # pylint: disable=g-import-not-at-top

  params = {"dense": {"kernel": jnp.arange(12, dtype=jnp.float32).reshape(3, 4) * scale,
                      "bias": jnp.ones((4,), jnp.bfloat16)}}
  return TrainState(step=jnp.asarray(step, jnp.int32), params=params,
                    opt_state={"mu": jax.tree_util.tree_map(jnp.zeros_like, params)},
                    rng=jax.random.PRNGKey(step))


def _save_three_steps(run: str):
  """Saves steps 1-3 (keeping 2) with the training checkpointer; returns the abstract state."""
  import jax  # pylint: disable=g-import-not-at-top

  from clqa_jax.checkpoints import training as checkpointing  # pylint: disable=g-import-not-at-top

  ckpt = checkpointing.Checkpointer(run, checkpointing.CheckpointConfig(keep=2))
  for step in (1, 2, 3):
    assert ckpt.save(_state_at(step, float(step)), {"data_position": step * 10})
  ckpt.close()
  assert ckpt.all_steps() == [2, 3]
  return jax.tree_util.tree_map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), _state_at(0, 0.))


def _assert_trees_equal(got, want):
  import jax  # pylint: disable=g-import-not-at-top

  for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
    assert g.dtype == w.dtype
    np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


def test_orbax_checkpoint_manager_round_trip(gcs_bucket):
  """The training checkpointer (orbax: epath for directories, tensorstore for arrays) saves to
  and restores from GCS, keep-N included."""
  from clqa_jax.checkpoints import training as checkpointing  # pylint: disable=g-import-not-at-top

  run = fileio.join(gcs_bucket, "ckpt")
  abstract = _save_three_steps(run)
  assert [n for n in fileio.listdir(run) if not n.startswith(".")] == ["2", "3"]
  assert fileio.isdir(fileio.join(run, "3", checkpointing.PARAMS))
  reopened = checkpointing.Checkpointer(run, checkpointing.CheckpointConfig(keep=2))
  assert reopened.latest_step() == 3
  state, meta = reopened.restore(abstract)
  reopened.close()
  assert int(state.step) == 3 and meta["data_position"] == 30 and meta["step"] == 3
  _assert_trees_equal(state, _state_at(3, 3.))


def test_load_params_from_a_gcs_run(gcs_bucket):
  """Params alone (teacher, init_checkpoint) from a run directory and from a step directory."""
  from clqa_jax.checkpoints import training as checkpointing  # pylint: disable=g-import-not-at-top

  run = fileio.join(gcs_bucket, "ckpt")
  abstract = _save_three_steps(run)
  _assert_trees_equal(checkpointing.load_params(run, abstract.params), _state_at(3, 3.).params)
  _assert_trees_equal(checkpointing.load_params(fileio.join(run, "2"), abstract.params),
                      _state_at(2, 2.).params)


def test_connection_guard_refuses_off_loopback_hosts():
  """The fixtures' guard (checked without opening any socket): loopback and this machine's own
  name pass; any other host is refused and recorded."""
  import socket  # pylint: disable=g-import-not-at-top

  from gcs_emulator import ConnectionGuard  # pylint: disable=g-import-not-at-top

  guard = ConnectionGuard()
  for address in (("127.0.0.1", 80), ("::1", 80, 0, 0), ("localhost", 1),
                  (socket.gethostname(), 1), "/var/run/x.sock"):
    guard._check(address)  # pylint: disable=protected-access
  for address in (("192.0.2.1", 443), ("storage.googleapis.com", 443),
                  ("169.254.169.254", 80)):
    with pytest.raises(ConnectionRefusedError):
      guard._check(address)  # pylint: disable=protected-access
  assert len(guard.refused) == 3


def test_emulator_answers_generation_preconditions(gcs_emulator):
  """What tensorstore's OCDBT commits rely on (tests/gcs_emulator_server.py): the generation in
  a header, 412 for a failed ifGenerationMatch, 304 for a read whose ifGenerationNotMatch
  holds."""
  import urllib.error  # pylint: disable=g-import-not-at-top
  import urllib.request  # pylint: disable=g-import-not-at-top

  bucket = gcs_emulator.create_bucket()
  opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

  def call(method, path, data=None):
    req = urllib.request.Request(gcs_emulator.url + path, data=data, method=method)
    try:
      with opener.open(req, timeout=5) as resp:
        return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
      return err.code, err.headers, b""

  upload = f"/upload/storage/v1/b/{bucket}/o?uploadType=media&name=m"
  media = f"/storage/v1/b/{bucket}/o/m?alt=media"
  assert call("POST", upload + "&ifGenerationMatch=0", b"one")[0] == 200
  assert call("POST", upload + "&ifGenerationMatch=0", b"two")[0] == 412  # exists already
  status, headers, body = call("GET", media)
  generation = headers["x-goog-generation"]
  assert status == 200 and body == b"one" and int(generation) > 0
  assert call("GET", media + f"&ifGenerationNotMatch={generation}")[0] == 304
  assert call("POST", upload + "&ifGenerationMatch=1", b"two")[0] == 412
  assert call("POST", upload + f"&ifGenerationMatch={generation}", b"two")[0] == 200
  status, headers, body = call("GET", media + f"&ifGenerationNotMatch={generation}")
  assert status == 200 and body == b"two" and headers["x-goog-generation"] != generation
