"""The one file-I/O layer: every artifact the project reads or writes goes through here.

Paths are strings (or ``os.PathLike``) naming a local file or a ``gs://bucket/...`` object; both
behave the same (``etils.epath`` underneath). Remote paths use the fsspec backend (``gcsfs``)
rather than TensorFlow's gfile, so reading a file never imports TensorFlow and orbax, which
also speaks epath, shares the same client (and its listing cache). Renames and tree listings
of remote paths call that gcsfs instance directly (``EPATH_USE_TF=true`` before the first
remote access moves the rest to gfile). GCS has no directories: a "directory" exists while an
object's name starts with its prefix (``makedirs`` is a no-op there).
tests/test_fileio_gcs.py runs these functions against a local GCS emulator.

Writers never leave a half-written artifact under its final name (local files are fsynced
before the rename, so a crash cannot leave a renamed but empty file):

    atomic_write(path, text_or_bytes)          # temporary name in the same directory, renamed
    with atomic_open(path, "w") as f: ...      # same, streaming
    with publish_dir(final_dir) as tmp: ...    # build a directory, then move it into place

On GCS a single object is already atomic; a directory has no atomic rename, so
``publish_dir`` moves its files one by one and writes ``commit_marker`` (when given) last:
readers that require the marker never see a partial directory.

Locks are made of ``create_exclusive`` (create-if-absent: ``O_EXCL`` locally,
``ifGenerationMatch=0`` on GCS) and ``read_versioned`` + ``remove_if_version`` (compare-and-delete).

Libraries that only take local filenames (SentencePiece, ScaNN, ``np.load(mmap_mode=...)``)
read remote files through ``local_copy`` and write them through ``staged_local_dir``.
"""
from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
import posixpath
import shutil
import tempfile
import uuid
import weakref
from typing import IO, Any, Iterator, Union

# Before epath chooses a backend for the first remote path: fsspec (gcsfs), not TensorFlow.
os.environ.setdefault("EPATH_USE_TF", "false")

from etils import epath  # pylint: disable=g-import-not-at-top

PathLike = Union[str, os.PathLike]

_REMOTE_SCHEMES = ("gs://",)
_TMP_TAG = ".tmp-"


def as_str(path: PathLike) -> str:
  return os.fspath(path)


def is_remote(path: PathLike) -> bool:
  """Whether ``path`` names an object store (``gs://``) rather than the local disk."""
  return as_str(path).startswith(_REMOTE_SCHEMES)


def as_path(path: PathLike) -> epath.Path:
  return epath.Path(as_str(path))


def join(base: PathLike, *parts: str) -> str:
  """``os.path.join`` that keeps ``gs://`` intact."""
  base = as_str(base)
  if is_remote(base):
    return posixpath.join(base, *parts)
  return os.path.join(base, *parts)


def dirname(path: PathLike) -> str:
  path = as_str(path).rstrip("/") if is_remote(path) else as_str(path)
  return posixpath.dirname(path) if is_remote(path) else os.path.dirname(path)


def basename(path: PathLike) -> str:
  path = as_str(path)
  return posixpath.basename(path.rstrip("/")) if is_remote(path) else os.path.basename(path)


def abspath(path: PathLike) -> str:
  """Absolute local paths; remote paths unchanged."""
  return as_str(path) if is_remote(path) else os.path.abspath(as_str(path))


def relative_to(path: PathLike, directory: PathLike) -> str | None:
  """``path`` relative to ``directory`` (``/``-separated) when it lies strictly inside it, else
  None. What a manifest records for a file of its own directory, so that a copy of the
  directory (``cp -r``, ``gsutil cp -r``) still finds it."""
  path, directory = abspath(path).rstrip("/"), abspath(directory).rstrip("/")
  if is_remote(path) != is_remote(directory):
    return None
  if is_remote(path):
    return path[len(directory) + 1:] if path.startswith(directory + "/") else None
  rel = os.path.relpath(path, directory)
  if rel == os.curdir or rel == os.pardir or rel.startswith(os.pardir + os.sep):
    return None
  return rel.replace(os.sep, "/")


