"""What plugs into the training loop: batch sources, eval and refresh hooks, preemption.

- ``BatchSource``: host-local numpy dicts of the model features (this process's rows of the
  global batch), with a JSON-serialisable position saved in every checkpoint.
- ``EvalHook``: ``(step, params) -> {name: value}``, run every ``eval_every_steps`` and at
  the last step; a hook with ``setup(partitioner)`` gets the run's partitioner once before
  training (``eval_hook.DevEvaluation``: the dev-set evaluation).
- ``RefreshHook``: ``(step, params) -> store version``, run at step 0 and every
  ``refresh_every_steps`` (never at the last step): re-encodes the corpus, retrieves for the
  next window of questions and swaps the retrieval store the batch source reads.
- ``PreemptionWatcher``: SIGTERM sets a flag; the loop saves at the next step boundary.
"""
from __future__ import annotations

import logging
import signal
import threading
from typing import Any, Mapping, Protocol, runtime_checkable

import jax
import numpy as np

logger = logging.getLogger(__name__)

Features = dict[str, np.ndarray]


@runtime_checkable
class BatchSource(Protocol):
  """An iterator of host-local batches that can report and restore its position."""

  def __next__(self) -> Features: ...

  def get_state(self) -> dict[str, Any]: ...

  def set_state(self, state: Mapping[str, Any]) -> None: ...


class EvalHook(Protocol):

  def __call__(self, step: int, params: Any) -> Mapping[str, float]: ...


class RefreshHook(Protocol):
  """Returns the retrieval-store version it published. A hook may also expose
  ``last_metrics`` ({name: float}, about the refresh it just ran): the loop writes them to
  TensorBoard at that step."""

  def __call__(self, step: int, params: Any) -> int: ...


def should_refresh(step: int, every: int, total_steps: int) -> bool:
  """Refresh at step 0 and every ``every`` steps, but not at the last step (official code)."""
  return every > 0 and step % every == 0 and step < total_steps


class PreemptionWatcher:
  """Catches SIGTERM (TPU preemption, job schedulers) so the loop can save and exit cleanly.

  Use as a context manager around the loop; the previous handler is restored on exit. With
  several processes every process must stop at the same step: ``should_stop`` agrees across
  processes (any process signalled -> all stop).
  """

  def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM,)):
    self.signals = signals
    self._event = threading.Event()
    self._previous: dict[int, Any] = {}

  def _handler(self, signum, frame):
    del frame
    logger.warning("received signal %d: saving at the next step boundary, then exiting", signum)
    self._event.set()

  def __enter__(self) -> "PreemptionWatcher":
    if threading.current_thread() is threading.main_thread():
      for s in self.signals:
        self._previous[s] = signal.signal(s, self._handler)
    return self

  def __exit__(self, *exc) -> None:
    for s, h in self._previous.items():
      signal.signal(s, h)
    self._previous = {}

  def trigger(self) -> None:
    self._event.set()

  def should_stop(self) -> bool:
    flag = self._event.is_set()
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      flag = bool(np.any(multihost_utils.process_allgather(np.array(flag))))
    return flag
