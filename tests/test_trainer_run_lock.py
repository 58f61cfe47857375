"""One writer per run directory: a second run on a directory another live process trains in
stops at once (API and `clqa train`, exit 2), on local disks and on gs:// (emulator); the lock
is released on return, on exceptions and on SIGTERM; a dead holder on this host is taken over;
``--break_lock`` removes a lock of another host; only process 0 of a job takes it."""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys

import pytest

from clqa_jax import fileio
from clqa_jax import gin_utils
from clqa_jax.cli import main as cli_main
from clqa_jax.trainer import run_lock

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOLDER = os.path.join(REPO, "tests", "fixtures", "trainer", "hold_run_lock.py")
TIMEOUT_S = 60


@pytest.fixture(params=["local", "gcs"])
def root(request, tmp_path):
  """A directory to put run directories in: on the local disk, or a bucket on the emulator."""
  if request.param == "local":
    return str(tmp_path)
  return request.getfixturevalue("gcs_bucket")


@contextlib.contextmanager
def holder_process(model_dir: str, mode: str):
  """A second Python process holding ``model_dir``'s lock (tests/fixtures/trainer/
  hold_run_lock.py); yields (process, its pid) once it holds it."""
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
  proc = subprocess.Popen([sys.executable, HOLDER, model_dir, mode], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
  try:
    line = proc.stdout.readline()
    assert line.strip().isdigit(), f"holder did not take the lock: {line!r} {proc.stderr.read()}"
    yield proc, int(line)
  finally:
    if proc.poll() is None:
      proc.kill()
    proc.wait(TIMEOUT_S)
    proc.stdout.close()
    proc.stderr.close()


def _finish(proc) -> int:
  proc.stdin.write("go\n")
  proc.stdin.flush()
  return proc.wait(TIMEOUT_S)


def _foreign_lock(model_dir: str) -> run_lock.Holder:
  """A lock left by a run on another machine."""
  holder = run_lock.Holder(host="other-host-7", pid=4242, started="2026-01-02T03:04:05+00:00",
                           command="clqa train --gin_file=x.gin", token="f" * 32)
  fileio.create_exclusive(run_lock.lock_path(model_dir), holder.to_bytes())
  return holder


def test_second_process_is_refused_until_the_holder_exits(root):
  model_dir = fileio.join(root, "run")
  with holder_process(model_dir, "release") as (proc, pid):
    with pytest.raises(run_lock.RunDirectoryLockedError) as refused:
      run_lock.acquire(model_dir)
    message = str(refused.value)
    for part in (model_dir, f"host {socket.gethostname()}", f"pid {pid}", "started 20",
                 "hold_run_lock.py", "still running on this host"):
      assert part in message
    assert _finish(proc) == 0
  assert not fileio.exists(run_lock.lock_path(model_dir))
  lock = run_lock.acquire(model_dir)
  assert json.loads(fileio.read_text(lock.path))["pid"] == os.getpid()
  lock.release()
  assert not fileio.exists(lock.path)


def test_dead_holder_on_this_host_is_taken_over(root, caplog):
  model_dir = fileio.join(root, "run")
  with holder_process(model_dir, "vanish") as (proc, pid):
    assert _finish(proc) == 0
  left = run_lock.Holder.from_bytes(fileio.read_bytes(run_lock.lock_path(model_dir)))
  assert left.pid == pid   # the killed run's lock is still there
  with caplog.at_level(logging.WARNING, logger=run_lock.__name__):
    lock = run_lock.acquire(model_dir)
  assert f"taking over the run lock {lock.path}" in caplog.text and f"pid {pid}" in caplog.text
  assert run_lock.Holder.from_bytes(fileio.read_bytes(lock.path)).pid == os.getpid()
  lock.release()


def test_lock_of_another_host_needs_break_lock(root, caplog):
  model_dir = fileio.join(root, "run")
  _foreign_lock(model_dir)
  with pytest.raises(run_lock.RunDirectoryLockedError,
                     match=r"host other-host-7, pid 4242, started 2026-01-02T03:04:05.*"
                           r"no longer running.*pass --break_lock"):
    run_lock.acquire(model_dir)
  with caplog.at_level(logging.WARNING, logger=run_lock.__name__):
    lock = run_lock.acquire(model_dir, break_lock=True)
  assert "broke the run lock" in caplog.text and "other-host-7" in caplog.text
  lock.release()


@pytest.mark.parametrize("left_by, state", [
    # A restarted container: the same host name and pid (1, say), a new process.
    (dict(pid=os.getpid(), started="2020-01-01T00:00:00+00:00"), run_lock.DEAD),
    (dict(boot_id="0-rebooted-since"), run_lock.DEAD),
    (dict(pid_namespace="pid:[1]"), run_lock.UNKNOWN),   # another container, same host name
    (dict(host="other-host-7"), run_lock.UNKNOWN),
])
def test_state_of_a_holder_seen_from_here(left_by, state, tmp_path):
  me = run_lock.Holder.this_process()
  holder = dataclasses.replace(me, token="e" * 32, **left_by)
  assert holder.state_seen_from_here() == state
  assert me.state_seen_from_here() == run_lock.ALIVE
  model_dir = str(tmp_path / "run")
  fileio.create_exclusive(run_lock.lock_path(model_dir), holder.to_bytes())
  if state == run_lock.DEAD:
    run_lock.acquire(model_dir).release()
  else:
    with pytest.raises(run_lock.RunDirectoryLockedError, match="pass --break_lock"):
      run_lock.acquire(model_dir)


def test_break_lock_never_breaks_a_live_holder_on_this_host(tmp_path):
  model_dir = str(tmp_path / "run")
  held = run_lock.acquire(model_dir)  # this very process: alive
  with pytest.raises(run_lock.RunDirectoryLockedError, match="still running on this host"):
    run_lock.acquire(model_dir, break_lock=True)
  held.release()


def test_release_leaves_a_lock_that_another_run_took(tmp_path):
  model_dir = str(tmp_path / "run")
  lock = run_lock.acquire(model_dir)
  fileio.remove(lock.path)               # broken by hand, then taken by a run elsewhere
  other = _foreign_lock(model_dir)
  lock.release()
  assert run_lock.Holder.from_bytes(fileio.read_bytes(lock.path)) == other


def test_the_lock_is_released_when_the_block_raises(tmp_path):
  model_dir = str(tmp_path / "run")
  with pytest.raises(ZeroDivisionError):
    with run_lock.held_by_this_job(model_dir) as lock:
      assert fileio.exists(lock.path)
      _ = 1 / 0
  assert not fileio.exists(run_lock.lock_path(model_dir))


def test_sigterm_releases_the_lock(tmp_path):
  model_dir = str(tmp_path / "run")
  with holder_process(model_dir, "job") as (proc, _):
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(TIMEOUT_S) == 128 + signal.SIGTERM, proc.stderr.read()
  assert not fileio.exists(run_lock.lock_path(model_dir))


def test_only_process_zero_takes_the_lock(tmp_path, monkeypatch):
  import jax  # pylint: disable=g-import-not-at-top

  model_dir = str(tmp_path / "run")
  _foreign_lock(model_dir)
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  with run_lock.held_by_this_job(model_dir) as lock:   # another process of the job holds it
    assert lock is None


def test_clqa_train_on_a_directory_in_use_exits_2(tmp_path):
  model_dir = str(tmp_path / "run")

  def clqa_train(*extra):
    err = io.StringIO()
    with gin_utils.scoped_config(), contextlib.redirect_stderr(err):
      code = cli_main.main(["train", "--gin_file", "experiments/mini_teacher_en.gin",
                            f"--gin.MODEL_DIR='{model_dir}'",
                            f"--gin.data_root.path='{tmp_path / 'no_data'}'", *extra])
    return code, err.getvalue().strip().splitlines()[-1]

  with holder_process(model_dir, "release") as (proc, pid):
    code, line = clqa_train()
    assert code == 2
    assert line.startswith(f"clqa train: error: run directory {model_dir} is in use")
    assert f"pid {pid}" in line and run_lock.lock_path(model_dir) in line
    assert _finish(proc) == 0
  _foreign_lock(model_dir)
  code, line = clqa_train("--break_lock", "--gin.loop.train.eval_every_steps=0",
                          "--gin.training.CheckpointConfig.best_metric='eval/f1'")
  # The lock broken, the run started, stopped at its first check and removed its own lock.
  assert code == 2 and "the run evaluates nothing" in line, line
  assert not os.path.exists(run_lock.lock_path(model_dir))
