"""How every ``clqa`` command reports an input, usage or environment error: one line, exit 2.

``cli.main`` runs each command under ``run_reporting_errors``. An exception that describes
something the user can fix (a malformed file, a missing or unwritable path, a full disk, a bad
gin file or binding, a bad configuration value our code rejected, a checkpoint of another shape,
a failed HTTP request) is printed as ``clqa <command>: error: <what>[; <what to do>]`` and the
command exits 2. Beam and TensorFlow re-raise worker exceptions wrapped: the exception chain
(``__cause__`` / ``__context__``) is walked to the original. Anything else is a bug and keeps
its traceback. ``--debug`` (or ``CLQA_DEBUG=1``) shows the traceback of every error.
"""
from __future__ import annotations

import errno
import linecache
import os
import re
import sys
import traceback

from clqa_jax.data.errors import DataFormatError

INPUT_ERROR_EXIT = 2
DEBUG_ENV = "CLQA_DEBUG"

# Beam's annotation of a re-raised worker exception, and the "module.Type: message" form its
# RuntimeError fallback gives an exception it cannot rebuild.
_BEAM_STEP = re.compile(r"\s*\[while running '[^']*'\]")
# gin's note on an exception raised inside a configurable (the message already says what).
_GIN_CALL_NOTE = re.compile(r"\s*In call to configurable '[^']*' \(<[^>]*>\)")
_WRAPPED_USER_ERROR = re.compile(
    r"(?:^|[\s.])(DataFormatError|RewriteHTTPError|LineFormatError|FileNotFoundError|"
    r"PermissionError): (.+)$")

_OS_HINTS = {
    errno.ENOSPC: "free some space or write elsewhere",
    errno.EACCES: "check the permissions or choose another path",
    errno.EPERM: "check the permissions or choose another path",
    errno.EROFS: "the file system is read-only: choose another path",
    errno.EISDIR: "give a file, not a directory",
    errno.ENOTDIR: "a parent of the path is a file, not a directory",
}


class UsageError(ValueError):
  """A bad command-line value or combination, found by a command before any work."""


def debug_requested() -> bool:
  return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _chain(error: BaseException) -> list[BaseException]:
  """``error`` and every exception it was raised from or during, outermost first."""
  seen, out = set(), []
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    out.append(error)
    error = error.__cause__ or error.__context__
  return out


def _raised_deliberately_by_clqa(error: BaseException) -> bool:
  """True when the innermost frame is a ``raise`` statement in clqa_jax (a value our code
  rejected), not a failure inside a library or a bug such as a wrong call."""
  tb = error.__traceback__
  if tb is None:
    return False
  while tb.tb_next is not None:
    tb = tb.tb_next
  filename = tb.tb_frame.f_code.co_filename
  package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  if not os.path.abspath(filename).startswith(package_dir + os.sep):
    return False
  return linecache.getline(filename, tb.tb_lineno).strip().startswith("raise")


def _is_gin_error(error: BaseException) -> bool:
  if isinstance(error, SyntaxError) and (error.filename or "").endswith(".gin"):
    return True
  if not isinstance(error, (ValueError, TypeError, SyntaxError)):
    return False
  tb = error.__traceback__
  frames = traceback.extract_tb(tb) if tb is not None else []
  return bool(frames) and "/gin/" in frames[-1].filename.replace(os.sep, "/")


def _describe_os_error(error: OSError) -> str:
  what = error.strerror or str(error)
  path = error.filename
  if path is None:
    text = str(error)
  elif error.filename2 is not None:
    text = f"{path} -> {error.filename2}: {what}"
  else:
    text = f"{path}: {what}"
  if not error.strerror:
    text = str(error)  # our own FileNotFoundError("<path> ...") messages
  hint = _OS_HINTS.get(error.errno)
  return f"{text}; {hint}" if hint else text


def _describe_gin_error(error: BaseException) -> str:
  if isinstance(error, SyntaxError):
    if error.filename:
      where = f"{error.filename}:{error.lineno}" if error.lineno else error.filename
    else:  # a --gin.NAME=VALUE binding
      where = f"binding {(error.text or '').strip()!r}"
    return f"gin: {where}: {error.msg}; fix the gin file or binding"
  text = str(error).strip()
  first = text.splitlines()[0] if text else type(error).__name__
  hint = "check the spelling against the gin files (gin/) or `--gin_file`"
  if "%gin.REQUIRED" in text or "REQUIRED" in first:
    hint = "bind it on the command line, e.g. --gin.NAME=VALUE"
  where = re.search(r"In file \"([^\"]+)\", line (\d+)", text)
  location = f" ({where.group(1)}:{where.group(2)})" if where else ""
  return f"gin: {first}{location}; {hint}"


