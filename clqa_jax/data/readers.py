"""Streaming readers for every input format (real benchmarks and our synthetic data).

Every reader is a generator over one file: nothing is held in memory beyond the current record,
so an 18M-row passage TSV streams. A malformed record raises ``DataFormatError(path, line,
field)``; with ``skip_errors=True`` it is dropped and counted in ``stats`` (a ``SkipStats``),
which the caller reports. Line numbers are 1-based physical lines.

Formats (see tasks/README.md for the full schemas):
  DPR passage TSV   header ``id\\ttext\\ttitle``; csv quoting (psgs_w100.tsv quotes text);
                    titles NFC-normalised when asked (the all_w100.tsv convention).
  XOR-TyDi JSONL    {"id", "question", "answers": [str], "lang"} (XOR-Retrieve eng-span, XOR-Full;
                    also the gold files of the metrics and the question files of ``clqa infer``).
  DPR NQ CSV        ``question \\t ['answer', ...]`` (a Python/JSON list literal); qid = row index.
  MKQA JSONL(.gz)   {"example_id", "query", "queries": {lang: str},
                     "answers": {lang: [{"type", "text", "aliases", "entity"}]}}; gold answers
                    as the official evaluator reads them (``records.MkqaExample``).
  stage-1 / stage-2 synthetic JSONL: the records of the cross-module contract.
"""
from __future__ import annotations

import ast
import contextlib
import csv
import gzip
import json
import re
import sys
import unicodedata
from typing import Any, Callable, Iterator, TypeVar

from clqa_jax import fileio
from clqa_jax.data import formats
from clqa_jax.data.errors import DataFormatError, SkipStats
from clqa_jax.data.records import MkqaAnswer
from clqa_jax.data.records import MkqaExample
from clqa_jax.data.records import Passage
from clqa_jax.data.records import Question
from clqa_jax.data.records import Stage1Record
from clqa_jax.data.records import Stage2Record

T = TypeVar("T")

PASSAGE_TSV_HEADER = formats.PASSAGE_TSV_HEADER
_HEADER_TEXT = "\t".join(PASSAGE_TSV_HEADER)
_SHARD_RE = re.compile(r"^(?P<base>.*)-(?P<index>\d{5})-of-(?P<count>\d{5})$")

csv.field_size_limit(sys.maxsize)


REWRITE_BACKENDS = ("cloze", "http", "seq2seq", "miniwiki")


# ---------------------------------------------------------------------------------------------
# Files and shards.


@contextlib.contextmanager
def open_binary(path: str):
  """Opens a local or ``gs://`` file for binary reading, transparently gunzipping ``*.gz``.

  A file that cannot be opened is an input error of the whole file (``DataFormatError`` with no
  line), reported like any malformed input.
  """
  try:
    raw_file = fileio.open(path, "rb")
  except OSError as e:
    raise DataFormatError(path, None, None, f"cannot open: {e.strerror or e}") from e
  with raw_file as raw:
    if path.endswith(".gz"):
      with gzip.GzipFile(fileobj=raw) as f:
        yield f
    else:
      yield raw


class _DecodedLines:
  """Iterates the lines of a binary file decoded as UTF-8, one line at a time.

  Decoding per line pins a bad byte sequence to its exact line (a text-mode file decodes in
  chunks). Undecodable lines are decoded with replacement characters and their numbers kept in
  ``bad``, so the caller can reject (or count and skip) exactly the records that contain them.
  """

  def __init__(self, f):
    self._f = f
    self.lineno = 0
    self.bad: dict[int, str] = {}

  def __iter__(self):
    for raw in self._f:
      self.lineno += 1
      try:
        yield raw.decode("utf-8")
      except UnicodeDecodeError as e:
        self.bad[self.lineno] = e.reason
        yield raw.decode("utf-8", errors="replace")


def _check_utf8(path: str, lines: _DecodedLines, first: int, last: int) -> None:
  for n in range(first, last + 1):
    if n in lines.bad:
      raise DataFormatError(path, n, "<line>", f"not UTF-8: {lines.bad[n]}")


