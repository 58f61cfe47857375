"""Corpus encoding: any jitted encoder, partitioned over the mesh, streamed to resumable shards.

Each host passes its own part of the corpus as (row_ids [n], tokens [n, Lp]) chunks. Rows are
cut into shards of ``rows_per_shard`` (the cut does not depend on chunk sizes), and each shard
is encoded in global batches whose batch dimension is sharded over the data axes of the mesh;
the last batch is padded and the padding dropped. A finished shard is written atomically with
its manifest; a rerun skips every shard whose manifest matches the input (row ids and tokens
digest) and the model fingerprint, so an interrupted run resumes where it stopped and gives
the same files. Device steps are pipelined: a step's output is fetched after the next step
has been dispatched.

With several processes, all run the same number of device steps: a process with no work left
feeds padding batches until every process is done (one tiny all-gather per step).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
from typing import Any, Callable, Iterable, Iterator, Sequence

import jax
import numpy as np
import tqdm
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from clqa_jax import fileio
from clqa_jax.index import shards as shards_lib

logger = logging.getLogger(__name__)

EncodeFn = Callable[[Any, jax.Array], jax.Array]


class EncodingError(ValueError):
  """Bad encoder input or an output directory that belongs to a different run."""


@dataclasses.dataclass(frozen=True)
class EncodeSummary:
  """What one encode_corpus call did on this host."""
  out_dir: str
  num_shards: int
  shards_encoded: int
  shards_skipped: int
  rows: int
  dim: int


@dataclasses.dataclass
class _ShardWork:
  """A shard being encoded: its input, the rows dispatched and the outputs fetched so far."""
  index: int
  rows: np.ndarray
  tokens: np.ndarray
  sha: str
  outputs: list = dataclasses.field(default_factory=list)
  dispatched: int = 0
  finished: int = 0


@dataclasses.dataclass
class _Step:
  """One dispatched device step (its output is fetched one step later)."""
  output: jax.Array
  work: _ShardWork | None
  n_real: int
  local_batch: int


def _data_axes(mesh: Mesh, data_axes: Sequence[str] | None) -> tuple[str, ...]:
  if data_axes is None:
    axes = tuple(a for a in ("replica", "data") if a in mesh.axis_names)
    if not axes:
      raise EncodingError(f"mesh axes {mesh.axis_names} have neither 'replica' nor 'data': "
                          "pass data_axes")
    return axes
  missing = [a for a in data_axes if a not in mesh.axis_names]
  if missing:
    raise EncodingError(f"data_axes {missing} are not axes of the mesh {mesh.axis_names}")
  return tuple(data_axes)


def _local_batch_size(sharding: NamedSharding, shape: tuple[int, int]) -> int:
  """Rows of a global [G, Lp] batch that this process feeds."""
  starts = {idx[0].indices(shape[0]) for idx in sharding.addressable_devices_indices_map(
      shape).values()}
  return sum(stop - start for start, stop, _ in starts)


def _host_rows(array: jax.Array) -> np.ndarray:
  """This process's rows of a batch-sharded [G, D] array, in global row order."""
  pieces = {}
  for shard in array.addressable_shards:
    start = shard.index[0].indices(array.shape[0])[0]
    if start not in pieces:  # replicas over the model axis hold the same rows
      pieces[start] = np.asarray(shard.data)
  return np.concatenate([pieces[s] for s in sorted(pieces)])


