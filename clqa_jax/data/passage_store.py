"""``PassageStore``: the token ids of every corpus passage, memory-mapped, built once.

Layout of a store directory (all little-endian, row = position of the passage in the TSV):
  manifest.json   corpus path + fingerprint, vocabulary sha256, count, max_length, length stats
  tokens.bin      int32 [N, max_length]  "title: {t} context: {p}" + EOS, truncated, pad 0
  lengths.bin     int16 [N]              real token count of each row
  pids.npy        [N] pid of each row (int64 when every pid is an integer, else bytes)
  pid_sorted.npy  the pids sorted; pid_order.npy int64 [N]: their rows (pid -> row lookup)

The build streams the TSV (never holding the corpus), tokenises in chunks, shows progress with
rate and ETA, is resumable (``.build`` directory with progress.json) and finishes with one
rename of the directory, so a store is either complete or absent. Opening a store with a
different corpus or vocabulary raises ``StoreMismatchError`` instead of silently reusing it.

A store directory may be remote (``gs://``). It is built in a local directory (under the
system temporary directory, resumable on the same machine) and uploaded with manifest.json
last; opening a remote store copies it to local disk first, since it is memory-mapped.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from typing import Iterable, Sequence

import numpy as np

from clqa_jax import fileio
from clqa_jax.data import formats
from clqa_jax.data import readers
from clqa_jax.data import spm_train
from clqa_jax.data.errors import SkipStats, StoreMismatchError
from clqa_jax.data.records import Passage

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MAX_PASSAGE_TOKENS = 200
EOS_ID = 1
_FINGERPRINT_BYTES = 1 << 20


def corpus_fingerprint(path: str) -> dict:
  """The identity of a corpus file by its content: size and the sha256 of its first and last
  MiB. Computed at build and stored in the manifest, then compared with ``same_corpus``, never
  by path or modification time, so a copied or moved corpus still matches. Cheap on a 13 GB
  TSV (a full hash would read it all at every reuse), and any rewrite, truncation or append
  changes it; a change in the middle that keeps the size is caught when passage texts are read
  (``read_passages`` checks every row's pid)."""
  size = fileio.size(path)
  h = hashlib.sha256()
  with fileio.open(path, "rb") as f:
    h.update(f.read(_FINGERPRINT_BYTES))
    if size > _FINGERPRINT_BYTES:
      f.seek(max(_FINGERPRINT_BYTES, size - _FINGERPRINT_BYTES))
      h.update(f.read(_FINGERPRINT_BYTES))
  return {"size": size, "sha256_head_tail": h.hexdigest()}


def same_corpus(a: dict, b: dict) -> bool:
  """Whether two ``corpus_fingerprint``s are of the same content (fields other than size and
  hash, such as the ``mtime_ns`` older manifests recorded, are not compared)."""
  return a["size"] == b["size"] and a["sha256_head_tail"] == b["sha256_head_tail"]


def _sp_processor(vocab):
  """A sentencepiece processor from a seqio vocabulary, a processor, or a .model path."""
  if isinstance(vocab, str):
    return spm_train.load_processor(vocab)
  if hasattr(vocab, "tokenizer"):
    return vocab.tokenizer
  return vocab


def _sp_model_bytes(vocab) -> bytes:
  if isinstance(vocab, str):
    return fileio.read_bytes(vocab)
  if hasattr(vocab, "sp_model"):
    return vocab.sp_model
  return vocab.serialized_model_proto()


def _read_manifest(directory: str) -> dict:
  manifest = fileio.read_json(fileio.join(directory, "manifest.json"))
  if manifest.get("format_version") != FORMAT_VERSION:
    raise StoreMismatchError(f"{directory}: store format {manifest.get('format_version')}, "
                             f"expected {FORMAT_VERSION}; rebuild it")
  return manifest


class PassageStore:
  """Random access to tokenised passages by row or pid (read-only, memory-mapped; a remote
  store is copied to local disk when opened)."""

  def __init__(self, directory: str):
    self.directory = directory
    self.manifest = _read_manifest(directory)
    n, width = self.manifest["count"], self.manifest["max_length"]
    self.max_length = width
    local = fileio.pinned_local_copy(directory, self)
    self._tokens = np.memmap(fileio.join(local, "tokens.bin"), np.int32, "r", shape=(n, width))
    self._lengths = np.memmap(fileio.join(local, "lengths.bin"), np.int16, "r", shape=(n,))
    self._pids = np.load(fileio.join(local, "pids.npy"), mmap_mode="r")
    self._pid_sorted = np.load(fileio.join(local, "pid_sorted.npy"), mmap_mode="r")
    self._pid_order = np.load(fileio.join(local, "pid_order.npy"), mmap_mode="r")
    self._numeric = self._pid_sorted.dtype.kind == "i"

  # -- construction ------------------------------------------------------------------------

  @classmethod
  def open(cls, directory: str, *, corpus_path: str | None = None, vocab=None) -> "PassageStore":
    """Opens a store, checking it was built from ``corpus_path`` / ``vocab`` when given."""
    manifest = _read_manifest(directory)  # checked before a remote store is copied
    if corpus_path is not None:
      want = corpus_fingerprint(corpus_path)
      if not same_corpus(want, manifest["corpus_fingerprint"]):
        raise StoreMismatchError(
            f"{directory} was built from {manifest['corpus_path']} "
            f"({manifest['corpus_fingerprint']}), not {corpus_path} ({want}); "
            "use another store directory or rebuild with overwrite=True")
    if vocab is not None:
      want = hashlib.sha256(_sp_model_bytes(vocab)).hexdigest()
      if want != manifest["vocab_sha256"]:
        raise StoreMismatchError(
            f"{directory} was built with vocabulary sha256 {manifest['vocab_sha256'][:16]}, "
            f"not {want[:16]}; use another store directory or rebuild with overwrite=True")
    return cls(directory)

  @classmethod
  def build(cls, corpus_path: str, vocab, directory: str, *, max_length: int = MAX_PASSAGE_TOKENS,
            nfc_titles: bool | None = None, skip_errors: bool = False, overwrite: bool = False,
            chunk_size: int = 4096, progress: bool = True, num_threads: int = 0) -> "PassageStore":
    """Builds the store for (corpus, vocabulary), or opens the matching existing one.

    Args:
      corpus_path: DPR passage TSV (psgs_w100.tsv / all_w100.tsv conventions).
      vocab: seqio SentencePieceVocabulary, sentencepiece processor, or .model path.
      directory: the store directory (created atomically; local or gs://).
      max_length: tokens per passage including EOS.
      nfc_titles: NFC-normalise titles (None: only for all_w100.tsv, as the official code).
      skip_errors: skip malformed TSV rows (counted in the manifest) instead of failing.
      overwrite: replace an existing store built from something else.
      chunk_size: passages tokenised per call.
      progress: show a tqdm bar with rate and ETA.
      num_threads: sentencepiece encoding threads (0 = all cores).
    """
    fingerprint = corpus_fingerprint(corpus_path)
    vocab_sha = hashlib.sha256(_sp_model_bytes(vocab)).hexdigest()
    if fileio.exists(fileio.join(directory, "manifest.json")):
      try:
        return cls.open(directory, corpus_path=corpus_path, vocab=vocab)
      except StoreMismatchError:
        if not overwrite:
          raise
    sp = _sp_processor(vocab)
    build_dir = _build_dir(directory)
    identity = {"corpus_fingerprint": fingerprint, "vocab_sha256": vocab_sha,
                "max_length": max_length, "nfc_titles": nfc_titles}
    done = _resume_point(build_dir, identity)
    fileio.makedirs(build_dir)
    width_bytes = max_length * 4
    # The build directory is local: its files are appended to, and truncated on resume.
    tok_f = fileio.open(fileio.join(build_dir, "tokens.bin"), "r+b" if done else "wb")
    len_f = fileio.open(fileio.join(build_dir, "lengths.bin"), "r+b" if done else "wb")
    pid_f = fileio.open(fileio.join(build_dir, "pids.txt"), "r+b" if done else "wb")
    if done:
      tok_f.truncate(done["rows"] * width_bytes)
      len_f.truncate(done["rows"] * 2)
      pid_f.truncate(done["pid_bytes"])
      for f in (tok_f, len_f, pid_f):
        f.seek(0, os.SEEK_END)
    rows = done["rows"] if done else 0
    pid_bytes = done["pid_bytes"] if done else 0
    truncated = done.get("truncated", 0) if done else 0
    stats = SkipStats()
    bar = None
    if progress:
      from tqdm import tqdm
      bar = tqdm(total=fingerprint["size"], unit="B", unit_scale=True,
                 desc=f"passages {fileio.basename(corpus_path)}", smoothing=0.05,
                 mininterval=2.0)
    seen = 0
    chunk: list[Passage] = []
    started = time.time()

    def flush():
      nonlocal rows, pid_bytes, truncated
      ids = sp.encode([formats.passage_text(p.title, p.text) for p in chunk], out_type=int,
                      num_threads=num_threads or -1)
      block = np.zeros((len(chunk), max_length), np.int32)
      lengths = np.empty(len(chunk), np.int16)
      for i, seq in enumerate(ids):
        truncated += len(seq) > max_length - 1
        seq = seq[:max_length - 1] + [EOS_ID]  # HF truncation keeps the EOS
        block[i, :len(seq)] = seq
        lengths[i] = len(seq)
      tok_f.write(block.tobytes())
      len_f.write(lengths.tobytes())
      data = "".join(p.pid + "\n" for p in chunk).encode("utf-8")
      pid_f.write(data)
      rows += len(chunk)
      pid_bytes += len(data)
      for f in (tok_f, len_f, pid_f):
        f.flush()
      _write_json(fileio.join(build_dir, "progress.json"),
                  {**identity, "rows": rows, "pid_bytes": pid_bytes, "truncated": truncated})
      chunk.clear()

    for p in readers.read_passages_tsv(corpus_path, nfc_titles=nfc_titles, skip_errors=skip_errors,
                                       stats=stats):
      seen += 1
      if bar is not None:
        bar.update(len(p.pid) + len(p.text.encode("utf-8")) + len(p.title.encode("utf-8")) + 3)
      if seen <= rows:
        continue  # already tokenised by an interrupted build
      chunk.append(p)
      if len(chunk) >= chunk_size:
        flush()
    if chunk:
      flush()
    for f in (tok_f, len_f, pid_f):
      f.close()
    if bar is not None:
      bar.close()
    stats.log(corpus_path)
    _finalize(build_dir, rows, truncated, corpus_path, identity, stats, time.time() - started)
    if fileio.exists(directory) and not overwrite:
      raise FileExistsError(f"{directory} appeared during the build; not overwriting it")
    fileio.publish_built_dir(build_dir, directory, overwrite=True, commit_marker="manifest.json")
    return cls(directory)

  # -- access ------------------------------------------------------------------------------

  def __len__(self) -> int:
    return int(self.manifest["count"])

  @property
  def tokens_array(self) -> np.ndarray:
    """The whole memory-mapped int32 [N, max_length] array."""
    return self._tokens

  def tokens(self, rows: np.ndarray) -> np.ndarray:
    """Token ids for ``rows`` (any shape); row -1 gives an all-pad passage. -> rows.shape + [L]."""
    rows = np.asarray(rows)
    flat = rows.reshape(-1)
    out = self._tokens[np.maximum(flat, 0)]
    out[flat < 0] = 0
    return out.reshape(rows.shape + (self.max_length,))

  def lengths(self, rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows)
    out = np.asarray(self._lengths[np.maximum(rows, 0)]).astype(np.int32)
    return np.where(rows < 0, 0, out)

  def pid(self, row: int) -> str:
    v = self._pids[int(row)]
    return v.decode("utf-8") if isinstance(v, bytes) else str(int(v))

  def rows(self, pids: Iterable[str | bytes], *, missing: str = "raise") -> np.ndarray:
    """Rows of ``pids`` (int32); unknown pids raise KeyError, or give -1 with missing="pad"."""
    pids = [p.decode("utf-8") if isinstance(p, bytes) else str(p) for p in pids]
    n = len(self)
    canonical = None
    if self._numeric:
      try:
        keys = np.array(pids, dtype=np.int64)  # vectorised parse (the usual, all-numeric case)
        canonical = keys.astype(str) == np.array(pids, dtype=str)
      except (ValueError, OverflowError):
        keys = np.array([int(p) if _is_int(p) else -(1 << 62) for p in pids], np.int64)
    else:
      keys = np.array([p.encode("utf-8") for p in pids], dtype=self._pid_sorted.dtype)
    pos = np.searchsorted(self._pid_sorted, keys)
    pos_c = np.minimum(pos, n - 1)
    found = (pos < n) & (np.asarray(self._pid_sorted[pos_c]) == keys)
    if self._numeric:
      # "007" is not pid 7: require the canonical spelling.
      if canonical is None:
        canonical = np.array([_is_int(p) and str(int(p)) == p for p in pids], bool)
      found &= canonical
    out = np.where(found, np.asarray(self._pid_order[pos_c]), -1).astype(np.int32)
    if missing == "raise" and not found.all():
      bad = [p for p, ok in zip(pids, found) if not ok][:5]
      raise KeyError(f"pids not in the passage store {self.directory}: {bad}")
    return out

  def rows_padded(self, pid_lists: Sequence[Sequence[str | bytes]], k: int) -> np.ndarray:
    """int32 [B, k] rows of up to k pids per list (empty strings skipped), -1 padded."""
    out = np.full((len(pid_lists), k), -1, np.int32)
    flat, where_i, where_j = [], [], []
    for i, pids in enumerate(pid_lists):
      j = 0
      for p in pids:
        if j == k:
          break
        if p in (b"", ""):
          continue
        flat.append(p)
        where_i.append(i)
        where_j.append(j)
        j += 1
    if flat:
      out[where_i, where_j] = self.rows(flat)  # one vectorised lookup for the whole batch
    return out


def _is_int(p: str) -> bool:
  return p.lstrip("-").isdigit()


def _write_json(path: str, obj: dict) -> None:
  fileio.atomic_write(path, json.dumps(obj, indent=1, sort_keys=True))


def _build_dir(directory: str) -> str:
  """The local, resumable build directory of a store: ``<directory>.build`` beside a local
  store, under the system temporary directory (named by a hash of the path) for a remote one."""
  if not fileio.is_remote(directory):
    return directory.rstrip("/") + ".build"
  key = hashlib.sha256(directory.rstrip("/").encode("utf-8")).hexdigest()[:16]
  return os.path.join(tempfile.gettempdir(), "clqa-passage-store-builds",
                      f"{fileio.basename(directory)}-{key}.build")


def _resume_point(build_dir: str, identity: dict) -> dict | None:
  """The progress of an interrupted build of the same (corpus, vocab), else None (restart)."""
  path = fileio.join(build_dir, "progress.json")
  if not fileio.exists(path):
    fileio.rmtree(build_dir)
    return None
  progress = fileio.read_json(path)
  if any(progress.get(k) != v for k, v in identity.items()):
    logger.warning("%s is a build of another corpus/vocabulary; starting over", build_dir)
    fileio.rmtree(build_dir)
    return None
  logger.info("resuming the passage store build at row %d", progress["rows"])
  return progress


def _finalize(build_dir: str, rows: int, truncated: int, corpus_path: str, identity: dict,
              stats: SkipStats, seconds: float) -> None:
  """Writes the pid index and the manifest into the build directory."""
  pid_list = fileio.read_bytes(fileio.join(build_dir, "pids.txt")).decode("utf-8").split("\n")[:-1]
  if len(pid_list) != rows:
    raise RuntimeError(f"{build_dir}: {len(pid_list)} pids for {rows} rows; delete it and rebuild")
  if rows == 0:
    raise ValueError(f"{corpus_path}: no passages")
  if all(_is_int(p) and str(int(p)) == p for p in pid_list):
    pids = np.array([int(p) for p in pid_list], np.int64)
  else:
    pids = np.array([p.encode("utf-8") for p in pid_list])
  del pid_list
  order = np.argsort(pids, kind="stable")
  sorted_pids = pids[order]
  dup = np.nonzero(sorted_pids[1:] == sorted_pids[:-1])[0]
  if dup.size:
    v = sorted_pids[dup[0]]
    raise ValueError(f"{corpus_path}: pid {v!r} occurs more than once ({dup.size} duplicates)")
  np.save(fileio.join(build_dir, "pids.npy"), pids)
  np.save(fileio.join(build_dir, "pid_sorted.npy"), sorted_pids)
  np.save(fileio.join(build_dir, "pid_order.npy"), order.astype(np.int64))
  lengths = np.fromfile(fileio.join(build_dir, "lengths.bin"), np.int16).astype(np.int64)
  manifest = {
      "format_version": FORMAT_VERSION,
      "corpus_path": fileio.abspath(corpus_path),
      **identity,
      "count": rows,
      "template": formats.PASSAGE_TEMPLATE + " + EOS",
      "pid_dtype": "int64" if pids.dtype.kind == "i" else "bytes",
      "lengths": {"mean": float(lengths.mean()),
                  "p50": float(np.percentile(lengths, 50)),
                  "p95": float(np.percentile(lengths, 95)),
                  "max": int(lengths.max()),
                  "truncated_fraction": truncated / rows},
      "skipped_rows": stats.skipped, "skipped_by_field": dict(stats.by_field),
      "build_seconds": round(seconds, 3),
  }
  fileio.remove(fileio.join(build_dir, "progress.json"))
  fileio.remove(fileio.join(build_dir, "pids.txt"))
  _write_json(fileio.join(build_dir, "manifest.json"), manifest)


def read_passages(store: PassageStore, rows: Iterable[int], corpus_path: str, *,
                  skip_errors: bool = False) -> dict[int, Passage]:
  """{row: Passage} of a store's rows, by one streaming pass over its TSV up to the last row
  asked (rows < 0 are ignored).

  Rows are positions in the store (the TSV order with the same skipped rows); each row's pid
  is checked against the store, so a changed corpus file is an error, not wrong texts.
  """
  wanted = {int(r) for r in rows if int(r) >= 0}
  out: dict[int, Passage] = {}
  if not wanted:
    return out
  last = max(wanted)
  if last >= len(store):
    raise IndexError(f"row {last} is past the {len(store)} rows of the store {store.directory}")
  # nfc_titles None: the store's own rule (all_w100.tsv titles are NFC-normalised).
  for row, p in enumerate(readers.read_passages_tsv(corpus_path, skip_errors=skip_errors)):
    if row in wanted:
      if store.pid(row) != p.pid:
        raise StoreMismatchError(
            f"{corpus_path}: row {row} has pid {p.pid!r} but the passage store "
            f"{store.directory} has {store.pid(row)!r}; the corpus changed since the store was "
            "built: rebuild it")
      out[row] = p
    if row >= last:
      break
  return out