def expand_shards(pattern: str) -> list[str]:
  """Sorted files matching a glob; a set of ``-SSSSS-of-NNNNN`` shards must be complete."""
  files = fileio.glob(pattern)
  groups: dict[tuple[str, int], set[int]] = {}
  for f in files:
    m = _SHARD_RE.match(f)
    if m:
      groups.setdefault((m["base"], int(m["count"])), set()).add(int(m["index"]))
  for (base, count), seen in groups.items():
    missing = sorted(set(range(count)) - seen)
    if missing:
      raise FileNotFoundError(
          f"{base}-*-of-{count:05d}: shards {missing[:5]} are missing (an unfinished write?); "
          "re-run the pipeline that produced them")
  return files


def _with_skips(records: Iterator[tuple[int, Callable[[], T]]], skip_errors: bool,
                stats: SkipStats | None) -> Iterator[T]:
  """Runs each record's parser, raising or counting DataFormatErrors."""
  for _, parse in records:
    try:
      value = parse()
    except DataFormatError as e:
      if not skip_errors:
        raise
      if stats is not None:
        stats.record(e)
      continue
    if stats is not None:
      stats.read += 1
    yield value


def _jsonl_objects(path: str) -> Iterator[tuple[int, Callable[[], dict[str, Any]]]]:
  """(line number, thunk returning the decoded JSON object) for every non-blank line."""
  with open_binary(path) as f:
    lines = _DecodedLines(f)
    for line in lines:
      lineno = lines.lineno
      if not line.strip():
        continue

      def parse(line=line, lineno=lineno):
        _check_utf8(path, lines, lineno, lineno)
        try:
          obj = json.loads(line)
        except json.JSONDecodeError as e:
          raise DataFormatError(path, lineno, "<json>",
                                f"invalid JSON: {e.msg} at column {e.colno}")
        if not isinstance(obj, dict):
          raise DataFormatError(path, lineno, "<json>",
                                f"expected an object, got {type(obj).__name__}")
        return obj
      yield lineno, parse


def _csv_rows(path: str
              ) -> Iterator[tuple[int, int, list[str] | None, str | None, _DecodedLines]]:
  """(first line, last line, row or None, csv error or None, lines) per tab-separated record."""
  with open_binary(path) as f:
    lines = _DecodedLines(f)
    reader = csv.reader(iter(lines), delimiter="\t")
    while True:
      start = reader.line_num + 1
      try:
        row = next(reader)
      except StopIteration:
        return
      except csv.Error as e:
        yield start, reader.line_num, None, str(e), lines
        continue
      yield start, reader.line_num, row, None, lines


def _fail(err: DataFormatError) -> Callable[[], Any]:
  def fail():
    raise err
  return fail


class _Fields:
  """Typed field access on one decoded record, raising DataFormatError with the location."""

  def __init__(self, obj: dict[str, Any], path: str, line: int):
    self.obj, self.path, self.line = obj, path, line

  def error(self, field: str, message: str) -> DataFormatError:
    return DataFormatError(self.path, self.line, field, message)

  def text(self, field: str, *, nonempty: bool = True, default: str | None = None) -> str:
    if field not in self.obj:
      if default is not None:
        return default
      raise self.error(field, "missing")
    v = self.obj[field]
    if isinstance(v, (int, float)) and not isinstance(v, bool):
      v = str(v)  # numeric ids (e.g. MKQA example_id) are ids all the same
    if not isinstance(v, str):
      raise self.error(field, f"expected a string, got {type(v).__name__}")
    if nonempty and not v.strip():
      raise self.error(field, "empty")
    return v

  def str_list(self, field: str, *, nonempty: bool = True, allow_missing: bool = False,
               max_len: int | None = None) -> tuple[str, ...]:
    if field not in self.obj:
      if allow_missing:
        return ()
      raise self.error(field, "missing")
    v = self.obj[field]
    if not isinstance(v, list):
      raise self.error(field, f"expected a list, got {type(v).__name__}")
    out = []
    for i, x in enumerate(v):
      if isinstance(x, (int, float)) and not isinstance(x, bool):
        x = str(x)
      if not isinstance(x, str):
        raise self.error(f"{field}[{i}]", f"expected a string, got {type(x).__name__}")
      out.append(x)
    if nonempty and not out:
      raise self.error(field, "empty list")
    if max_len is not None and len(out) > max_len:
      raise self.error(field, f"{len(out)} entries, at most {max_len} allowed")
    return tuple(out)

  def float_list(self, field: str) -> tuple[float, ...]:
    v = self.obj.get(field)
    if not isinstance(v, list):
      raise self.error(field, "missing" if v is None
                       else f"expected a list, got {type(v).__name__}")
    out = []
    for i, x in enumerate(v):
      if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise self.error(f"{field}[{i}]", f"expected a number, got {type(x).__name__}")
      out.append(float(x))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# DPR passage TSV.