def _describe_restore_error(error: BaseException) -> str | None:
  """Orbax / tensorstore: restoring a checkpoint into arrays of other shapes."""
  text = str(error)
  if "stored shape" not in text and "shape mismatch" not in text.lower():
    return None
  module = (type(error).__module__ or "").split(".")[0]
  frames = traceback.extract_tb(error.__traceback__) if error.__traceback__ else []
  if module not in ("orbax", "tensorstore") and not any(
      "/orbax/" in f.filename or "/tensorstore/" in f.filename for f in frames):
    return None
  first = " ".join(text.split())[:400]
  return (f"checkpoint restore: {first}; the model dimensions differ from the checkpoint's: "
          "resume with the run's original model config, or use a new MODEL_DIR")


def _describe_wrapped(error: BaseException) -> str | None:
  """A user error that reached us only as text: Beam re-raises an exception it cannot rebuild
  as RuntimeError('module.Type: message [while running ...]'), TensorFlow reports an error of a
  py_function as an OpError whose message holds the original's traceback text."""
  found = None
  for line in _BEAM_STEP.sub("", str(error)).splitlines():
    match = _WRAPPED_USER_ERROR.search(line.strip())
    if match:
      found = match.group(2).strip()  # the last one: the innermost
  return found


# Our typed error classes a user can fix (module, class name), matched by name so that this
# module imports none of them (``clqa --help`` stays instant).
_USER_ERROR_CLASSES = frozenset({
    "UsageError", "DataFormatError", "StoreMismatchError", "ExportFormatError",
    "CheckpointNotFoundError", "CheckpointShapeError", "CheckpointKindError", "CheckpointMappingError",
    "CheckpointFormatError", "IndexMismatchError", "IndexInputError", "EncodingError",
    "ShardError", "RewriteHTTPError", "LineFormatError", "StageConflictError", "EmptyStageError",
    "MeshShapeError",
    "UnknownRuleSetError", "RunDirectoryLockedError",
})


def describe_user_error(error: BaseException) -> str | None:
  """The one-line message for an error the user can fix, else None (a bug: keep the traceback).

  The innermost user error of the chain wins: it is the original, before any wrapping;
  unless an outer one quotes it and adds context (``raise X(f"...; pass --vocab ({e})") from
  e``): that one says more.
  """
  chosen, inner = None, None
  for e in reversed(_chain(error)):
    described = _describe_one(e)
    if described is None:
      continue
    if chosen is None or (inner is not None and str(inner) and str(inner) in described):
      chosen, inner = described, e
  return None if chosen is None else _GIN_CALL_NOTE.sub("", _BEAM_STEP.sub("", chosen))


def _describe_one(e: BaseException) -> str | None:
  if isinstance(e, DataFormatError):
    return str(e)
  name = type(e).__name__
  if name in _USER_ERROR_CLASSES and type(e).__module__.startswith("clqa_jax"):
    return str(e)
  if isinstance(e, FileExistsError):
    return str(e) if not e.strerror else f"{e.filename}: {e.strerror}; remove it or choose another path"
  if isinstance(e, OSError) and (
      isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError))
      or e.errno in _OS_HINTS):
    return _describe_os_error(e)
  if _is_gin_error(e):
    return _describe_gin_error(e)
  restore = _describe_restore_error(e)
  if restore is not None:
    return restore
  if isinstance(e, (ValueError, TypeError)) and _raised_deliberately_by_clqa(e):
    return str(e)
  if isinstance(e, RuntimeError) or type(e).__module__.startswith("tensorflow"):
    return _describe_wrapped(e)
  return None


def report(command: str, message: str) -> int:
  """Prints ``clqa <command>: error: <message>`` (one line); returns exit 2."""
  one_line = " ".join(str(message).split())
  print(f"clqa {command}: error: {one_line}", file=sys.stderr)
  return INPUT_ERROR_EXIT


def run_reporting_errors(command: str, run, args, debug: bool = False) -> int:
  """``run(args)``; a user error is one line on stderr and exit 2 (a traceback with --debug)."""
  try:
    return int(run(args) or 0)
  except Exception as e:  # pylint: disable=broad-except
    message = describe_user_error(e)
    if message is None:
      raise
    if debug:
      traceback.print_exc()
    return report(command, message)

