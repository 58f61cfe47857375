"""One writer per run directory: ``MODEL_DIR/run.lock`` names the process that trains there.

``train`` takes the lock before it touches the run directory and removes it when it returns,
raises, or is stopped by SIGTERM. A second run on the same directory stops at once with
``RunDirectoryLockedError`` naming the holder (host, pid, start time, command). The lock is a
create-if-absent write (``fileio.create_exclusive``: ``O_EXCL`` locally, ``ifGenerationMatch=0``
on GCS), so two runs starting together cannot both win.

A lock outlives a run killed without warning (SIGKILL, a lost machine). A holder that ran on
this machine and no longer runs (its pid is gone, now names a process started after the lock
was taken, or the machine rebooted since) is taken over automatically, with a warning. A
holder on another host, or in another container of this host name, cannot be checked from
here: ``clqa train --break_lock`` removes its lock (never one whose holder is seen running).
There is no heartbeat: a lock's age says nothing about whether its holder still runs.

In a multi-process job only process 0 takes the lock; every process fails when it cannot.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import os
import shlex
import signal
import socket
import sys
import threading
import time
import uuid
from typing import Iterator

from clqa_jax import fileio

logger = logging.getLogger(__name__)

LOCK_FILE = "run.lock"
BREAK_FLAG = "--break_lock"
_ATTEMPTS = 5           # each failed attempt saw the lock change hands
_UNREADABLE_WAIT_S = 2.0  # a local lock file is empty for an instant after its creation


class RunDirectoryLockedError(RuntimeError):
  """Another live process holds the run directory's lock."""


def lock_path(model_dir: str) -> str:
  return fileio.join(model_dir, LOCK_FILE)


def _read_first(path: str) -> str:
  """A small /proc file's content, "" where there is none (not Linux)."""
  try:
    return fileio.read_text(path, encoding="ascii").strip()
  except OSError:
    return ""


def _boot_id() -> str:
  return _read_first("/proc/sys/kernel/random/boot_id")


def _pid_namespace() -> str:
  try:
    return os.readlink("/proc/self/ns/pid")
  except OSError:
    return ""


def _process_start_time(pid: int) -> float | None:
  """When process ``pid`` started (seconds since the epoch; Linux), None if unknown."""
  stat = _read_first(f"/proc/{pid}/stat")
  btime = [line.split()[1] for line in _read_first("/proc/stat").splitlines()
           if line.startswith("btime ")]
  try:
    ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: start time after boot, in ticks
    return float(btime[0]) + ticks / os.sysconf("SC_CLK_TCK")
  except (IndexError, ValueError, OSError):
    return None


# Seconds between a process's start and its taking the lock can't be negative; allow for the
# whole-second lock time and clock steps.
_CLOCK_SLACK_S = 2.0

ALIVE, DEAD, UNKNOWN = "alive", "dead", "unknown"


@dataclasses.dataclass(frozen=True)
class Holder:
  """Who holds a lock; ``token`` tells this lock from every other. ``boot_id`` and
  ``pid_namespace`` tell a rebooted machine or another container of the same host name."""
  host: str
  pid: int
  started: str   # UTC, ISO 8601
  command: str
  token: str
  boot_id: str = ""
  pid_namespace: str = ""

  @classmethod
  def this_process(cls) -> "Holder":
    return cls(host=socket.gethostname(), pid=os.getpid(),
               started=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               command=shlex.join(sys.argv), token=uuid.uuid4().hex, boot_id=_boot_id(),
               pid_namespace=_pid_namespace())

  def to_bytes(self) -> bytes:
    return (json.dumps(dataclasses.asdict(self), indent=2) + "\n").encode()

  @classmethod
  def from_bytes(cls, data: bytes) -> "Holder | None":
    """The holder a lock file names, or None for an empty or partly written one."""
    try:
      fields = json.loads(data.decode())
      return cls(host=str(fields["host"]), pid=int(fields["pid"]), started=str(fields["started"]),
                 command=str(fields["command"]), token=str(fields["token"]),
                 boot_id=str(fields.get("boot_id", "")),
                 pid_namespace=str(fields.get("pid_namespace", "")))
    except (ValueError, KeyError, TypeError, AttributeError):
      return None

  def describe(self) -> str:
    command = self.command if len(self.command) <= 160 else self.command[:157] + "..."
    return f"host {self.host}, pid {self.pid}, started {self.started}, command: {command}"

  def state_seen_from_here(self) -> str:
    """ALIVE or DEAD when this process can tell (the holder ran on this machine, in this pid
    namespace), else UNKNOWN (another machine or container)."""
    if self.host != socket.gethostname():
      return UNKNOWN
    if self.boot_id and _boot_id() and self.boot_id != _boot_id():
      return DEAD  # the machine rebooted since
    if self.pid_namespace and _pid_namespace() and self.pid_namespace != _pid_namespace():
      return UNKNOWN
    try:
      os.kill(self.pid, 0)
    except ProcessLookupError:
      return DEAD
    except PermissionError:
      pass  # a live process of another user
    # A live pid may be another process that got the number since (a restarted container's
    # pid 1): the holder started before it took the lock.
    process_start = _process_start_time(self.pid)
    try:
      lock_time = datetime.datetime.fromisoformat(self.started).timestamp()
    except ValueError:
      return ALIVE
    if process_start is not None and process_start > lock_time + _CLOCK_SLACK_S:
      return DEAD
    return ALIVE