def _cut_shards(passage_batches: Iterable[tuple[np.ndarray, np.ndarray]],
                rows_per_shard: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """Re-chunks (row_ids [n], tokens [n, Lp]) chunks into shards of rows_per_shard rows."""
  buf_rows, buf_tokens, buffered, length = [], [], 0, None
  for i, (row_ids, tokens) in enumerate(passage_batches):
    row_ids, tokens = np.asarray(row_ids), np.asarray(tokens)
    if tokens.ndim != 2 or row_ids.shape != (tokens.shape[0],):
      raise EncodingError(f"corpus chunk {i}: need row_ids [n] and tokens [n, Lp], got "
                          f"{row_ids.shape} and {tokens.shape}")
    if not np.issubdtype(tokens.dtype, np.integer) or not np.issubdtype(row_ids.dtype,
                                                                        np.integer):
      raise EncodingError(f"corpus chunk {i}: row_ids and tokens must be integers, got "
                          f"{row_ids.dtype} and {tokens.dtype}")
    if length is None:
      length = tokens.shape[1]
    elif tokens.shape[1] != length:
      raise EncodingError(f"corpus chunk {i}: token length {tokens.shape[1]} differs from the "
                          f"first chunk's {length}")
    buf_rows.append(row_ids.astype(np.int64))
    buf_tokens.append(tokens.astype(np.int32))
    buffered += tokens.shape[0]
    while buffered >= rows_per_shard:
      rows, toks = np.concatenate(buf_rows), np.concatenate(buf_tokens)
      yield rows[:rows_per_shard], toks[:rows_per_shard]
      buf_rows, buf_tokens = [rows[rows_per_shard:]], [toks[rows_per_shard:]]
      buffered -= rows_per_shard
  if buffered:
    yield np.concatenate(buf_rows), np.concatenate(buf_tokens)


def _check_existing(manifest: shards_lib.ShardManifest, path: str, fingerprint: Any,
                    dtype: str, rows_per_shard: int, input_sha: str) -> None:
  for field, want in (("fingerprint", fingerprint), ("dtype", dtype),
                      ("rows_per_shard", rows_per_shard), ("input_sha256", input_sha)):
    if getattr(manifest, field) != want:
      raise EncodingError(
          f"{path}: field {field!r} is {getattr(manifest, field)!r}, this run has {want!r}; "
          "the directory holds a different encoding: use a new out_dir")


def encode_corpus(encode_fn: EncodeFn, passage_batches: Iterable[tuple[np.ndarray, np.ndarray]],
                  out_dir: str, *, params: Any, fingerprint: Any, global_batch_size: int,
                  mesh: Mesh | None = None, data_axes: Sequence[str] | None = None,
                  dtype: str = "bfloat16", rows_per_shard: int = 1 << 16,
                  total_rows: int | None = None, progress: bool = True) -> EncodeSummary:
  """Encodes this host's corpus rows to embedding shards in out_dir.

  Args:
    encode_fn: (params, tokens int32 [G, Lp]) -> embeddings [G, D]; jitted here with the batch
      sharded over the data axes (params keep the shardings the caller gave them).
    passage_batches: this host's corpus as (row_ids int [n], tokens int [n, Lp]) chunks.
    out_dir: shard directory (created; shared by all hosts).
    params: the encoder's parameters.
    fingerprint: JSON-serialisable identity of the model and step (e.g. {"checkpoint": dir,
      "step": 1000}); stored in every manifest and checked on resume.
    global_batch_size: rows per device step over all hosts (a multiple of the data-axes size).
    mesh: device mesh (default: all devices on one "data" axis).
    data_axes: mesh axes the batch is sharded over (default: those of "replica", "data").
    dtype: "bfloat16" or "float16" on disk.
    rows_per_shard: rows per shard file.
    total_rows: this host's number of rows, for the progress bar's ETA.
    progress: show a tqdm bar (process 0 only).

  Returns:
    An EncodeSummary for this host.
  """
  if dtype not in shards_lib.DTYPES:
    raise EncodingError(f"dtype must be one of {shards_lib.DTYPES}, got {dtype!r}")
  if rows_per_shard < 1:
    raise EncodingError(f"rows_per_shard must be positive, got {rows_per_shard}")
  try:  # the manifests hold it as JSON: compare it in that form (tuples become lists)
    fingerprint = json.loads(json.dumps(fingerprint))
  except TypeError as e:
    raise EncodingError(f"fingerprint must be JSON-serialisable: {e}") from e
  mesh = mesh if mesh is not None else Mesh(np.asarray(jax.devices()), ("data",))
  axes = _data_axes(mesh, data_axes)
  data_size = math.prod(mesh.shape[a] for a in axes)
  if global_batch_size < 1 or global_batch_size % data_size:
    raise EncodingError(f"global_batch_size={global_batch_size} must be a positive multiple "
                        f"of the data-axes size {data_size} (axes {axes})")
  fileio.makedirs(out_dir)
  process, num_processes = jax.process_index(), jax.process_count()
  # A crash mid-write leaves this process's temporary files behind; they are never complete.
  if fileio.isdir(out_dir):  # a remote directory exists once it holds a file
    for name in fileio.listdir(out_dir):
      if shards_lib.is_process_tmp_name(name, process):
        fileio.remove(fileio.join(out_dir, name))
  sharding = NamedSharding(mesh, P(axes))
  encode = jax.jit(encode_fn, out_shardings=NamedSharding(mesh, P(axes, None)))
  done = shards_lib.list_process_manifests(out_dir, process)

  bar = tqdm.tqdm(total=total_rows, unit="psg", desc=f"encode host {process}",
                  disable=not progress or process != 0, smoothing=0.1)
  summary = dict(num_shards=0, shards_encoded=0, shards_skipped=0, rows=0, dim=-1)

  def todo() -> Iterator[tuple[int, np.ndarray, np.ndarray, str]]:
    """Shards this host still has to encode; finished ones are verified and skipped."""
    for index, (rows, tokens) in enumerate(_cut_shards(passage_batches, rows_per_shard)):
      summary["num_shards"] += 1
      summary["rows"] += rows.size
      input_sha = shards_lib.digest(rows, tokens)
      if index in done:
        path = shards_lib.shard_paths(out_dir, process, index)["manifest"]
        _check_existing(done[index], path, fingerprint, dtype, rows_per_shard, input_sha)
        summary["shards_skipped"] += 1
        summary["dim"] = done[index].dim
        bar.update(rows.size)
        continue
      yield index, rows, tokens, input_sha

  def finish(step: "_Step") -> None:
    """Fetches one step's host rows; writes the shard its last rows complete."""
    result = _host_rows(step.output)
    if result.ndim != 2 or result.shape[0] != step.local_batch:
      raise EncodingError(f"encode_fn returned shape {result.shape}, expected "
                          f"[{global_batch_size}, D] (host rows {step.local_batch})")
    work = step.work
    if work is None:
      return
    work.outputs.append(result[:step.n_real])
    work.finished += step.n_real
    bar.update(step.n_real)
    if work.finished < work.rows.size:
      return
    emb = np.concatenate(work.outputs)
    if summary["dim"] not in (-1, emb.shape[1]):
      raise EncodingError(f"shard {work.index}: dimension {emb.shape[1]} differs from the "
                          f"earlier shards' {summary['dim']}")
    if not np.all(np.isfinite(emb.astype(np.float32))):
      raise EncodingError(f"shard {work.index}: encode_fn produced non-finite embeddings")
    shards_lib.write_shard(out_dir, shards_lib.ShardManifest(
        process_index=process, num_processes=num_processes, shard=work.index, dtype=dtype,
        dim=emb.shape[1], count=work.rows.size, rows_per_shard=rows_per_shard,
        fingerprint=fingerprint, input_sha256=work.sha, first_row=int(work.rows[0]),
        last_row=int(work.rows[-1])), work.rows, emb)
    summary["shards_encoded"] += 1
    summary["dim"] = emb.shape[1]

  local_batch = None
  length = None
  pending = todo()
  current = None
  in_flight = None  # the previous step: fetched after the next one is dispatched
  try:
    while True:
      if current is None or current.dispatched >= current.rows.size:
        nxt = next(pending, None)
        current = None if nxt is None else _ShardWork(*nxt)
      have_work = current is not None
      local_len = current.tokens.shape[1] if have_work else 0
      if num_processes > 1:
        from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
        flags = np.asarray(multihost_utils.process_allgather(
            np.asarray([have_work, local_len], np.int32))).reshape(-1, 2)
        if not flags[:, 0].any():
          break
        step_len = int(flags[:, 1].max())
      elif not have_work:
        break
      else:
        step_len = local_len
      if length is None:
        length = step_len
      elif step_len != length or (have_work and local_len != length):
        raise EncodingError(f"token length {max(step_len, local_len)} differs from {length} "
                            "used by the earlier shards/hosts")
      shape = (global_batch_size, length)
      if local_batch is None:
        local_batch = _local_batch_size(sharding, shape)
      batch = np.zeros((local_batch, length), np.int32)
      n_real = 0
      if have_work:
        part = current.tokens[current.dispatched:current.dispatched + local_batch]
        n_real = part.shape[0]
        batch[:n_real] = part
        current.dispatched += n_real
      global_tokens = jax.make_array_from_process_local_data(sharding, batch, shape)
      step = _Step(encode(params, global_tokens), current if have_work else None, n_real,
                   local_batch)
      if in_flight is not None:
        previous, in_flight = in_flight, None
        finish(previous)
      in_flight = step
  except BaseException:
    # The input failed (e.g. preemption): keep the device work already done.
    if in_flight is not None:
      finish(in_flight)
    raise
  else:
    if in_flight is not None:
      finish(in_flight)
  finally:
    bar.close()

  stale = [i for i in done if i >= summary["num_shards"]]
  if stale:
    raise EncodingError(f"{out_dir}: process {process} has shards {stale} beyond the "
                        f"{summary['num_shards']} its corpus makes; use a new out_dir")
  shards_lib.write_json_atomic(shards_lib.done_path(out_dir, process), {
      "num_shards": summary["num_shards"], "rows": summary["rows"],
      "num_processes": num_processes, "fingerprint": fingerprint})
  logger.info("encoded %s: %d shards (%d skipped), %d rows", out_dir, summary["num_shards"],
               summary["shards_skipped"], summary["rows"])
  return EncodeSummary(out_dir=out_dir, **summary)
