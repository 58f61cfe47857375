"""The training progress line: its rate and ETA leave out the first step (compilation)."""
import io
import math

import pytest

from clqa_jax.trainer import summaries


class Clock:
  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


@pytest.fixture
def clock(monkeypatch):
  c = Clock()
  monkeypatch.setattr(summaries.time, "perf_counter", c)
  return c


def test_the_eta_excludes_the_first_step_of_each_invocation(clock):
  progress = summaries.ProgressLine(total_steps=12, questions_per_step=8, stream=io.StringIO())
  progress.start(0)
  clock.now = 100.0            # step 1 compiled for 100 s
  progress.step_done(1)
  line = progress.update(1, {"loss": 1.0})
  assert line.endswith("nan step/s, nan q/s | ETA ?") and progress.timing_scalars() == {}
  for step in (2, 3):          # then 2 s a step
    clock.now += 2.0
    progress.step_done(step)
  line = progress.update(3, {"loss": 1.0})
  assert progress.steps_per_second == pytest.approx(0.5)      # not 3 steps / 104 s
  assert line.endswith("0.50 step/s, 4.0 q/s | ETA 18s")      # 9 steps left at 2 s
  assert progress.timing_scalars() == {"timing/steps_per_second": pytest.approx(0.5),
                                       "timing/examples_per_second": pytest.approx(4.0)}
  # A resumed run compiles again: its first step is left out too.
  progress.start(3)
  clock.now += 50.0
  progress.step_done(4)
  clock.now += 1.0
  progress.step_done(5)
  progress.update(5, {})
  assert progress.steps_per_second == pytest.approx(1.0)
  assert not math.isnan(progress.steps_per_second)
