"""Embedding shard files: atomic writing, manifests, and a reader over all hosts' shards.

A directory of encoded embeddings holds, for process P and shard S:
  emb-pPPPPP-sSSSSS.npy    embeddings [n, D], float16, or bfloat16 stored as its uint16 bits
  rows-pPPPPP-sSSSSS.npy   int64 [n] corpus row id of each embedding
  emb-pPPPPP-sSSSSS.json   the shard manifest, written last: its presence marks the shard done
  host-pPPPPP.done.json    written when process P has encoded all of its shards
Every file is written to a temporary name and renamed into place. The directory may be remote
(``gs://``): memory-mapped reading then works on a local copy of it (``EmbeddingShards``), made
once per reader.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from typing import Any

import ml_dtypes
import numpy as np

from clqa_jax import fileio

FORMAT = "clqa-embeddings/1"
DTYPES = ("float16", "bfloat16")
_MANIFEST_RE = re.compile(r"emb-p(\d{5})-s(\d{5})\.json$")


class ShardError(ValueError):
  """A shard directory is inconsistent, incomplete or does not match the requested run."""


def shard_paths(directory: str, process_index: int, shard: int) -> dict[str, str]:
  """Paths of one shard's embeddings, row ids and manifest."""
  stem = f"p{process_index:05d}-s{shard:05d}"
  return {"emb": fileio.join(directory, f"emb-{stem}.npy"),
          "rows": fileio.join(directory, f"rows-{stem}.npy"),
          "manifest": fileio.join(directory, f"emb-{stem}.json")}


def done_path(directory: str, process_index: int) -> str:
  return fileio.join(directory, f"host-p{process_index:05d}.done.json")


def to_storage(embeddings: np.ndarray, dtype: str) -> np.ndarray:
  """float [n, D] -> the on-disk array: float16, or bfloat16 bits as uint16."""
  if dtype == "float16":
    return np.asarray(embeddings, np.float32).astype(np.float16)
  if dtype == "bfloat16":
    return np.asarray(embeddings).astype(ml_dtypes.bfloat16).view(np.uint16)
  raise ShardError(f"embedding dtype must be one of {DTYPES}, got {dtype!r}")


def from_storage(stored: np.ndarray, dtype: str) -> np.ndarray:
  """The on-disk array -> float16 or ml_dtypes.bfloat16 [n, D] (a view: memory maps stay mapped)."""
  if dtype == "float16":
    return stored.view(np.float16)
  if dtype == "bfloat16":
    return stored.view(ml_dtypes.bfloat16)
  raise ShardError(f"embedding dtype must be one of {DTYPES}, got {dtype!r}")


def digest(*arrays: np.ndarray) -> str:
  """sha256 over the arrays' bytes, shapes and dtypes (identifies a shard's input)."""
  h = hashlib.sha256()
  for a in arrays:
    a = np.ascontiguousarray(a)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
  return h.hexdigest()


def is_process_tmp_name(name: str, process_index: int) -> bool:
  """Whether ``name`` is a temporary shard file of ``process_index`` (left by a crash)."""
  return f"-p{process_index:05d}-s" in name and ".tmp-" in name


def _atomic_write_bytes(path: str, write) -> None:
  with fileio.atomic_open(path, "wb") as f:
    write(f)


def write_json_atomic(path: str, obj: Any) -> None:
  _atomic_write_bytes(path, lambda f: f.write(json.dumps(obj, indent=1, sort_keys=True).encode()))


@dataclasses.dataclass(frozen=True)
class ShardManifest:
  """What a shard manifest records."""
  process_index: int
  num_processes: int
  shard: int
  dtype: str
  dim: int
  count: int
  rows_per_shard: int
  fingerprint: Any
  input_sha256: str
  first_row: int
  last_row: int
  format: str = FORMAT


def write_shard(directory: str, manifest: ShardManifest, row_ids: np.ndarray,
                embeddings: np.ndarray) -> None:
  """Writes one shard (embeddings [n, D] float, row ids [n]) atomically, manifest last."""
  if embeddings.shape != (manifest.count, manifest.dim) or row_ids.shape != (manifest.count,):
    raise ShardError(f"shard {manifest.shard}: embeddings {embeddings.shape} / rows "
                     f"{row_ids.shape} do not match count={manifest.count} dim={manifest.dim}")
  paths = shard_paths(directory, manifest.process_index, manifest.shard)
  stored = to_storage(embeddings, manifest.dtype)
  _atomic_write_bytes(paths["emb"], lambda f: np.save(f, stored))
  _atomic_write_bytes(paths["rows"], lambda f: np.save(f, np.asarray(row_ids, np.int64)))
  write_json_atomic(paths["manifest"], dataclasses.asdict(manifest))