def resolve(directory: PathLike, recorded: str) -> str:
  """A path a manifest in ``directory`` recorded: an absolute or remote one as it is, a
  relative one (``relative_to``'s) below ``directory``."""
  if is_remote(recorded) or os.path.isabs(recorded):
    return recorded
  return join(directory, *recorded.split("/"))


# ---------------------------------------------------------------------------------------------
# Queries


def exists(path: PathLike) -> bool:
  return as_path(path).exists()


def isdir(path: PathLike) -> bool:
  return as_path(path).is_dir()


def isfile(path: PathLike) -> bool:
  p = as_path(path)
  return p.exists() and not p.is_dir()


def listdir(path: PathLike) -> list[str]:
  """The sorted entry names of a directory (raises FileNotFoundError when it is missing)."""
  p = as_path(path)
  if not p.is_dir():
    raise FileNotFoundError(f"{as_str(path)}: no such directory")
  return sorted(child.name for child in p.iterdir())


def glob(pattern: PathLike) -> list[str]:
  """Sorted paths matching a shell pattern (``*``, ``?``, ``[...]``) in its last components."""
  pattern = as_str(pattern)
  if is_remote(pattern):
    head, tail = _split_pattern(pattern)
    return sorted(as_str(p) for p in epath.Path(head).glob(tail)) if exists(head) else []
  import glob as glob_lib  # pylint: disable=g-import-not-at-top

  return sorted(glob_lib.glob(pattern))


def _split_pattern(pattern: str) -> tuple[str, str]:
  parts = pattern.split("/")
  for i, part in enumerate(parts):
    if any(c in part for c in "*?["):
      return "/".join(parts[:i]), "/".join(parts[i:])
  return posixpath.dirname(pattern), posixpath.basename(pattern)


def size(path: PathLike) -> int:
  """The size of a file in bytes."""
  if is_remote(path):
    return int(as_path(path).stat().length)
  return os.path.getsize(as_str(path))


def walk_files(root: PathLike) -> list[str]:
  """Every file below ``root``, as paths relative to it (``/``-separated), sorted."""
  root = as_str(root)
  if is_remote(root):
    fs = _remote_fs(root)
    prefix = fs._strip_protocol(root).rstrip("/") + "/"  # pylint: disable=protected-access
    # Object names below the prefix, without the "directory" placeholders some writers add.
    return sorted(key[len(prefix):] for key in fs.find(root)
                  if key.startswith(prefix) and not key.endswith("/"))
  out = []
  for dirpath, _, files in os.walk(root):
    rel = os.path.relpath(dirpath, root)
    for name in files:
      out.append(name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}")
  return sorted(out)


def _remote_fs(path: PathLike):
  """The fsspec file system (gcsfs) that epath uses for ``path``: the same instance, so one
  listing cache sees every write made through this module or orbax."""
  from etils.epath import backend  # pylint: disable=g-import-not-at-top

  return backend.fsspec_backend.fs(as_str(path))


# ---------------------------------------------------------------------------------------------
# Reading


def open(path: PathLike, mode: str = "r", encoding: str | None = "utf-8") -> IO[Any]:  # pylint: disable=redefined-builtin
  """Opens a local or remote file; text modes decode as ``encoding`` (UTF-8 by default).

  Use ``atomic_open`` to write an artifact: a plain ``open(path, "w")`` exposes partial files.
  """
  if "b" in mode or not is_remote(path):
    if is_remote(path):
      return as_path(path).open(mode)
    return builtins.open(as_str(path), mode, encoding=None if "b" in mode else encoding)
  return as_path(path).open(mode, encoding=encoding)


def read_text(path: PathLike, encoding: str = "utf-8") -> str:
  with open(path, "r", encoding=encoding) as f:
    return f.read()


def read_bytes(path: PathLike) -> bytes:
  with open(path, "rb") as f:
    return f.read()


def read_json(path: PathLike) -> Any:
  """Parses a JSON file; a malformed one raises ``json.JSONDecodeError`` (with line/column)."""
  return json.loads(read_text(path))


