"""Corpus encoding to shards: partitioned encoding, resume, readers, fp16/bf16 storage."""
import filecmp
import os

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from fake_gcs import fake_gcs, object_paths  # noqa: F401  (fake_gcs is a fixture)
from jax.sharding import Mesh

from clqa_jax import fileio
from clqa_jax.index import encode
from clqa_jax.index import searchers
from clqa_jax.index import shards

VOCAB, DIM, LENGTH = 50, 16, 12


def make_params():
  rng = np.random.default_rng(0)
  return {"table": jnp.asarray(rng.standard_normal((VOCAB, 32)), jnp.float32),
          "proj": jnp.asarray(rng.standard_normal((32, DIM)) / 6, jnp.float32)}


@jax.jit
def mean_embed(params, tokens):
  """tokens [N, L] -> [N, D]: projected mean of the non-padding token embeddings."""
  mask = (tokens > 0).astype(jnp.float32)[..., None]
  mean = (params["table"][tokens] * mask).sum(1) / jnp.maximum(mask.sum(1), 1.0)
  return mean @ params["proj"]


def reference(params, tokens):
  table, proj = np.asarray(params["table"]), np.asarray(params["proj"])
  mask = (tokens > 0)[..., None]
  mean = (table[tokens] * mask).sum(1) / np.maximum(mask.sum(1), 1)
  return mean @ proj


def corpus(n=103, seed=1):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(1, VOCAB, size=(n, LENGTH)).astype(np.int32)
  tokens[:, 8:] *= rng.random((n, 1)) < 0.5  # some padded passages
  row_ids = np.arange(n, dtype=np.int64) * 2 + 11
  return row_ids, tokens


def chunks(row_ids, tokens, sizes=(7, 30, 10, 56), fail_after=None):
  start = 0
  for i, size in enumerate(sizes):
    if fail_after is not None and i == fail_after:
      raise RuntimeError("simulated preemption")
    yield row_ids[start:start + size], tokens[start:start + size]
    start += size


def run(out_dir, params, row_ids, tokens, **kw):
  kw = {"params": params, "fingerprint": {"model": "mean", "step": 3}, "global_batch_size": 16,
        "rows_per_shard": 40, "progress": False, **kw}
  return encode.encode_corpus(mean_embed, chunks(row_ids, tokens, fail_after=kw.pop(
      "fail_after", None)), out_dir, **kw)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_encode_matches_reference(tmp_path, dtype):
  params = make_params()
  row_ids, tokens = corpus()
  summary = run(str(tmp_path), params, row_ids, tokens, dtype=dtype)
  assert (summary.num_shards, summary.shards_encoded, summary.rows, summary.dim) == (3, 3, 103,
                                                                                     DIM)
  reader = shards.EmbeddingShards(str(tmp_path))
  assert [m.count for m in reader.manifests] == [40, 40, 23]
  assert reader.dtype == dtype and reader.fingerprint == {"model": "mean", "step": 3}
  got_rows, got = reader.load()
  np.testing.assert_array_equal(got_rows, row_ids)
  assert got.dtype == (ml_dtypes.bfloat16 if dtype == "bfloat16" else np.float16)
  want = reference(params, tokens)
  tol = 1e-2 if dtype == "bfloat16" else 2e-3
  np.testing.assert_allclose(got.astype(np.float32), want, rtol=tol, atol=tol)
  # A searcher over the shards returns the stored row ids.
  searcher = searchers.build_searcher_from_shards("exact", str(tmp_path))
  _, top = searcher.search(got[:3].astype(np.float32), 1)
  assert set(top[:, 0]) <= set(row_ids)


def test_encode_on_2d_mesh_equals_1d(tmp_path):
  params = make_params()
  row_ids, tokens = corpus(57)
  mesh = Mesh(np.asarray(jax.devices()).reshape(4, 2), ("data", "model"))
  run(str(tmp_path / "a"), params, row_ids, tokens, mesh=mesh, global_batch_size=8)
  run(str(tmp_path / "b"), params, row_ids, tokens)
  _, a = shards.load_embeddings(str(tmp_path / "a"), np.float32)
  _, b = shards.load_embeddings(str(tmp_path / "b"), np.float32)
  np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-2)
  with pytest.raises(encode.EncodingError, match="multiple of the data-axes size 4"):
    run(str(tmp_path / "c"), params, row_ids, tokens, mesh=mesh, global_batch_size=6)


def test_encode_resumes_after_failure_with_identical_shards(tmp_path):
  params = make_params()
  row_ids, tokens = corpus()
  full, resumed = str(tmp_path / "full"), str(tmp_path / "resumed")
  run(full, params, row_ids, tokens)
  with pytest.raises(RuntimeError, match="preemption"):
    run(resumed, params, row_ids, tokens, fail_after=3)  # after 47 rows: shard 0 is done
  assert sorted(shards.list_process_manifests(resumed, 0)) == [0]
  with pytest.raises(shards.ShardError, match="has not finished"):
    shards.EmbeddingShards(resumed)
  assert shards.EmbeddingShards(resumed, allow_incomplete=True).count == 40
  summary = run(resumed, params, row_ids, tokens)
  assert (summary.shards_skipped, summary.shards_encoded) == (1, 2)
  names = sorted(os.listdir(full))
  assert names == sorted(os.listdir(resumed))
  assert not [n for n in names if ".tmp-" in n]
  match, mismatch, errors = filecmp.cmpfiles(full, resumed, names, shallow=False)
  assert (mismatch, errors) == ([], [])
  again = run(resumed, params, row_ids, tokens)
  assert (again.shards_skipped, again.shards_encoded) == (3, 0)


