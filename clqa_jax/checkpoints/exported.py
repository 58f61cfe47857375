"""The exported checkpoint: what ``clqa export`` and ``clqa import`` write and ``clqa
eval/index/infer`` read. ``write_exported`` is its only writer, ``load_exported`` its reader.

An export directory holds:
  manifest.json       {"format": "clqa-export", "format_version": 1, "dtype", "source": {...},
                       "param_count", "params_sha256", "vocab_sha256", "files": {...},
                       "sha256": {...}, "created"}
  model_config.json   {"kind": "unified"|"mt5", "config": the config's to_dict()}
  params/             the parameters (orbax StandardCheckpointer, float32 or bfloat16)
  vocab/spm.model     the SentencePiece model the checkpoint was trained with (a copy)
  config.gin          the training run's operative gin config, when the run had one
It is built under a temporary name and published with ``fileio.publish_dir`` (manifest last),
so it is complete or absent, locally and on GCS. A training run's ``model_config.json``
(``MODEL_DIR/model_config.json``) has the same record, read by ``read_model_config``.

Nothing in an export names its own location: a copy (``cp -r``, ``gsutil cp -r``) is the same
export. The manifest's "sha256" records {file: sha256} of the small files (model_config.json,
vocab/spm.model, config.gin), which ``load_exported`` verifies (``verify_files``) before it
reads anything else; exports written before that field record only "vocab_sha256", which is
verified alone. The parameters are not hashed: they are gigabytes, read at every load, and an
incomplete or damaged copy of them fails in orbax's restore or in the tree and shape check
(``check_params_match``), both reported as ``ExportFormatError``.

    config, params, vocab_path, manifest = load_exported(path)
"""
from __future__ import annotations

import datetime
import hashlib
import json
import logging
from typing import Any

import numpy as np

from clqa_jax import fileio

logger = logging.getLogger(__name__)

FORMAT = "clqa-export"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MODEL_CONFIG = "model_config.json"
PARAMS_DIR = "params"
VOCAB_FILE = "vocab/spm.model"
GIN_FILE = "config.gin"
PARAM_DTYPES = ("float32", "bfloat16")
CHECKSUMS = "sha256"   # the manifest field {file relative to the export: sha256}


class ExportFormatError(ValueError):
  """A directory that is not an exported checkpoint this build can read."""


def read_manifest(path: str) -> dict[str, Any]:
  """The manifest of an export directory, with its format and version checked."""
  manifest_path = fileio.join(path, MANIFEST)
  if not fileio.isdir(path):
    raise FileNotFoundError(f"{path}: no such export directory (write one with `clqa export`)")
  try:
    manifest = fileio.read_json(manifest_path)
  except FileNotFoundError:
    raise ExportFormatError(
        f"{path}: {MANIFEST} is missing; this is not an exported checkpoint (write one with "
        "`clqa export --checkpoint_dir RUN --out DIR`)") from None
  except json.JSONDecodeError as e:
    raise ExportFormatError(f"{manifest_path}: line {e.lineno}: not valid JSON ({e.msg})") from e
  if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
    got = manifest.get("format") if isinstance(manifest, dict) else None
    raise ExportFormatError(f"{manifest_path}: field 'format' is {got!r}, expected {FORMAT!r}")
  version = manifest.get("format_version")
  if not isinstance(version, int) or isinstance(version, bool):
    raise ExportFormatError(f"{manifest_path}: field 'format_version' must be an integer, got "
                            f"{version!r}")
  if version > FORMAT_VERSION:
    raise ExportFormatError(
        f"{manifest_path}: format_version {version} was written by a newer clqa-jax; this build "
        f"reads versions up to {FORMAT_VERSION}: upgrade clqa-jax or re-export with this one")
  if version < 1:
    raise ExportFormatError(f"{manifest_path}: format_version {version} is not a valid version")
  if manifest.get("dtype") not in PARAM_DTYPES:
    raise ExportFormatError(f"{manifest_path}: field 'dtype' is {manifest.get('dtype')!r}, "
                            f"expected one of {PARAM_DTYPES}")
  return manifest


