"""Typed input errors and the counted-skip bookkeeping shared by every reader."""
from __future__ import annotations

import collections
import dataclasses
import logging

logger = logging.getLogger(__name__)


class DataFormatError(ValueError):
  """A malformed input file: names the file, the 1-based line and the offending field.

  The one input-error type of every reader (datasets, Wikipedia dumps, gold and prediction
  files). ``line`` is None for an error of the whole file (unreadable, empty, not a JSON object);
  ``field`` is None when no single field is at fault. ``str(error)`` is
  ``<path>:<line>: <field>: <message>``, the form every ``clqa`` command prints.
  """

  def __init__(self, path: str, line: int | None, field: str | None, message: str):
    self.path = str(path)
    self.line = line
    self.field = field
    self.message = message
    where = self.path if line is None else f"{self.path}:{line}"
    what = f" {field}:" if field else ""
    super().__init__(f"{where}:{what} {message}")


class StoreMismatchError(RuntimeError):
  """An on-disk store was built from a different corpus or vocabulary than the one asked for."""


@dataclasses.dataclass
class SkipStats:
  """Counts of records read and skipped, by field; filled by readers when skipping is enabled.

  Attributes:
    read: records returned.
    skipped: records dropped for a format error.
    by_field: skipped count per offending field.
    examples: the first few errors, verbatim, for the report.
  """
  read: int = 0
  skipped: int = 0
  by_field: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  examples: list[str] = dataclasses.field(default_factory=list)
  max_examples: int = 5

  def record(self, error: DataFormatError) -> None:
    self.skipped += 1
    self.by_field[error.field] += 1
    if len(self.examples) < self.max_examples:
      self.examples.append(str(error))

  def summary(self) -> str:
    fields = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_field.items()))
    return f"read {self.read}, skipped {self.skipped}" + (f" ({fields})" if fields else "")

  def log(self, what: str) -> None:
    if self.skipped:
      logger.warning("%s: %s; first errors: %s", what, self.summary(), "; ".join(self.examples))