# ---------------------------------------------------------------------------------------------
# Writing


def makedirs(path: PathLike) -> None:
  """Creates a directory and its parents (a no-op on GCS, which has no directories)."""
  if not is_remote(path):
    os.makedirs(as_str(path), exist_ok=True)


def _tmp_name(path: str) -> str:
  return join(dirname(path), f".{basename(path)}{_TMP_TAG}{uuid.uuid4().hex[:12]}")


def is_tmp_name(name: str) -> bool:
  """Whether an entry name is one of this module's temporary names (to skip in listings)."""
  return name.startswith(".") and _TMP_TAG in name


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "w", encoding: str | None = "utf-8",
                *, overwrite: bool = True) -> Iterator[IO[Any]]:
  """Writes ``path`` under a temporary name and renames it into place when the block succeeds.

  On failure the temporary file is removed and ``path`` keeps its old content (if any). With
  ``overwrite=False`` an existing ``path`` raises ``FileExistsError`` before anything is written.
  """
  if mode not in ("w", "wb"):
    raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', got {mode!r}")
  path = as_str(path)
  if not overwrite and exists(path):
    raise FileExistsError(f"{path} already exists (refusing to overwrite it)")
  parent = dirname(path)
  if parent:
    makedirs(parent)
  tmp = _tmp_name(path)
  try:
    with open(tmp, mode, encoding=None if "b" in mode else encoding) as f:
      yield f
      if not is_remote(tmp):  # on disk before the rename: a file that exists is whole
        f.flush()
        os.fsync(f.fileno())
    replace(tmp, path)
  except BaseException:
    remove(tmp, missing_ok=True)
    raise


def atomic_write(path: PathLike, data: str | bytes, *, overwrite: bool = True) -> None:
  """Writes a whole file atomically (text is UTF-8)."""
  with atomic_open(path, "wb" if isinstance(data, bytes) else "w", overwrite=overwrite) as f:
    f.write(data)


def write_json(path: PathLike, obj: Any, *, indent: int | None = 2, overwrite: bool = True,
               sort_keys: bool = False) -> None:
  """Writes ``obj`` as JSON (UTF-8, non-ASCII kept, trailing newline) atomically."""
  text = json.dumps(obj, indent=indent, ensure_ascii=False, sort_keys=sort_keys)
  atomic_write(path, text + "\n", overwrite=overwrite)


def replace(src: PathLike, dst: PathLike) -> None:
  """Renames a file over ``dst`` (replacing it)."""
  if is_remote(src) and is_remote(dst):
    # A server-side copy, then the delete: GCS's rename for any bucket (gcsfs's mv tries the
    # newer moveTo call first, with retries where it is not served). epath's replace would
    # also require dst's "folder" to exist, false on GCS for a prefix that holds no object yet.
    fs = _remote_fs(src)
    fs.copy(as_str(src), as_str(dst))
    fs.rm_file(as_str(src))
  elif is_remote(src) or is_remote(dst):
    copy(src, dst)
    remove(src)
  else:
    os.replace(as_str(src), as_str(dst))


def remove(path: PathLike, missing_ok: bool = False) -> None:
  try:
    as_path(path).unlink()
  except FileNotFoundError:
    if not missing_ok:
      raise


# ---------------------------------------------------------------------------------------------
# Create-if-absent and compare-and-delete: what locks are made of


def create_exclusive(path: PathLike, data: bytes) -> None:
  """Creates ``path`` holding ``data`` only if nothing exists there, else ``FileExistsError``.

  Atomic against every other writer: locally ``O_CREAT|O_EXCL`` (the content is fsynced; a
  reader can see the file empty for an instant), on GCS an upload with ``ifGenerationMatch=0``
  that the server refuses (412) when the object exists. A retried GCS request can report
  ``FileExistsError`` for the object this call created: compare the content to tell.
  """
  path = as_str(path)
  if is_remote(path):
    _remote_fs(path).pipe_file(path, data, mode="create")
    return
  parent = dirname(path)
  if parent:
    makedirs(parent)
  fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
  except BaseException:
    os.remove(path)
    raise