class RunLock:
  """A held run lock; ``release`` removes it unless someone broke it meanwhile."""

  def __init__(self, path: str, holder: Holder):
    self.path = path
    self.holder = holder
    self._held = True

  def release(self) -> None:
    if not self._held:
      return
    self._held = False
    try:
      content, version = fileio.read_versioned(self.path)
    except FileNotFoundError:
      logger.warning("run lock %s was already removed (broken with %s?)", self.path, BREAK_FLAG)
      return
    current = Holder.from_bytes(content)
    if current is None or current.token != self.holder.token:
      logger.warning("run lock %s now names %s, not this run: left in place", self.path,
                     current.describe() if current else "no readable holder")
      return
    fileio.remove_if_version(self.path, version)


def _read_holder(path: str) -> tuple[Holder | None, str] | None:
  """(holder, version) of the lock file, None when there is none; waits out a file that is
  still being written, then returns (None, version) for one that names no holder."""
  deadline = time.monotonic() + _UNREADABLE_WAIT_S
  while True:
    try:
      content, version = fileio.read_versioned(path)
    except FileNotFoundError:
      return None
    holder = Holder.from_bytes(content)
    if holder is not None or time.monotonic() >= deadline:
      return holder, version
    time.sleep(0.1)


def _refusal(model_dir: str, path: str, holder: Holder | None) -> RunDirectoryLockedError:
  if holder is None:
    return RunDirectoryLockedError(
        f"run directory {model_dir} is locked: {path} names no holder (a run that died while "
        f"taking it?); if no training process uses this directory, pass {BREAK_FLAG}")
  if holder.state_seen_from_here() == ALIVE:
    how = (f"that process is still running on this host: wait for it or stop it (if pid "
           f"{holder.pid} is now another program, delete {path} by hand)")
  else:
    how = (f"wait for that run to end, or, if it is no longer running (a lost machine), pass "
           f"{BREAK_FLAG}")
  return RunDirectoryLockedError(
      f"run directory {model_dir} is in use by another training run (lock {path}: "
      f"{holder.describe()}); {how}")


def _break(model_dir: str, path: str) -> None:
  """Removes the lock a run that no longer runs left behind (``--break_lock``)."""
  found = _read_holder(path)
  if found is None:
    logger.info("%s: no run lock to break in %s", BREAK_FLAG, model_dir)
    return
  holder, version = found
  if holder is not None and holder.state_seen_from_here() == ALIVE:
    raise _refusal(model_dir, path, holder)
  fileio.remove_if_version(path, version)
  logger.warning("broke the run lock %s of %s", path,
                 holder.describe() if holder else "no readable holder")


def acquire(model_dir: str, *, break_lock: bool = False) -> RunLock:
  """Takes the run directory's lock for this process, or raises ``RunDirectoryLockedError``.

  ``break_lock`` first removes a lock left by a run that no longer runs (see the module doc).
  """
  path = lock_path(model_dir)
  if break_lock:
    _break(model_dir, path)
  me = Holder.this_process()
  for _ in range(_ATTEMPTS):
    try:
      fileio.create_exclusive(path, me.to_bytes())
      return RunLock(path, me)
    except FileExistsError:
      pass
    found = _read_holder(path)
    if found is None:
      continue  # released since: try again
    holder, version = found
    if holder is not None and holder.token == me.token:
      return RunLock(path, me)  # our create, reported as a conflict by a retried request
    if holder is None or holder.state_seen_from_here() != DEAD:
      raise _refusal(model_dir, path, holder)
    logger.warning("taking over the run lock %s: its holder (%s) is no longer running on this "
                   "host", path, holder.describe())
    fileio.remove_if_version(path, version)
  raise RunDirectoryLockedError(
      f"run directory {model_dir}: its lock {path} changed hands {_ATTEMPTS} times while this "
      "run tried to take it; is another run starting there?")


@contextlib.contextmanager
def _sigterm_raises_system_exit() -> Iterator[None]:
  """SIGTERM exits through ``finally`` blocks (so the lock is removed) instead of killing the
  process outright. The training loop's ``PreemptionWatcher`` overrides this while it runs
  (save at the step boundary, then return) and puts it back after."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return

  def handler(signum, frame):
    del frame
    logger.warning("received signal %d: removing the run lock and exiting", signum)
    raise SystemExit(128 + signum)

  previous = signal.signal(signal.SIGTERM, handler)
  try:
    yield
  finally:
    signal.signal(signal.SIGTERM, previous)


def _acquire_on_process_zero(model_dir: str, break_lock: bool) -> RunLock | None:
  import jax  # pylint: disable=g-import-not-at-top

  lock, error = None, None
  if jax.process_index() == 0:
    try:
      lock = acquire(model_dir, break_lock=break_lock)
    except Exception as e:  # pylint: disable=broad-except
      error = e  # raised below, once every process knows
  if jax.process_count() > 1:
    import numpy as np  # pylint: disable=g-import-not-at-top
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

    taken = bool(multihost_utils.broadcast_one_to_all(np.int32(error is None)))
    if not taken and error is None:
      raise RunDirectoryLockedError(
          f"run directory {model_dir}: process 0 of this job could not take the run lock "
          f"{lock_path(model_dir)} (its log says why)")
  if error is not None:
    raise error
  return lock


@contextlib.contextmanager
def held_by_this_job(model_dir: str, *, break_lock: bool = False) -> Iterator[RunLock | None]:
  """The run lock for the block: process 0 of the job takes it (the others get None) and
  removes it when the block ends, raises or SIGTERM stops it."""
  lock = _acquire_on_process_zero(model_dir, break_lock)
  if lock is None:
    yield None
    return
  try:
    with _sigterm_raises_system_exit():
      yield lock
  finally:
    try:
      lock.release()
    except Exception as e:  # pylint: disable=broad-except
      # Keeps the block's own error, if any; the next run reports the lock.
      logger.error("could not remove the run lock %s (%s); the next run on this directory "
                   "may need %s", lock.path, e, BREAK_FLAG)