def recorded_checksums(path: str, manifest: dict[str, Any]) -> dict[str, tuple[str, str]]:
  """{file relative to the export: (sha256, the manifest field recording it)}: the "sha256"
  field's files and the vocabulary's "vocab_sha256" (all an older export records)."""
  manifest_path = fileio.join(path, MANIFEST)
  recorded = manifest.get(CHECKSUMS, {})
  if not isinstance(recorded, dict) or not all(
      isinstance(k, str) and isinstance(v, str) for k, v in recorded.items()):
    raise ExportFormatError(f"{manifest_path}: field {CHECKSUMS!r} must map file names to "
                            f"sha256 strings, got {recorded!r}")
  checks = {name: (digest, f"{CHECKSUMS}.{name}") for name, digest in recorded.items()}
  if "vocab_sha256" in manifest:   # the same digest as "sha256"'s entry, under its own name
    checks[VOCAB_FILE] = (manifest["vocab_sha256"], "vocab_sha256")
  return checks


def verify_files(path: str, manifest: dict[str, Any]) -> None:
  """Raises ExportFormatError unless every file the manifest records a sha256 of is there
  with that content (a replaced vocabulary would silently change every token id)."""
  manifest_path = fileio.join(path, MANIFEST)
  for name, (expected, field) in sorted(recorded_checksums(path, manifest).items()):
    file_path = fileio.join(path, *name.split("/"))
    if not fileio.isfile(file_path):
      raise ExportFormatError(f"{file_path} is missing (the export is incomplete)")
    actual = _sha256(file_path)
    if actual != expected:
      raise ExportFormatError(
          f"{file_path}: sha256 is {actual}, but {manifest_path} field {field!r} records "
          f"{expected}: the file was changed or replaced after the export was written; put "
          "the original back or export again")


def read_model_config(path: str, *, require_unified: bool = True):
  """The model config recorded in ``path/model_config.json``: an export directory's, or a
  training run directory's (``MODEL_DIR``, written by the training loop).

  With ``require_unified`` (default) a plain mT5 config is an error: eval, index and infer
  need the retriever-reader.
  """
  from clqa_jax.checkpoints.hf_mt5 import CheckpointFormatError, config_from_record
  from clqa_jax.models.unified import UnifiedConfig

  config_path = fileio.join(path, MODEL_CONFIG)
  try:
    config = config_from_record(fileio.read_json(config_path))
  except FileNotFoundError:
    raise ExportFormatError(f"{config_path} is missing") from None
  except json.JSONDecodeError as e:
    raise ExportFormatError(f"{config_path}: line {e.lineno}: not valid JSON ({e.msg})") from e
  except (CheckpointFormatError, KeyError, TypeError, ValueError, AttributeError) as e:
    raise ExportFormatError(f"{config_path}: {e}") from e
  if require_unified and not isinstance(config, UnifiedConfig):
    raise ExportFormatError(f"{config_path}: field 'kind' is 'mt5' (a plain mT5 import); the "
                            "retriever-reader needs 'unified' (clqa import class, or clqa "
                            "import hf_mt5 --unified)")
  return config


def vocabulary_to_ship(explicit: str | None, found: str | None, missing: str) -> str:
  """The SentencePiece model an export ships: ``explicit`` (``--vocab``), else ``found`` (the
  source's own), else the configured default (``clqa_jax.data.paths.vocabulary_path``: env
  CLQA_VOCAB / data root). ``missing`` says what lacked one when none is found."""
  candidate = explicit or found
  if not candidate:
    from clqa_jax.data import paths  # pylint: disable=g-import-not-at-top
    try:
      candidate = paths.vocabulary_path()
    except FileNotFoundError as e:
      raise FileNotFoundError(f"{missing}: pass --vocab PATH ({e})") from e
  if not fileio.isfile(candidate):
    raise FileNotFoundError(f"vocabulary {candidate!r} not found: pass --vocab PATH")
  return candidate