def _local_version(st: os.stat_result, content: bytes) -> str:
  # The inode alone is not enough: a file system reuses a deleted file's inode number.
  return f"{st.st_dev}:{st.st_ino}:{hashlib.sha256(content).hexdigest()}"


def read_versioned(path: PathLike) -> tuple[bytes, str]:
  """A file's content and a token naming this version of it, for ``remove_if_version``
  (``FileNotFoundError`` when it is missing). On GCS the token is the object's generation,
  read with the content in one request."""
  path = as_str(path)
  if is_remote(path):
    fs = _remote_fs(path)
    bucket, key, _ = fs.split_path(path)
    # GCS sends the generation of what it served with every download (tensorstore's
    # conditional writes, under orbax, rely on the same header).
    headers, content = fs.call("GET", "b/{}/o/{}", bucket, key, alt="media")
    return content, str(headers["x-goog-generation"])
  with builtins.open(path, "rb") as f:
    content = f.read()
    return content, _local_version(os.fstat(f.fileno()), content)


def remove_if_version(path: PathLike, version: str) -> bool:
  """Removes ``path`` only if it still is the version ``read_versioned`` returned; whether it
  removed it. Atomic against other calls of this function and ``create_exclusive``: on GCS a
  delete with ``ifGenerationMatch``, locally under an exclusive ``flock`` of the file."""
  path = as_str(path)
  if is_remote(path):
    fs = _remote_fs(path)
    bucket, key, _ = fs.split_path(path)
    try:
      fs.call("DELETE", "b/{}/o/{}", bucket, key, ifGenerationMatch=version)
    except (FileExistsError, FileNotFoundError):  # 412: another generation; 404: gone
      return False
    finally:
      fs.invalidate_cache(path)
    return True
  import fcntl  # pylint: disable=g-import-not-at-top

  try:
    f = builtins.open(path, "rb")
  except FileNotFoundError:
    return False
  with f:
    # Concurrent removers queue here; the open file keeps its inode number from being reused.
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    opened = os.fstat(f.fileno())
    if _local_version(opened, f.read()) != version:
      return False
    try:
      now = os.stat(path)
    except FileNotFoundError:
      return False
    if (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino):
      return False  # removed by an earlier remover, and maybe created again
    os.remove(path)
    return True


def rmtree(path: PathLike, missing_ok: bool = True) -> None:
  if not exists(path):
    if missing_ok:
      return
    raise FileNotFoundError(f"{as_str(path)}: no such directory")
  if is_remote(path):
    as_path(path).rmtree()
  else:
    shutil.rmtree(as_str(path))


def copy(src: PathLike, dst: PathLike, *, overwrite: bool = True) -> None:
  """Copies one file (any mix of local and remote), atomically at ``dst``."""
  if not overwrite and exists(dst):
    raise FileExistsError(f"{as_str(dst)} already exists (refusing to overwrite it)")
  with open(src, "rb") as fin, atomic_open(dst, "wb") as fout:
    shutil.copyfileobj(fin, fout, length=8 << 20)


def copytree(src: PathLike, dst: PathLike) -> None:
  """Copies every file below ``src`` to the same relative path below ``dst``."""
  for rel in walk_files(src):
    copy(join(src, *rel.split("/")), join(dst, *rel.split("/")))


@contextlib.contextmanager
def publish_dir(final: PathLike, *, overwrite: bool = False,
                commit_marker: str | None = None) -> Iterator[str]:
  """Builds a directory under a temporary sibling name and moves it to ``final`` on success.

  Yields the temporary directory's path. Locally the move is one rename (an existing ``final``
  is replaced only with ``overwrite=True``, and only after the new one is complete). On GCS the
  files are moved one by one and ``commit_marker`` (a file name inside the directory), when
  given, moves last. On failure the temporary directory is deleted and ``final`` is untouched.
  """
  final = as_str(final).rstrip("/") if is_remote(final) else as_str(final)
  if exists(final) and not overwrite:
    raise FileExistsError(f"{final} already exists (pass overwrite to replace it)")
  tmp = _tmp_name(final)
  makedirs(tmp)
  try:
    yield tmp
    _move_dir_into_place(tmp, final, commit_marker)
  except BaseException:
    rmtree(tmp)
    raise