def read_passages_tsv(path: str, *, nfc_titles: bool | None = None, skip_errors: bool = False,
                      stats: SkipStats | None = None) -> Iterator[Passage]:
  """Streams ``Passage``s from a DPR TSV (``id\\ttext\\ttitle`` header, csv quoting).

  Args:
    path: the TSV (optionally .gz).
    nfc_titles: NFC-normalise titles; None = the official convention (only for all_w100.tsv).
    skip_errors: drop malformed rows (counted in ``stats``) instead of raising.
    stats: receives read/skip counts.
  """
  if nfc_titles is None:
    nfc_titles = "all_w100" in fileio.basename(path)

  def rows():
    first = True
    for start, end, row, csv_error, lines in _csv_rows(path):
      if csv_error is not None:
        yield start, _fail(DataFormatError(path, start, "<row>", f"csv: {csv_error}"))
        continue
      if first:
        first = False
        _check_utf8(path, lines, start, end)
        if tuple(row) != PASSAGE_TSV_HEADER:
          # The header is not a record: a wrong one is always fatal.
          raise DataFormatError(path, 1, "<header>", f"expected {_HEADER_TEXT!r}, got {row[:3]!r}")
        continue

      def parse(row=row, line=start, end=end, lines=lines):
        _check_utf8(path, lines, line, end)
        if len(row) != 3:
          raise DataFormatError(path, line, "<row>",
                                f"expected 3 tab-separated fields, got {len(row)}")
        pid, text, title = row
        if not pid.strip():
          raise DataFormatError(path, line, "id", "empty")
        if not text.strip():
          raise DataFormatError(path, line, "text", "empty")
        return Passage(pid=pid, text=text,
                       title=unicodedata.normalize("NFC", title) if nfc_titles else title)
      yield start, parse

  return _with_skips(rows(), skip_errors, stats)


# ---------------------------------------------------------------------------------------------
# QA datasets.


def read_xor_jsonl(path: str, *, require_answers: bool = True, require_question: bool = True,
                   default_lang: str | None = None, default_ids: bool = False,
                   skip_errors: bool = False,
                   stats: SkipStats | None = None) -> Iterator[Question]:
  """Streams XOR-TyDi questions (XOR-Retrieve eng-span or XOR-Full, train, dev or test).

  ``answers`` is a list of strings; a bare string is read as a one-answer list. Numeric ids are
  read as strings.

  Args:
    path: the JSONL file (optionally .gz).
    require_answers: False reads test files, which have no ``answers`` (the record gets ()).
    require_question: False reads gold files that carry only ids and answers (question "").
    default_lang: the language of records without ``lang`` (typed question files).
    default_ids: a record without ``id`` gets its 0-based record index (typed question files).
    skip_errors, stats: as every reader.
  """
  first_line_of_id: dict[str, int] = {}

  def records():
    for index, (line, obj) in enumerate(_jsonl_objects(path)):
      def parse(obj=obj, line=line, index=index):
        f = _Fields(obj(), path, line)
        qid = f.text("id", default=str(index) if default_ids else None)
        # Scorers key predictions by id: a second record of an id would silently replace the
        # first one's gold answers.
        if first_line_of_id.setdefault(qid, line) != line:
          raise DataFormatError(path, line, "id",
                                f"duplicate id {qid!r} (first on line {first_line_of_id[qid]})")
        lang = f.text("lang", default=default_lang).strip()
        question = (f.text("question") if require_question or "question" in f.obj else "")
        if isinstance(f.obj.get("answers"), str):
          answers = (f.obj["answers"],)
        else:
          answers = f.str_list("answers", nonempty=require_answers,
                               allow_missing=not require_answers)
        return Question(qid=qid, lang=lang, question=question, answers=answers)
      yield line, parse
  return _with_skips(records(), skip_errors, stats)