def abstract_params(config) -> Any:
  """The parameter tree's shapes and dtypes (float32) for a UnifiedConfig or MT5Config,
  without allocating."""
  import flax.linen as nn
  import jax
  import jax.numpy as jnp

  from clqa_jax.models.mt5 import MT5
  from clqa_jax.models.unified import UnifiedConfig, UnifiedRetrieverReader

  def init(rng):
    q = jnp.ones((1, 4), jnp.int32)
    if isinstance(config, UnifiedConfig):
      return UnifiedRetrieverReader(config).init({"params": rng}, q,
                                                 jnp.ones((1, 1, 4), jnp.int32), q)
    return MT5(config).init({"params": rng}, q, q)

  return nn.unbox(jax.eval_shape(init, jax.random.PRNGKey(0)))["params"]


def check_params_match(params: Any, expected: Any, where: str) -> None:
  """Raises ExportFormatError unless ``params`` has ``expected``'s tree and leaf shapes."""
  import jax

  from clqa_jax.checkpoints import param_mapping as pm

  got = pm.flatten(jax.tree.map(lambda x: tuple(np.shape(x)), params,
                                is_leaf=lambda x: hasattr(x, "shape")))
  want = pm.flatten(jax.tree.map(lambda x: tuple(x.shape), expected))
  missing, unexpected = sorted(set(want) - set(got)), sorted(set(got) - set(want))
  wrong = [f"{k}: {got[k]} != {want[k]}" for k in sorted(set(got) & set(want))
           if got[k] != want[k]]
  if missing or unexpected or wrong:
    lines = [f"{where}: parameters do not match the model config"]
    if missing:
      lines.append(f"missing ({len(missing)}): {', '.join(missing[:8])}")
    if unexpected:
      lines.append(f"unexpected ({len(unexpected)}): {', '.join(unexpected[:8])}")
    if wrong:
      lines.append(f"wrong shape ({len(wrong)}): {'; '.join(wrong[:8])}")
    raise ExportFormatError("\n".join(lines))


def load_exported(path: str, *, shardings: Any = None, dtype: str | None = None,
                  require_unified: bool = True):
  """Loads an exported checkpoint.

  Args:
    path: the export directory (local or gs://).
    shardings: optional tree of ``jax.sharding.Sharding`` (the params' structure): restore
      straight into those shards (multi-device / multi-host); default: host numpy arrays.
    dtype: cast the parameters to "float32" or "bfloat16" (default: as stored).
    require_unified: refuse a plain mT5 export (``clqa import hf_mt5`` without --unified).

  Returns:
    (UnifiedConfig, or MT5Config without require_unified; params, vocab_path, manifest).

  Raises:
    ExportFormatError: not an export, a newer format version, a file whose sha256 is not the
      manifest's (``verify_files``), or params that do not match the config.
  """
  import jax
  import orbax.checkpoint as ocp

  path = fileio.abspath(path.rstrip("/"))
  manifest = read_manifest(path)
  verify_files(path, manifest)
  config = read_model_config(path, require_unified=require_unified)
  vocab_path = fileio.join(path, VOCAB_FILE)
  if not fileio.exists(vocab_path):
    raise ExportFormatError(f"{vocab_path} is missing (the export is incomplete)")
  params_dir = fileio.join(path, PARAMS_DIR)
  if not fileio.isdir(params_dir):
    raise ExportFormatError(f"{params_dir} is missing (the export is incomplete)")
  expected = abstract_params(config)
  stored = np.dtype(jax.numpy.bfloat16) if manifest["dtype"] == "bfloat16" else np.float32
  checkpointer = ocp.StandardCheckpointer()
  if shardings is None:
    target = jax.tree.map(lambda s: np.empty(s.shape, stored), expected)
  else:
    target = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, stored, sharding=sh),
                          expected, shardings)
  try:
    params = checkpointer.restore(params_dir, target)
  except (ValueError, KeyError) as e:
    raise ExportFormatError(f"{params_dir}: cannot restore the parameters of this model "
                            f"config: {e}") from e
  check_params_match(params, expected, params_dir)
  if dtype is not None:
    if dtype not in PARAM_DTYPES:
      raise ValueError(f"dtype must be one of {PARAM_DTYPES}, got {dtype!r}")
    params = jax.tree.map(lambda x: x.astype(dtype), params)
  return config, params, vocab_path, manifest


