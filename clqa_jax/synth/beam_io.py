"""Line files in and out of the Beam stages, through `clqa_jax.fileio` (local disk or gs://).

Beam's own file IO (`WriteToText`, `ReadFromText`) reaches gs:// only with apache-beam[gcp];
these transforms go through the project's one I/O layer instead, on the launcher and on every
worker alike, so a stage runs the same against a local directory and a bucket.

`WriteLines` keeps `WriteToText`'s fixed-shard plan: key each line by its shard, GroupByKey,
write each shard from one worker. With one shard (the default) the lines come out in the order
`WriteToText` wrote them in process (byte-identical files); on Dataflow the shards (and
languages) are written in parallel, each straight to its final store. (Writing into a local
staging directory and uploading it afterwards would not do there: a worker's disk is not the
launcher's.) Each shard is written with `fileio.atomic_open`, so a retried bundle replaces its
shard whole. A line goes to shard `crc32(line) % num_shards` (a rerun puts it in the same shard,
where `WriteToText` picks a random round-robin start), and empty shards are still written.
"""
from __future__ import annotations

import json
import zlib
from typing import Any, Callable, Iterable, Iterator

import apache_beam as beam

from clqa_jax import fileio


class LineFormatError(ValueError):
  """A line of a JSONL input that is not valid JSON; names file and line."""


def sharded_name(prefix: str, shard: int, num_shards: int) -> str:
  """`prefix-SSSSS-of-NNNNN`, the contract's shard naming."""
  return f"{prefix}-{shard:05d}-of-{num_shards:05d}"


def shard_of(line: str, num_shards: int) -> int:
  """The shard of a line: stable across runs and workers (unlike Python's salted hash)."""
  return 0 if num_shards == 1 else zlib.crc32(line.encode("utf-8")) % num_shards


def _write_shard(shard_lines: tuple[int, Iterable[str | None]], paths: list[str],
                 header: str | None, sort_lines: bool = False) -> str:
  shard, lines = shard_lines
  lines = [line for line in lines if line is not None]  # None: the marker of an empty shard
  if sort_lines:
    lines.sort()
  with fileio.atomic_open(paths[shard], "wb") as f:
    if header is not None:
      f.write((header + "\n").encode("utf-8"))
    for line in lines:
      f.write((line + "\n").encode("utf-8"))
  return paths[shard]


class WriteLines(beam.PTransform):
  """Writes `str` elements as UTF-8 lines to `path-SSSSS-of-NNNNN` (or to `path` itself with
  `sharded=False`, one shard), each file starting with `header` when given. Outputs the paths.

  `shard_key(line)`, when given, is what picks the shard instead of the whole line (lines with
  the same key share a shard); `sort_lines` writes each shard's lines sorted, so lines that
  start with the same key are consecutive."""

  def __init__(self, path: str, num_shards: int = 1, *, sharded: bool = True,
               header: str | None = None, shard_key: Callable[[str], str] | None = None,
               sort_lines: bool = False):
    super().__init__()
    self.shard_key, self.sort_lines = shard_key, sort_lines
    if num_shards < 1:
      raise ValueError(f"num_shards must be at least 1, got {num_shards}")
    if not sharded and num_shards != 1:
      raise ValueError(f"{path}: an unsharded file is one shard, got num_shards={num_shards}")
    self.num_shards, self.header = num_shards, header
    self.paths = [sharded_name(path, i, num_shards) if sharded else path for i in range(num_shards)]

  def expand(self, lines: beam.PCollection) -> beam.PCollection:
    n, key = self.num_shards, self.shard_key or (lambda line: line)
    keyed = lines | "KeyByShard" >> beam.Map(lambda line: (shard_of(key(line), n), line))
    every = lines.pipeline | "EveryShard" >> beam.Create([(i, None) for i in range(n)])
    return ((keyed, every) | "WithEveryShard" >> beam.Flatten()
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.Map(_write_shard, paths=self.paths, header=self.header,
                                       sort_lines=self.sort_lines))


def _jsonl_records(path: str) -> Iterator[Any]:
  with fileio.open(path, "rb") as f:
    for lineno, raw in enumerate(f, 1):
      line = raw.decode("utf-8")
      if not line.strip():
        continue
      try:
        yield json.loads(line)
      except json.JSONDecodeError as e:
        raise LineFormatError(f"{path}:{lineno}: field '<json>': {e.msg}") from None


def read_jsonl(p: beam.Pipeline, pattern: str, label: str) -> beam.PCollection:
  """The records of every JSONL file matching `pattern` (files read in parallel, then
  redistributed so that the expensive steps after a read are not bound to one file's worker)."""
  files = fileio.glob(pattern)
  if not files:
    raise FileNotFoundError(f"no files match {pattern}")
  return (p | f"{label}Files" >> beam.Create(files)
          | f"Read{label}" >> beam.FlatMap(_jsonl_records)
          | f"Reshuffle{label}" >> beam.Reshuffle())
