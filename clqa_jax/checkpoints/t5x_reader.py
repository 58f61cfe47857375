"""Reads T5X checkpoint directories (``.../checkpoint_N``), locally or on GCS, without T5X.

A T5X checkpoint directory holds:
  checkpoint      msgpack (``flax.serialization``) of {"version": V, "optimizer": {"target":
                  the parameter tree, "state": {"step", "param_states"}}}; version 0 (a plain
                  flax checkpoint) is the state dict itself
  target.encoder.layers_0.attention.query.kernel/   one tensorstore (zarr) array per
  state.param_states.encoder....                    partitioned leaf, named by its path with '.'
In the msgpack such a leaf is a tensorstore spec (a dict with driver, kvstore, metadata) whose
path is relative to the directory (older specs carry the path at top level; GCS specs name a
placeholder bucket); leaves that were not partitioned are inline numpy arrays. The arrays are
always read next to the ``checkpoint`` file, with tensorstore's file or gcs kvstore.

    index = read_target_index(ckpt_dir)   # {"encoder/layers_0/attention/query/kernel": T5XArray}
    array = read_array(index[name])       # numpy, in the stored dtype
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np

from clqa_jax import fileio
from clqa_jax.checkpoints.hf_mt5 import CheckpointFormatError

CHECKPOINT_FILE = "checkpoint"
TARGET = "target"  # the parameters; "state" holds the optimizer slots, which are not imported
# Files of an orbax checkpoint, whose directory may also hold a (legacy) "checkpoint" file.
ORBAX_MARKERS = ("_METADATA", "_CHECKPOINT_METADATA", "manifest.ocdbt")
_GCS = re.compile(r"^gs://([^/]+)/?(.*)$")


def is_t5x_checkpoint(names: list[str]) -> bool:
  """Whether a directory listing is a T5X checkpoint directory's: the ``checkpoint`` msgpack
  file and none of orbax's metadata files."""
  return CHECKPOINT_FILE in names and not any(m in names for m in ORBAX_MARKERS)


@dataclasses.dataclass(frozen=True)
class T5XArray:
  """One leaf of the target tree: stored inline in the msgpack, or as a tensorstore array
  (``spec``: the spec to open, its kvstore resolved against the checkpoint directory)."""
  name: str                      # '/'-path under ``target``
  shape: tuple[int, ...]
  inline: np.ndarray | None = None
  spec: dict[str, Any] | None = None


def _is_ts_spec(node: Any) -> bool:
  return (isinstance(node, dict) and "driver" in node and "metadata" in node
          and ("kvstore" in node or "path" in node))


def _array_kvstore(ckpt_dir: str, relative: str) -> dict[str, Any]:
  """The kvstore of the array stored under ``relative`` in ``ckpt_dir`` (a directory: the
  zarr driver reads ``.zarray`` and the chunks under it)."""
  match = _GCS.match(ckpt_dir)
  if match:
    bucket, prefix = match.groups()
    path = f"{prefix.rstrip('/')}/{relative}" if prefix else relative
    return {"driver": "gcs", "bucket": bucket, "path": path.rstrip("/") + "/"}
  return {"driver": "file", "path": fileio.join(fileio.abspath(ckpt_dir), relative) + "/"}


def _entry(ckpt_dir: str, where: str, name: str, leaf: Any) -> T5XArray:
  if _is_ts_spec(leaf):
    kvstore = leaf.get("kvstore") or {}
    relative = kvstore.get("path") if isinstance(kvstore, dict) else None
    relative = relative or leaf.get("path")
    shape = leaf["metadata"].get("shape") if isinstance(leaf["metadata"], dict) else None
    if not isinstance(relative, str) or shape is None:
      raise CheckpointFormatError(f"{where}: target/{name}: tensorstore spec without a path "
                                  f"or metadata.shape: {leaf}")
    spec = {"driver": leaf["driver"], "kvstore": _array_kvstore(ckpt_dir, relative)}
    return T5XArray(name, tuple(int(d) for d in shape), spec=spec)
  if isinstance(leaf, (np.ndarray, np.generic, int, float)):
    array = np.asarray(leaf)
    return T5XArray(name, tuple(array.shape), inline=array)
  raise CheckpointFormatError(f"{where}: target/{name}: a leaf of type {type(leaf).__name__} "
                              "is neither an array nor a tensorstore spec")


def _flatten_target(node: Any, prefix: str = ""):
  if isinstance(node, dict) and not _is_ts_spec(node):
    for key, child in node.items():
      yield from _flatten_target(child, f"{prefix}/{key}" if prefix else str(key))
  else:
    yield prefix, node


def read_target_index(ckpt_dir: str) -> dict[str, T5XArray]:
  """The parameters (``target``) of a T5X checkpoint directory, by '/'-path, with their shapes;
  no array is read yet.

  Raises:
    FileNotFoundError: no ``checkpoint`` file.
    CheckpointFormatError: a file that is no T5X msgpack, or holds no ``target`` tree.
  """
  from flax import serialization

  ckpt_dir = ckpt_dir.rstrip("/")
  where = fileio.join(ckpt_dir, CHECKPOINT_FILE)
  if not fileio.isfile(where):
    raise FileNotFoundError(f"{ckpt_dir}: no T5X '{CHECKPOINT_FILE}' file")
  try:
    contents = serialization.msgpack_restore(fileio.read_bytes(where))
  except Exception as e:  # msgpack raises several unrelated types on foreign bytes
    raise CheckpointFormatError(f"{where}: not a msgpack checkpoint ({e})") from e
  if not isinstance(contents, dict):
    raise CheckpointFormatError(f"{where}: holds a {type(contents).__name__}, not a dict")
  state = contents.get("optimizer", contents) if contents.get("version", 0) else contents
  target = state.get(TARGET) if isinstance(state, dict) else None
  if not isinstance(target, dict):
    keys = sorted(state) if isinstance(state, dict) else []
    raise CheckpointFormatError(f"{where}: no '{TARGET}' parameter tree (version "
                                f"{contents.get('version', 0)}, keys {keys})")
  return {name: _entry(ckpt_dir, where, name, leaf)
          for name, leaf in _flatten_target(target)}


def read_array(entry: T5XArray) -> np.ndarray:
  """The stored array of one ``read_target_index`` entry (tensorstore read, or the inline
  value), its shape checked against the msgpack's record."""
  if entry.spec is None:
    return entry.inline
  import tensorstore as ts

  path = entry.spec["kvstore"]["path"]
  try:
    store = ts.open(entry.spec, open=True, read=True).result()
  except ValueError as e:  # tensorstore reports a missing or unreadable array as ValueError
    raise CheckpointFormatError(f"target/{entry.name}: cannot open the array at {path}: {e}"
                                ) from e
  if tuple(store.shape) != entry.shape:
    raise CheckpointFormatError(f"target/{entry.name}: the array at {path} has shape "
                                f"{tuple(store.shape)}, the checkpoint file says {entry.shape}")
  return np.asarray(store.read().result())