def params_sha256(params: Any) -> str:
  """The identity of a parameter tree's content: sha256 over each leaf's path, dtype, shape and
  bytes, in tree order (what an index built with the export is tied to; it survives copies)."""
  import jax  # pylint: disable=g-import-not-at-top

  h = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    array = np.ascontiguousarray(np.asarray(leaf))
    h.update(f"{jax.tree_util.keystr(path)}|{array.dtype.str}|{array.shape}|".encode())
    h.update(array.tobytes())
  return h.hexdigest()


def _sha256(path: str) -> str:
  h = hashlib.sha256()
  with fileio.open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _check_vocab_size(vocab_path: str, config) -> None:
  import sentencepiece as spm

  mt5 = config.mt5 if hasattr(config, "mt5") else config
  with fileio.local_copy(vocab_path) as local:
    pieces = spm.SentencePieceProcessor(model_file=local).get_piece_size()
  if pieces > mt5.vocab_size:
    raise ValueError(f"vocabulary {vocab_path} has {pieces} pieces but the model's vocab_size "
                     f"is {mt5.vocab_size}: wrong --vocab?")


def write_exported(out_dir: str, config, params: Any, vocab_path: str, *,
                   dtype: str = "float32", source: dict[str, Any] | None = None,
                   gin_text: str | None = None, overwrite: bool = False) -> dict[str, Any]:
  """Writes an export directory (local or gs://), published whole or not at all.

  Args:
    out_dir: the directory to create; an existing one is refused unless ``overwrite``.
    config: the UnifiedConfig (or MT5Config, for a plain mT5 import) of ``params``.
    params: the parameter tree; checked against ``config``'s before anything is written.
    vocab_path: the SentencePiece model to ship (at most ``vocab_size`` pieces).
    dtype: "float32" or "bfloat16" on disk.
    source: where the params came from, recorded in the manifest.
    gin_text: the run's operative config, shipped as ``config.gin`` when given.

  Returns:
    The manifest.
  """
  import jax
  import ml_dtypes
  import orbax.checkpoint as ocp

  from clqa_jax.checkpoints.hf_mt5 import config_record

  if dtype not in PARAM_DTYPES:
    raise ValueError(f"dtype must be one of {PARAM_DTYPES}, got {dtype!r}")
  out_dir = fileio.abspath(out_dir.rstrip("/"))
  if fileio.exists(out_dir) and not overwrite:
    raise FileExistsError(f"{out_dir} exists; pass --overwrite to replace it")
  _check_vocab_size(vocab_path, config)
  check_params_match(params, abstract_params(config), "params")
  np_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.float32
  host = jax.tree.map(lambda x: np.asarray(x).astype(np_dtype), params)
  files = {"params": PARAMS_DIR, "model_config": MODEL_CONFIG, "vocab": VOCAB_FILE}
  if gin_text is not None:
    files["gin"] = GIN_FILE
  manifest = {
      "format": FORMAT, "format_version": FORMAT_VERSION, "dtype": dtype,
      "param_count": int(sum(np.size(x) for x in jax.tree.leaves(host))),
      "params_sha256": params_sha256(host),
      "retriever_layer": getattr(config, "resolved_retriever_layer", None),
      "vocab_sha256": _sha256(vocab_path), "vocab_source": fileio.abspath(vocab_path),
      "source": source or {}, "files": files,
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  }
  with fileio.publish_dir(out_dir, overwrite=overwrite, commit_marker=MANIFEST) as tmp:
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(fileio.join(tmp, PARAMS_DIR), host)
    checkpointer.wait_until_finished()
    checkpointer.close()
    fileio.write_json(fileio.join(tmp, MODEL_CONFIG), config_record(config), sort_keys=True)
    fileio.copy(vocab_path, fileio.join(tmp, VOCAB_FILE))
    if gin_text is not None:
      fileio.atomic_write(fileio.join(tmp, GIN_FILE), gin_text)
    # Every listed file but the parameters, hashed as written: what load_exported verifies
    # is what was shipped.
    manifest[CHECKSUMS] = {name: _sha256(fileio.join(tmp, *name.split("/")))
                           for name in files.values() if name != PARAMS_DIR}
    fileio.write_json(fileio.join(tmp, MANIFEST), manifest, sort_keys=True)
  logger.info("exported %s parameters (%s) to %s", f"{manifest['param_count']:,}", dtype,
              out_dir)
  return manifest