def read_nq_csv(path: str, *, skip_errors: bool = False,
                stats: SkipStats | None = None) -> Iterator[Question]:
  """Streams DPR NQ rows ``question \\t ['answer', ...]``; qid is the 0-based row index."""
  def rows():
    for index, (start, end, row, csv_error, lines) in enumerate(_csv_rows(path)):
      if csv_error is not None:
        yield start, _fail(DataFormatError(path, start, "<row>", f"csv: {csv_error}"))
        continue

      def parse(row=row, line=start, end=end, lines=lines, qid=str(index)):
        _check_utf8(path, lines, line, end)
        if len(row) not in (2, 3):
          raise DataFormatError(path, line, "<row>",
                                f"expected 2 tab-separated fields, got {len(row)}")
        question, answers_literal = row[0], row[1]
        if not question.strip():
          raise DataFormatError(path, line, "question", "empty")
        try:
          answers = ast.literal_eval(answers_literal)
        except (ValueError, SyntaxError):
          raise DataFormatError(path, line, "answers",
                                f"not a list literal: {answers_literal[:60]!r}")
        if (not isinstance(answers, list) or not answers
            or not all(isinstance(a, str) for a in answers)):
          raise DataFormatError(path, line, "answers", "expected a non-empty list of strings")
        lang = row[2] if len(row) == 3 else "en"
        return Question(qid=qid, lang=lang, question=question, answers=tuple(answers))
      yield start, parse
  return _with_skips(rows(), skip_errors, stats)


def _check_mkqa_languages(f: "_Fields", field: str, by_lang: dict) -> None:
  """The keys of ``by_lang`` are MKQA language codes: they name output files
  (``input_{lang}.jsonl``), so an arbitrary key ("../x") must never reach a path."""
  for lang in by_lang:
    if lang not in formats.MKQA_LANGUAGES:
      raise f.error(field, f"{lang!r} is not an MKQA language code; expected keys among "
                           f"{' '.join(formats.MKQA_LANGUAGES)}")


def read_mkqa_jsonl(path: str, *, skip_errors: bool = False,
                    stats: SkipStats | None = None) -> Iterator[MkqaExample]:
  """Streams raw MKQA records (``mkqa.jsonl`` or ``mkqa.jsonl.gz``).

  Every language with a query must have a non-empty answer list. An answer is an object with a
  string ``type``, a ``text`` that is a string or null (null: MKQA's "no answer", as in the
  ``unanswerable`` and ``long_answer`` types), optional string ``aliases`` and ``entity``. The
  gold answers and answerability are the official evaluator's: see ``records.MkqaExample``.
  """
  def records():
    for line, obj in _jsonl_objects(path):
      def parse(obj=obj, line=line):
        f = _Fields(obj(), path, line)
        example_id = f.text("example_id")
        queries = f.obj.get("queries")
        if not isinstance(queries, dict) or not queries:
          raise f.error("queries", "expected a non-empty object {lang: question}")
        _check_mkqa_languages(f, "queries", queries)
        for lang, q in queries.items():
          if not isinstance(q, str) or not q.strip():
            raise f.error(f"queries.{lang}", "expected a non-empty string")
        raw_answers = f.obj.get("answers")
        if not isinstance(raw_answers, dict):
          raise f.error("answers", "expected an object {lang: [answer, ...]}")
        _check_mkqa_languages(f, "answers", raw_answers)
        answers: dict[str, tuple[MkqaAnswer, ...]] = {}
        for lang, items in raw_answers.items():
          if not isinstance(items, list):
            raise f.error(f"answers.{lang}", "expected a list")
          parsed = []
          for i, a in enumerate(items):
            where = f"answers.{lang}[{i}]"
            if not isinstance(a, dict) or not isinstance(a.get("type"), str):
              raise f.error(where, "expected an object with a string 'type'")
            text = a.get("text")
            if text is not None and not isinstance(text, str):
              raise f.error(f"{where}.text", "expected a string or null")
            aliases = a.get("aliases") or []
            if not isinstance(aliases, list) or not all(isinstance(s, str) for s in aliases):
              raise f.error(f"{where}.aliases", "expected a list of strings")
            entity = a.get("entity")
            parsed.append(MkqaAnswer(type=a["type"], text=text, aliases=tuple(aliases),
                                     entity=entity if isinstance(entity, str) else None))
          answers[lang] = tuple(parsed)
        missing = sorted(set(queries) - set(answers))
        if missing:
          raise f.error("answers", f"no answers for languages {missing}")
        empty = sorted(lang for lang in queries if not answers[lang])
        if empty:
          raise f.error(f"answers.{empty[0]}", "empty list for a language that has a query")
        return MkqaExample(example_id=example_id,
                           query=f.text("query", default=queries.get("en", "")),
                           queries=dict(queries), answers=answers)
      yield line, parse
  return _with_skips(records(), skip_errors, stats)