def _move_dir_into_place(tmp: str, final: str, commit_marker: str | None) -> None:
  if not is_remote(final):
    if os.path.exists(final):
      old = _tmp_name(final)
      os.replace(final, old)
      os.replace(tmp, final)
      shutil.rmtree(old, ignore_errors=True)
    else:
      os.replace(tmp, final)
    return
  rmtree(final)
  files = walk_files(tmp)
  ordered = [f for f in files if f != commit_marker] + [f for f in files if f == commit_marker]
  for rel in ordered:
    replace(join(tmp, rel), join(final, rel))
  rmtree(tmp)


# ---------------------------------------------------------------------------------------------
# Local staging for libraries that only take local filenames


@contextlib.contextmanager
def local_copy(path: PathLike) -> Iterator[str]:
  """A local filename with ``path``'s content: ``path`` itself when local, else a temporary
  download (a file or a whole directory) removed when the block ends."""
  path = as_str(path)
  if not is_remote(path):
    yield path
    return
  with tempfile.TemporaryDirectory(prefix="clqa-") as tmp:
    local = os.path.join(tmp, basename(path))
    if isdir(path):
      copytree(path, local)
    else:
      copy(path, local)
    yield local


@contextlib.contextmanager
def staged_local_dir(final: PathLike, *, overwrite: bool = False,
                     commit_marker: str | None = None) -> Iterator[str]:
  """Like ``publish_dir``, for writers that need a local directory: a remote ``final`` is
  staged in a local temporary directory and uploaded on success."""
  final = as_str(final)
  if not is_remote(final):
    with publish_dir(final, overwrite=overwrite, commit_marker=commit_marker) as tmp:
      yield tmp
    return
  if exists(final) and not overwrite:
    raise FileExistsError(f"{final} already exists (pass overwrite to replace it)")
  with tempfile.TemporaryDirectory(prefix="clqa-") as local:
    yield local
    with publish_dir(final, overwrite=True, commit_marker=commit_marker) as tmp:
      copytree(local, tmp)


def pinned_local_copy(path: PathLike, owner: object) -> str:
  """``local_copy`` for readers that keep files open past one block (memory maps): a local
  filename with ``path``'s content, valid while ``owner`` lives.

  A local ``path`` comes back unchanged (no copy). A remote file or directory is downloaded
  once to a temporary directory that is deleted when ``owner`` is garbage-collected or the
  interpreter exits.
  """
  path = as_str(path)
  if not is_remote(path):
    return path
  stack = contextlib.ExitStack()
  local = stack.enter_context(local_copy(path))
  weakref.finalize(owner, stack.close)
  return local


def mtime_ns(path: PathLike) -> int:
  """A file's modification time in nanoseconds (object stores keep whole seconds)."""
  if is_remote(path):
    return int(as_path(path).stat().mtime) * 10**9
  return os.stat(as_str(path)).st_mtime_ns


def publish_built_dir(built: PathLike, final: PathLike, *, overwrite: bool = False,
                      commit_marker: str | None = None) -> None:
  """Moves a finished local directory ``built`` to ``final``, as ``publish_dir`` does on
  success: one rename when ``final`` is local, an upload (``commit_marker`` last) and the
  deletion of ``built`` when it is remote. For builders that must keep their own (e.g.
  resumable) build directory rather than ``publish_dir``'s temporary one.
  """
  built = as_str(built)
  final = as_str(final).rstrip("/") if is_remote(final) else as_str(final)
  if is_remote(built):
    raise ValueError(f"publish_built_dir moves a local directory, got {built}")
  if exists(final) and not overwrite:
    raise FileExistsError(f"{final} already exists (pass overwrite to replace it)")
  _move_dir_into_place(built, final, commit_marker)
