"""A searchable passage index for one exported checkpoint (``clqa index``; read by eval/infer).

An index directory holds:
  index.json     written last (its presence marks a finished index): the export and corpus it
                 was built from, the passage store, the searcher kind, counts, ScaNN recall
  passages/      the PassageStore of the corpus (unless an existing store was given)
  embeddings/    the passage vectors (clqa_jax.index shards; resumable, fingerprinted)
  scann/         the ScaNN index, when built with ``searcher="scann"``
Every step resumes: a finished passage store is reused, finished embedding shards are skipped
(an interrupted run continues where it stopped), and a rerun with a different export or
corpus is refused instead of mixing encodings.

An index may be copied or moved (``cp -r``, ``gsutil cp -r``) and so may its export: the
export is identified by its manifest's content (``export_fingerprint``), the corpus by its
size and content hash (``passage_store.corpus_fingerprint``), and index.json names the passage
store relative to the index directory when it lies inside it (an external store given with
``passage_store_dir`` keeps its absolute path). Its "export" and "corpus" fields record where
they were at build time; the corpus TSV is read from there for passage texts.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Sequence

import jax
import numpy as np

from clqa_jax import fileio
from clqa_jax.checkpoints import exported as exported_lib
from clqa_jax.data.records import Passage

logger = logging.getLogger(__name__)

FORMAT = "clqa-passage-index/1"
INDEX_JSON = "index.json"
SEARCHERS = ("exact", "device", "scann")


class IndexMismatchError(ValueError):
  """An index directory built from another export or corpus, or not finished."""


def export_fingerprint(manifest: dict[str, Any]) -> dict[str, Any]:
  """What identifies an export's parameters, from its manifest's content and not from where
  it lies (stored in index.json and with every embedding shard)."""
  return json.loads(json.dumps({
      "created": manifest.get("created"), "source": manifest.get("source"),
      "dtype": manifest.get("dtype"), "params_sha256": manifest.get("params_sha256"),
      "vocab_sha256": manifest.get("vocab_sha256")}))


# Indexes written before fingerprints were content-only also recorded the export's absolute
# path in the fingerprint: it is not compared (the export may have been moved since).
_LEGACY_PATH_FIELD = "export"


def fingerprint_matches(recorded: dict[str, Any], manifest: dict[str, Any]) -> bool:
  """Whether an index's recorded fingerprint is of the export with this manifest."""
  want = export_fingerprint(manifest)
  if _LEGACY_PATH_FIELD in recorded:
    return all(recorded.get(k) == want[k] for k in ("created", "source", "dtype"))
  return recorded == want


def _write_json(path: str, obj: Any) -> None:
  fileio.atomic_write(path, json.dumps(obj, indent=1, sort_keys=True))


