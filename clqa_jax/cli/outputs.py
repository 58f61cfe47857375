"""Output locations are checked before a command starts work: an unwritable or uncreatable
local path is a one-line usage error, not a traceback after an hour of compute.

Remote paths (gs://, any ``scheme://``) are not checked here: that would need network calls,
and the write itself reports a missing bucket or permission.
"""
from __future__ import annotations

import os

from clqa_jax.cli.errors import UsageError


def _is_remote(path: str) -> bool:
  return "://" in path


def check_writable(flag: str, path: str, *, is_file: bool = False) -> None:
  """Raises UsageError unless ``path`` (a directory, or a file with ``is_file``) can be
  written or created by this process. Creates nothing."""
  if not path or _is_remote(path):
    return
  target = os.path.abspath(os.path.expanduser(path))
  if os.path.exists(target):
    if is_file:
      if os.path.isdir(target):
        raise UsageError(f"{flag} {path}: is a directory; give a file path")
      if not os.access(target, os.W_OK):
        raise UsageError(f"{flag} {path}: not writable; check its permissions or choose "
                         "another path")
      return
    if not os.path.isdir(target):
      raise UsageError(f"{flag} {path}: exists and is not a directory")
    if not os.access(target, os.W_OK | os.X_OK):
      raise UsageError(f"{flag} {path}: directory is not writable; check its permissions or "
                       "choose another path")
    return
  parent = os.path.dirname(target)
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise UsageError(f"{flag} {path}: cannot be created: {parent} is a file, not a directory")
  if not os.access(parent, os.W_OK | os.X_OK):
    raise UsageError(f"{flag} {path}: cannot be created: {parent} is not writable; check its "
                     "permissions or choose another path")
