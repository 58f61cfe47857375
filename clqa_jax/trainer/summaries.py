"""Per-term metrics to TensorBoard (host 0, through clu) and the console progress line."""
from __future__ import annotations

import math
import sys
import tempfile
import time
from typing import Any, Mapping, TextIO

import jax
import numpy as np

from clqa_jax import fileio


def create_writer(logdir: str, *, asynchronous: bool = True) -> Any:
  """A clu MetricWriter: TensorBoard summaries on host 0, logging only elsewhere.

  clu's summary writer uses TensorFlow, so it is imported here, lazily, not at module import.
  A remote ``logdir`` (gs://) is written locally and copied there through fileio at least
  every ``MirroredWriter.every_seconds`` and on flush/close, so summaries take the same I/O
  path as every other artifact.
  """
  from clu import metric_writers  # pylint: disable=g-import-not-at-top

  if jax.process_index() > 0 or not fileio.is_remote(logdir):
    if jax.process_index() == 0:
      fileio.makedirs(logdir)
    return metric_writers.create_default_writer(
        logdir, just_logging=jax.process_index() > 0, asynchronous=asynchronous)
  local = tempfile.TemporaryDirectory(prefix="clqa-summaries-")
  writer = metric_writers.create_default_writer(local.name, asynchronous=asynchronous)
  return MirroredWriter(writer, local, logdir)


class MirroredWriter:
  """A MetricWriter writing into a local directory that is copied to ``remote`` (whole event
  files, which are small) every ``every_seconds`` of writes and on flush and close."""

  every_seconds = 60.0

  def __init__(self, writer: Any, local: tempfile.TemporaryDirectory, remote: str):
    self._writer, self._local, self._remote = writer, local, remote
    self._last_copy = time.monotonic()

  def __getattr__(self, name: str) -> Any:
    attr = getattr(self._writer, name)
    if not name.startswith("write_"):
      return attr

    def write(*args, **kwargs):
      attr(*args, **kwargs)
      if time.monotonic() - self._last_copy >= self.every_seconds:
        self.flush()
    return write

  def flush(self) -> None:
    self._writer.flush()
    fileio.copytree(self._local.name, self._remote)
    self._last_copy = time.monotonic()

  def close(self) -> None:
    self._writer.close()
    fileio.copytree(self._local.name, self._remote)
    self._local.cleanup()


class MetricAverager:
  """Averages the step metrics between two log points (values fetched from device lazily)."""

  def __init__(self):
    self._sums: dict[str, float] = {}
    self._count = 0

  def add(self, metrics: Mapping[str, Any]) -> None:
    for k, v in metrics.items():
      self._sums[k] = self._sums.get(k, 0.0) + float(np.asarray(v))
    self._count += 1

  def result_and_reset(self) -> dict[str, float]:
    out = {k: v / max(1, self._count) for k, v in self._sums.items()}
    self._sums, self._count = {}, 0
    return out


def format_duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  seconds = int(round(seconds))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class ProgressLine:
  """``step 120/1000 (12.0%) | loss 3.2140 | 4.10 step/s, 262.4 q/s | ETA 3m35s`` on host 0.

  The rate is measured over the steps since the previous line, never over the first
  ``warmup_steps`` steps of this invocation (compilation, the first transfers): until one step
  after them has finished the rate and ETA are unknown ("nan", "?"). ``timing_scalars`` gives
  the rate to TensorBoard under T5X's names.
  """

  warmup_steps = 1

  def __init__(self, total_steps: int, questions_per_step: int, stream: TextIO | None = None):
    self.total_steps = total_steps
    self.questions_per_step = questions_per_step
    self.stream = stream or sys.stdout
    self._warm_from: int | None = None    # the step after which the rate is measured
    self._last_time: float | None = None  # when the rate's interval began (None: warming up)
    self._last_step: int | None = None
    self.steps_per_second = float("nan")

  def start(self, step: int) -> None:
    """The first step of this invocation is ``step + 1``."""
    self._warm_from = step + self.warmup_steps
    self._last_time, self._last_step = None, None
    self.steps_per_second = float("nan")

  def step_done(self, step: int) -> None:
    """Called after every step: the measured interval starts when the warm-up steps are done."""
    if self._last_time is None and self._warm_from is not None and step >= self._warm_from:
      self._last_time, self._last_step = time.perf_counter(), step

  def update(self, step: int, metrics: Mapping[str, float]) -> str:
    now = time.perf_counter()
    if self._last_time is not None and step > self._last_step:
      self.steps_per_second = (step - self._last_step) / max(now - self._last_time, 1e-9)
      self._last_time, self._last_step = now, step
    eta = (self.total_steps - step) / self.steps_per_second if self.steps_per_second > 0 else (
        float("nan"))
    pct = 100.0 * step / max(1, self.total_steps)
    loss = metrics.get("loss", float("nan"))
    line = (f"step {step}/{self.total_steps} ({pct:.1f}%) | loss {loss:.4f} | "
            f"{self.steps_per_second:.2f} step/s, "
            f"{self.steps_per_second * self.questions_per_step:.1f} q/s | "
            f"ETA {format_duration(eta)}")
    if jax.process_index() == 0:
      print(line, file=self.stream, flush=True)
    return line

  def timing_scalars(self) -> dict[str, float]:
    """``timing/steps_per_second`` and ``timing/examples_per_second`` (questions) of the last
    line; none while the rate is unknown."""
    if not self.steps_per_second > 0:
      return {}
    return {"timing/steps_per_second": self.steps_per_second,
            "timing/examples_per_second": self.steps_per_second * self.questions_per_step}