def _host_chunks(store, chunk_rows: int):
  """This process's part of the corpus as (row_ids [n], tokens [n, Lp]) chunks."""
  n = len(store)
  per = -(-n // jax.process_count())
  lo, hi = jax.process_index() * per, min(n, (jax.process_index() + 1) * per)
  tokens = store.tokens_array
  for start in range(lo, hi, chunk_rows):
    stop = min(hi, start + chunk_rows)
    yield np.arange(start, stop, dtype=np.int64), np.asarray(tokens[start:stop])


def build_index(export_dir: str, corpus_path: str, index_dir: str, *, runner=None,
                passage_store_dir: str | None = None, searcher: str = "exact",
                batch_size: int = 256, rows_per_shard: int = 1 << 16,
                embedding_dtype: str = "bfloat16", skip_errors: bool = False,
                scann_config=None, progress: bool = True) -> dict[str, Any]:
  """Builds (or finishes, or reuses) the index of ``corpus_path`` for ``export_dir``.

  Args:
    export_dir: the exported checkpoint.
    corpus_path: DPR passage TSV.
    index_dir: the index directory (created).
    runner: a ``ModelRunner`` for the export (built here when None).
    passage_store_dir: an existing (or to-be-built) PassageStore directory to use instead of
      ``index_dir/passages``.
    searcher: "exact"/"device" (search the embeddings directly) or "scann" (also build and
      save a ScaNN index; its recall@100 against exact search is recorded).
    batch_size: passages per device step (over all devices).
    rows_per_shard: passages per embedding shard file (the unit of resumption).
    embedding_dtype: "bfloat16" or "float16" on disk.
    skip_errors: skip malformed TSV rows (counted in the passage store manifest).
    scann_config: a ``ScannConfig`` (default: gin's, chosen by corpus size).

  Returns:
    The index manifest (``index.json``).
  """
  from clqa_jax.data.passage_store import PassageStore
  from clqa_jax.serving.inference import ModelRunner
  from clqa_jax.index import encode as encode_lib

  if searcher not in SEARCHERS:
    raise ValueError(f"searcher must be one of {SEARCHERS}, got {searcher!r}")
  export_dir = fileio.abspath(export_dir)
  index_dir = fileio.abspath(index_dir)
  export_manifest = exported_lib.read_manifest(export_dir)
  fingerprint = export_fingerprint(export_manifest)
  existing = fileio.join(index_dir, INDEX_JSON)
  if fileio.exists(existing):
    old = fileio.read_json(existing)
    if not fingerprint_matches(old.get("fingerprint", {}), export_manifest):
      raise IndexMismatchError(f"{index_dir} was built for another export "
                               f"({old.get('export')}, created "
                               f"{old.get('fingerprint', {}).get('created')}); use a new "
                               "index directory")
    from clqa_jax.data.passage_store import corpus_fingerprint, same_corpus
    if not same_corpus(corpus_fingerprint(corpus_path), old["corpus_fingerprint"]):
      raise IndexMismatchError(f"{index_dir} was built from the corpus {old.get('corpus')}, "
                               f"not {corpus_path}; use a new index directory")
    if old.get("searcher") == searcher or searcher != "scann":
      logger.info("%s is already built; reusing it", index_dir)
      return old
    # Adding ScaNN to a finished index: its shards carry the fingerprint it recorded.
    fingerprint = old["fingerprint"]
    if passage_store_dir is None:
      passage_store_dir = fileio.resolve(index_dir, old["passage_store"])
  fileio.makedirs(index_dir)
  vocab = fileio.join(export_dir, exported_lib.VOCAB_FILE)
  store_dir = fileio.abspath(passage_store_dir or fileio.join(index_dir, "passages"))
  started = time.time()
  store = PassageStore.build(corpus_path, vocab, store_dir, skip_errors=skip_errors,
                             progress=progress and jax.process_index() == 0)
  if runner is None:
    config, params, _, _ = exported_lib.load_exported(export_dir)
    runner = ModelRunner(config, params, progress=progress)
  emb_dir = fileio.join(index_dir, "embeddings")
  summary = encode_lib.encode_corpus(
      runner.passage_encode_fn(), _host_chunks(store, max(batch_size, 4096)), emb_dir,
      params=runner.params, fingerprint=fingerprint, global_batch_size=batch_size,
      mesh=runner.partitioner.mesh, data_axes=_data_axes(runner.partitioner),
      dtype=embedding_dtype, rows_per_shard=rows_per_shard,
      total_rows=-(-len(store) // jax.process_count()), progress=progress)
  manifest = {
      "format": FORMAT, "fingerprint": fingerprint, "export": export_dir,
      "corpus": fileio.abspath(corpus_path),
      "passage_store": fileio.relative_to(store_dir, index_dir) or store_dir,
      "corpus_fingerprint": store.manifest["corpus_fingerprint"],
      "num_passages": len(store), "skipped_rows": store.manifest.get("skipped_rows", 0),
      "skip_errors": skip_errors, "embeddings": "embeddings", "embedding_dtype": embedding_dtype,
      "dim": summary.dim, "searcher": searcher,
  }
  if jax.process_index() == 0:
    if searcher == "scann":
      from clqa_jax.index import scann_index
      from clqa_jax.index import searchers
      built = searchers.build_searcher_from_shards(
          "scann", emb_dir, config=scann_config or scann_index.ScannConfig())
      built.save(fileio.join(index_dir, "scann"), overwrite=True)
      manifest.update(scann="scann", scann_params=built.params,
                      scann_recall_at_100=built.build_recall)
    manifest["build_seconds"] = round(time.time() - started, 1)
    _write_json(fileio.join(index_dir, INDEX_JSON), manifest)
  if jax.process_count() > 1:
    # Nobody searches before process 0 has finished the index.
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices("clqa_index_built")
  return manifest


def _data_axes(partitioner) -> tuple[str, ...]:
  axes = partitioner.batch_axes
  return (axes,) if isinstance(axes, str) else tuple(axes)


class CorpusIndex:
  """A finished index: its passage store, embeddings, searchers and passage texts."""

  def __init__(self, index_dir: str, export_dir: str | None = None):
    from clqa_jax.data.passage_store import PassageStore

    self.directory = fileio.abspath(index_dir)
    path = fileio.join(self.directory, INDEX_JSON)
    if not fileio.exists(path):
      raise IndexMismatchError(f"{self.directory} is not a finished index ({INDEX_JSON} is "
                               "missing): build it with `clqa index`")
    self.manifest = fileio.read_json(path)
    if self.manifest.get("format") != FORMAT:
      raise IndexMismatchError(f"{path}: field 'format' is {self.manifest.get('format')!r}, "
                               f"expected {FORMAT!r}")
    if export_dir is not None:
      export_manifest = exported_lib.read_manifest(export_dir)
      if not fingerprint_matches(self.manifest["fingerprint"], export_manifest):
        raise IndexMismatchError(
            f"{self.directory} was built for the export {self.manifest['export']} "
            f"(created {self.manifest['fingerprint'].get('created')}), not {export_dir} "
            f"(created {export_manifest.get('created')}): re-run `clqa index` with this export")
    self.store = PassageStore(self._store_dir(path))
    self._texts: dict[int, Passage] = {}

  def _store_dir(self, index_json: str) -> str:
    """The passage store index.json names, checked to be the one the index was built on."""
    from clqa_jax.data.passage_store import same_corpus

    store_dir = fileio.resolve(self.directory, self.manifest["passage_store"])
    where = f"{index_json}: field 'passage_store' ({self.manifest['passage_store']!r})"
    if not fileio.exists(fileio.join(store_dir, "manifest.json")):
      raise IndexMismatchError(f"{where}: {store_dir} is not a passage store (no manifest.json): "
                               "copy the store with the index, or rebuild it with `clqa index`")
    store_manifest = fileio.read_json(fileio.join(store_dir, "manifest.json"))
    if (not same_corpus(store_manifest["corpus_fingerprint"], self.manifest["corpus_fingerprint"])
        or store_manifest["count"] != self.manifest["num_passages"]):
      raise IndexMismatchError(f"{where}: {store_dir} holds another corpus than the one the "
                               "index was built from: rebuild it with `clqa index`")
    return store_dir

  @property
  def embeddings_dir(self) -> str:
    return fileio.join(self.directory, self.manifest["embeddings"])

  def __len__(self) -> int:
    return int(self.manifest["num_passages"])

  def searcher(self, kind: str, **options: Any):
    """A searcher over the passage vectors: "exact" (numpy), "device" or "scann" (the saved
    ScaNN index when the index has one, else built now)."""
    from clqa_jax.index import searchers

    if kind not in SEARCHERS:
      raise ValueError(f"search must be one of {SEARCHERS}, got {kind!r}")
    if kind == "scann":
      if self.manifest.get("scann"):
        return searchers.load_searcher(fileio.join(self.directory, self.manifest["scann"]))
      from clqa_jax.index import scann_index
      options.setdefault("config", scann_index.ScannConfig())   # gin's ScannConfig
    return searchers.build_searcher_from_shards(kind, self.embeddings_dir, **options)

  def passages(self, rows: Sequence[int]) -> dict[int, Passage]:
    """{row: Passage} for the rows asked, by one streaming pass over the TSV.

    Rows are positions in the store (the TSV order with the same skipped rows); each row's pid
    is checked against the store, so a changed corpus file is an error, not wrong texts.
    """
    from clqa_jax.data import passage_store
    from clqa_jax.data.errors import StoreMismatchError

    wanted = {int(r) for r in rows if int(r) >= 0} - set(self._texts)
    corpus = self.manifest["corpus"]
    if wanted and not fileio.exists(corpus):
      raise IndexMismatchError(
          f"{fileio.join(self.directory, INDEX_JSON)}: field 'corpus': {corpus} is missing; the "
          "passage texts are read from the corpus the index was built from: put it back there")
    try:
      self._texts.update(passage_store.read_passages(
          self.store, wanted, corpus, skip_errors=self.manifest["skip_errors"]))
    except StoreMismatchError as e:
      raise IndexMismatchError(f"{e} with `clqa index`") from e
    return {int(r): self._texts[int(r)] for r in rows if int(r) >= 0}