def read_manifest(path: str) -> ShardManifest:
  try:
    obj = json.loads(fileio.read_bytes(path))
    if obj.get("format") != FORMAT:
      raise ShardError(f"{path}: field 'format' is {obj.get('format')!r}, expected {FORMAT!r}")
    return ShardManifest(**obj)
  except (json.JSONDecodeError, TypeError) as e:
    raise ShardError(f"{path}: not a valid shard manifest ({e})") from e


def load_shard(directory: str, manifest: ShardManifest,
               mmap: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """Returns (row_ids int64 [n], embeddings float16/bfloat16 [n, D]) of one shard.

  A remote ``directory`` cannot be memory-mapped: its shard is read into memory (``mmap`` is
  ignored); ``EmbeddingShards`` maps a local copy instead.
  """
  paths = shard_paths(directory, manifest.process_index, manifest.shard)
  if fileio.is_remote(directory):
    emb, rows = _load_npy(paths["emb"]), _load_npy(paths["rows"])
  else:
    mode = "r" if mmap else None
    emb = np.load(paths["emb"], mmap_mode=mode)
    rows = np.load(paths["rows"], mmap_mode=mode)
  if emb.shape != (manifest.count, manifest.dim) or rows.shape != (manifest.count,):
    raise ShardError(f"{paths['emb']}: shape {emb.shape} / rows {rows.shape} do not match "
                     f"the manifest (count={manifest.count}, dim={manifest.dim})")
  return rows, from_storage(emb, manifest.dtype)


def _load_npy(path: str) -> np.ndarray:
  with fileio.open(path, "rb") as f:
    return np.load(f)


class EmbeddingShards:
  """All shards of all hosts in one directory (memory-mapped on demand; a remote directory is
  copied to local disk on the first ``shards``/``load`` and mapped from there)."""

  def __init__(self, directory: str, *, allow_incomplete: bool = False):
    self.directory = directory
    self._local_directory: str | None = None
    paths = fileio.glob(fileio.join(directory, "emb-p*-s*.json"))
    if not paths:
      raise ShardError(f"{directory}: no embedding shards (emb-p*-s*.json) found")
    self.manifests = [read_manifest(p) for p in paths]
    first = self.manifests[0]
    for p, m in zip(paths, self.manifests):
      for field in ("dtype", "dim", "fingerprint", "num_processes"):
        if getattr(m, field) != getattr(first, field):
          raise ShardError(f"{p}: field {field!r} is {getattr(m, field)!r} but "
                           f"{paths[0]} has {getattr(first, field)!r}")
    if not allow_incomplete:
      for proc in range(first.num_processes):
        if not fileio.exists(done_path(directory, proc)):
          raise ShardError(f"{directory}: process {proc} has not finished encoding "
                           f"({fileio.basename(done_path(directory, proc))} is missing); "
                           "rerun the encoding to resume it, or pass allow_incomplete=True")

  @property
  def dim(self) -> int:
    return self.manifests[0].dim

  @property
  def dtype(self) -> str:
    return self.manifests[0].dtype

  @property
  def fingerprint(self) -> Any:
    return self.manifests[0].fingerprint

  @property
  def count(self) -> int:
    return sum(m.count for m in self.manifests)

  def shards(self, mmap: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per shard (row_ids int64 [n_i], embeddings [n_i, D]), memory-mapped by default."""
    if self._local_directory is None:
      self._local_directory = fileio.pinned_local_copy(self.directory, self)
    return [load_shard(self._local_directory, m, mmap) for m in self.manifests]

  def load(self, dtype: np.dtype | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All embeddings in memory, ordered by row id: (row_ids int64 [N], embeddings [N, D]).

    Args:
      dtype: the in-memory dtype (default: the stored float16/bfloat16).

    Raises:
      ShardError: if a row id appears in two shards.
    """
    parts = self.shards(mmap=True)
    row_ids = np.concatenate([r for r, _ in parts])
    order = np.argsort(row_ids, kind="stable")
    row_ids = row_ids[order]
    if row_ids.size > 1 and np.any(row_ids[1:] == row_ids[:-1]):
      dup = int(row_ids[1:][row_ids[1:] == row_ids[:-1]][0])
      raise ShardError(f"{self.directory}: row id {dup} is in more than one shard")
    out_dtype = parts[0][1].dtype if dtype is None else np.dtype(dtype)
    out = np.empty((row_ids.size, self.dim), out_dtype)
    dest = np.empty(row_ids.size, np.int64)
    dest[order] = np.arange(row_ids.size)  # where each concatenated row goes
    start = 0
    for _, emb in parts:
      out[dest[start:start + emb.shape[0]]] = np.asarray(emb).astype(out_dtype, copy=False)
      start += emb.shape[0]
    return row_ids, out


def load_embeddings(directory: str,
                    dtype: np.dtype | str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """(row_ids int64 [N], embeddings [N, D]) of a finished encoding, ordered by row id."""
  return EmbeddingShards(directory).load(dtype)


def list_process_manifests(directory: str, process_index: int) -> dict[int, ShardManifest]:
  """The finished shards of one process: {shard index: manifest}."""
  out = {}
  for p in fileio.glob(fileio.join(directory, f"emb-p{process_index:05d}-s*.json")):
    m = _MANIFEST_RE.search(p)
    if m:
      out[int(m.group(2))] = read_manifest(p)
  return out


class StackedRows:
  """A read-only [N, D] array over several [n_i, D] parts stacked in order (memory maps stay
  mapped): a slice or an integer row array reads only those rows.

  Lets a host's shard files be searched as one corpus without concatenating them in memory.
  """

  def __init__(self, parts: list[np.ndarray]):
    if not parts:
      raise ShardError("StackedRows needs at least one part")
    dims = {p.shape[1:] for p in parts}
    dtypes = {p.dtype for p in parts}
    if len(dims) != 1 or len(dtypes) != 1 or parts[0].ndim != 2:
      raise ShardError(f"StackedRows parts must all be [n_i, D] of one dtype, got shapes "
                       f"{[p.shape for p in parts]} and dtypes {sorted(map(str, dtypes))}")
    self.parts = list(parts)
    self._offsets = np.cumsum([0] + [p.shape[0] for p in parts])
    self.shape = (int(self._offsets[-1]), parts[0].shape[1])
    self.dtype = parts[0].dtype
    self.ndim = 2

  def __len__(self) -> int:
    return self.shape[0]

  @property
  def nbytes(self) -> int:
    return sum(p.nbytes for p in self.parts)

  def __getitem__(self, index) -> np.ndarray:
    if isinstance(index, slice):
      start, stop, step = index.indices(self.shape[0])
      if step != 1:
        raise IndexError(f"StackedRows slices must have step 1, got {step}")
      first = int(np.searchsorted(self._offsets, start, side="right")) - 1
      pieces = []
      i = max(first, 0)
      while i < len(self.parts) and self._offsets[i] < stop:
        lo, hi = self._offsets[i], self._offsets[i + 1]
        pieces.append(self.parts[i][max(start - lo, 0):min(stop, hi) - lo])
        i += 1
      if len(pieces) == 1:
        return pieces[0]  # a view: no copy when the rows lie in one part
      if not pieces:
        return np.empty((0, self.shape[1]), self.dtype)
      return np.concatenate(pieces)
    rows = np.asarray(index)
    if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
      raise IndexError(f"StackedRows takes a slice or a 1-D integer row array, got {index!r}")
    if rows.size and (rows.min() < 0 or rows.max() >= self.shape[0]):
      raise IndexError(f"row index out of range [0, {self.shape[0]})")
    part = np.searchsorted(self._offsets, rows, side="right") - 1
    out = np.empty((rows.size, self.shape[1]), self.dtype)
    for i in np.unique(part):
      sel = part == i
      out[sel] = self.parts[i][rows[sel] - self._offsets[i]]
    return out


class _LocalFiles:
  """Owns the local copies of remote shard files while the StackedRows mapping them lives."""


def load_process_shards(directory: str,
                        process_index: int) -> tuple[np.ndarray, StackedRows]:
  """One process's finished shards, memory-mapped: (row_ids int64 [n], embeddings [n, D]) in
  shard order. Only this process's files are read (from a remote directory: copied to local
  disk for as long as the returned rows live), so a host never touches the other hosts'
  embeddings.

  Raises:
    ShardError: if the process has no finished shards or has not finished encoding.
  """
  if not fileio.exists(done_path(directory, process_index)):
    raise ShardError(f"{directory}: process {process_index} has not finished encoding "
                     f"({fileio.basename(done_path(directory, process_index))} is missing)")
  manifests = list_process_manifests(directory, process_index)
  if not manifests:
    raise ShardError(f"{directory}: process {process_index} has no embedding shards")
  rows, parts, owner = [], [], _LocalFiles()
  for index in sorted(manifests):
    m = manifests[index]
    paths = shard_paths(directory, process_index, index)
    emb = np.load(fileio.pinned_local_copy(paths["emb"], owner), mmap_mode="r")
    ids = np.load(fileio.pinned_local_copy(paths["rows"], owner))
    if emb.shape != (m.count, m.dim) or ids.shape != (m.count,):
      raise ShardError(f"{paths['emb']}: shape {emb.shape} / rows {ids.shape} do not match "
                       f"the manifest (count={m.count}, dim={m.dim})")
    rows.append(ids.astype(np.int64, copy=False))
    parts.append(from_storage(emb, m.dtype))
  stacked = StackedRows(parts)
  stacked.local_files = owner
  return np.concatenate(rows), stacked