def test_encode_resumes_after_crash_while_writing(tmp_path, monkeypatch):
  params = make_params()
  row_ids, tokens = corpus()
  full, resumed = str(tmp_path / "full"), str(tmp_path / "resumed")
  run(full, params, row_ids, tokens)
  real_write = shards._atomic_write_bytes

  def crash_on_shard_1_rows(path, write):
    if path.endswith("rows-p00000-s00001.npy"):
      with open(f"{path}.tmp-999", "wb") as f:  # a half-written file, then the crash
        f.write(b"partial")
      raise OSError("simulated crash")
    real_write(path, write)

  monkeypatch.setattr(shards, "_atomic_write_bytes", crash_on_shard_1_rows)
  with pytest.raises(OSError, match="simulated crash"):
    run(resumed, params, row_ids, tokens)
  monkeypatch.setattr(shards, "_atomic_write_bytes", real_write)
  # Shard 1's embeddings reached disk but not its manifest: it is not done.
  assert sorted(shards.list_process_manifests(resumed, 0)) == [0]
  summary = run(resumed, params, row_ids, tokens)
  assert (summary.shards_skipped, summary.shards_encoded) == (1, 2)
  names = sorted(os.listdir(full))
  assert names == sorted(os.listdir(resumed))
  _, mismatch, errors = filecmp.cmpfiles(full, resumed, names, shallow=False)
  assert (mismatch, errors) == ([], [])


def test_encode_refuses_other_runs_directory(tmp_path):
  params = make_params()
  row_ids, tokens = corpus()
  run(str(tmp_path), params, row_ids, tokens)
  with pytest.raises(encode.EncodingError, match="fingerprint"):
    run(str(tmp_path), params, row_ids, tokens, fingerprint={"model": "mean", "step": 4})
  with pytest.raises(encode.EncodingError, match="JSON-serialisable"):
    run(str(tmp_path), params, row_ids, tokens, fingerprint={"params": np.zeros(2)})
  changed = tokens.copy()
  changed[5, 0] = 3 if changed[5, 0] != 3 else 4
  with pytest.raises(encode.EncodingError, match="input_sha256"):
    run(str(tmp_path), params, row_ids, changed)
  with pytest.raises(encode.EncodingError, match="token length"):
    encode.encode_corpus(mean_embed, [(row_ids[:2], tokens[:2]), (row_ids[2:4], tokens[2:4, :5])],
                         str(tmp_path / "x"), params=params, fingerprint="f",
                         global_batch_size=8)


def test_storage_round_trip():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((5, 7)).astype(np.float32)
  bf = x.astype(ml_dtypes.bfloat16)
  stored = shards.to_storage(x, "bfloat16")
  assert stored.dtype == np.uint16
  np.testing.assert_array_equal(shards.from_storage(stored, "bfloat16"), bf)
  np.testing.assert_array_equal(shards.from_storage(shards.to_storage(bf, "bfloat16"),
                                                    "bfloat16"), bf)
  h = shards.from_storage(shards.to_storage(x, "float16"), "float16")
  np.testing.assert_array_equal(h, x.astype(np.float16))
  with pytest.raises(shards.ShardError):
    shards.to_storage(x, "float32")


def test_encode_to_gs_path_and_read_back(tmp_path, fake_gcs):
  """Shards written to a gs:// directory (no local 'gs:' directory), resumed, read back from
  a local copy (memory-mapped) and into memory (per process), equal to a local encoding."""
  params = make_params()
  row_ids, tokens = corpus()
  local, remote = str(tmp_path / "local"), "gs://bucket/emb"
  run(local, params, row_ids, tokens)
  with pytest.raises(RuntimeError, match="preemption"):
    run(remote, params, row_ids, tokens, fail_after=3)
  fileio.atomic_write(fileio.join(remote, ".rows-p00000-s00001.npy.tmp-0123"), b"partial")
  summary = run(remote, params, row_ids, tokens)
  assert (summary.shards_skipped, summary.shards_encoded) == (1, 2)
  names = sorted(os.listdir(local))
  assert [p.rsplit("/", 1)[1] for p in object_paths(fake_gcs)] == names
  for name in names:
    with open(os.path.join(local, name), "rb") as f:
      assert fileio.read_bytes(fileio.join(remote, name)) == f.read(), name
  expected_rows, expected = shards.load_embeddings(local)
  got_rows, got = shards.load_embeddings(remote)
  np.testing.assert_array_equal(got_rows, expected_rows)
  np.testing.assert_array_equal(got, expected)
  manifests = shards.list_process_manifests(remote, 0)
  rows, emb = shards.load_shard(remote, manifests[2], mmap=True)  # read into memory
  np.testing.assert_array_equal(rows, expected_rows[80:])
  np.testing.assert_array_equal(emb, expected[80:])