# ---------------------------------------------------------------------------------------------
# Our synthetic data (the cross-module contract).


def _check_id(f: _Fields, rid: str, lang: str, source_pid: str) -> None:
  parts = rid.split("-")
  if len(parts) < 3 or parts[0] != lang:
    raise f.error("id", f"expected '{lang}-<source_pid>-<n>', got {rid!r}")
  if parts[1] != source_pid:
    raise f.error("id", f"source pid in id ({parts[1]!r}) differs from source_pid {source_pid!r}")


def read_stage1_jsonl(path: str, *, max_teacher_pids: int = 100, skip_errors: bool = False,
                      stats: SkipStats | None = None) -> Iterator[Stage1Record]:
  """Streams stage-1 (CLR-PT) parallel cloze records."""
  def records():
    for line, obj in _jsonl_objects(path):
      def parse(obj=obj, line=line):
        f = _Fields(obj(), path, line)
        lang = f.text("lang")
        source_pid = f.text("source_pid")
        rid = f.text("id")
        _check_id(f, rid, lang, source_pid)
        pids = f.str_list("teacher_pids", max_len=max_teacher_pids)
        scores = f.float_list("teacher_scores")
        if len(scores) != len(pids):
          raise f.error("teacher_scores", f"{len(scores)} scores for {len(pids)} teacher_pids")
        return Stage1Record(id=rid, lang=lang, question_en=f.text("question_en"),
                            question=f.text("question"), answers=f.str_list("answers"),
                            source_pid=source_pid, teacher_pids=pids, teacher_scores=scores)
      yield line, parse
  return _with_skips(records(), skip_errors, stats)


def read_stage2_jsonl(path: str, *, skip_errors: bool = False,
                      stats: SkipStats | None = None) -> Iterator[Stage2Record]:
  """Streams stage-2 (MLQA-PT) synthetic QA records."""
  def records():
    for line, obj in _jsonl_objects(path):
      def parse(obj=obj, line=line):
        f = _Fields(obj(), path, line)
        lang = f.text("lang")
        source_pid = f.text("source_pid")
        rid = f.text("id")
        _check_id(f, rid, lang, source_pid)
        answer_lang = f.text("answer_lang")
        if answer_lang not in ("en", lang):
          raise f.error("answer_lang", f"expected 'en' or {lang!r}, got {answer_lang!r}")
        backend = f.text("rewrite_backend")
        if backend not in REWRITE_BACKENDS:
          raise f.error("rewrite_backend", f"expected one of {REWRITE_BACKENDS}, got {backend!r}")
        return Stage2Record(id=rid, lang=lang, question=f.text("question"),
                            answers=f.str_list("answers"), source_pid=source_pid,
                            answer_lang=answer_lang, cloze=f.text("cloze", nonempty=False),
                            rewrite_backend=backend)
      yield line, parse
  return _with_skips(records(), skip_errors, stats)
