"""Readers for Wikipedia dumps: wikiextractor `--json --links` output and interlanguage links.

wikiextractor writes one JSON object per line, `{"id", "url", "title", "text"}`, into files
`<out>/AA/wiki_00`, ...; with `--links` the text keeps internal links as
`<a href="Url%20Quoted%20Title">anchor text</a>`. `parse_links` strips them to plain text and
character spans. Interlanguage links are a TSV `en_title \\t lang \\t title` with a header (the
shape of a `langlinks` table export joined to English titles), or JSONL with those keys.

Every error names the file, the line (1-based) and the field.
"""
from __future__ import annotations

import dataclasses
import html
import json
import re
import unicodedata
import urllib.parse
from typing import Iterator

from clqa_jax import fileio
from clqa_jax.data.errors import DataFormatError


@dataclasses.dataclass(frozen=True)
class Link:
  """A link in plain text: `text[start:end]` is the anchor; `target` the linked title."""
  start: int
  end: int
  target: str


@dataclasses.dataclass(frozen=True)
class Article:
  id: str
  url: str
  title: str
  text: str  # plain text, links removed
  links: tuple[Link, ...]
  lang: str = ""


_LINK = re.compile(r'<a href="([^"]*)">(.*?)</a>', re.DOTALL)


def normalize_title(title: str) -> str:
  """NFC, underscores as spaces, first letter upper-cased (MediaWiki title rules)."""
  title = unicodedata.normalize("NFC", title.replace("_", " ")).strip()
  return title[:1].upper() + title[1:]


def parse_links(marked_text: str) -> tuple[str, list[Link]]:
  """Removes `<a href>` markup; returns the plain text and the links' spans in it."""
  out, links, pos, length = [], [], 0, 0
  for m in _LINK.finditer(marked_text):
    before = html.unescape(marked_text[pos:m.start()])
    out.append(before)
    length += len(before)
    anchor = html.unescape(m.group(2))
    target = normalize_title(urllib.parse.unquote(html.unescape(m.group(1))).split("#", 1)[0])
    if anchor and target:
      links.append(Link(length, length + len(anchor), target))
    out.append(anchor)
    length += len(anchor)
    pos = m.end()
  out.append(html.unescape(marked_text[pos:]))
  return "".join(out), links


def json_object_line(line: str, path: str, lineno: int) -> dict:
  """One JSON-lines line that must hold an object (a DataFormatError names path and line)."""
  try:
    obj = json.loads(line)
  except json.JSONDecodeError as e:
    raise DataFormatError(path, lineno, "<json>", f"not valid JSON ({e.msg})") from None
  if not isinstance(obj, dict):
    raise DataFormatError(path, lineno, "<json>", "expected a JSON object")
  return obj


def parse_article_line(line: str, path: str, lineno: int, lang: str = "") -> Article:
  """One wikiextractor JSON line -> Article (typed errors name path, line and field)."""
  obj = json_object_line(line, path, lineno)
  for field in ("id", "title", "text"):
    if field not in obj:
      raise DataFormatError(path, lineno, field, "missing")
    if not isinstance(obj[field], (str, int)) or (field != "id" and not isinstance(obj[field], str)):
      raise DataFormatError(path, lineno, field, f"expected a string, got {type(obj[field]).__name__}")
  if not str(obj["title"]).strip():
    raise DataFormatError(path, lineno, "title", "empty")
  text, links = parse_links(obj["text"])
  return Article(id=str(obj["id"]), url=str(obj.get("url", "")), title=normalize_title(obj["title"]),
                 text=text, links=tuple(links), lang=lang)


def article_files(path: str) -> list[str]:
  """A file, or every file under a wikiextractor output directory (sorted, hidden files skipped)."""
  if fileio.isfile(path):
    return [path]
  if not fileio.isdir(path):
    raise FileNotFoundError(f"no wikiextractor output at {path}")
  return [fileio.join(path, rel) for rel in fileio.walk_files(path)
          if not any(part.startswith(".") for part in rel.split("/"))
          and not rel.endswith(".tmp")]


def read_articles(path: str, lang: str = "") -> Iterator[Article]:
  """Articles of one wikiextractor file, in file order (blank lines skipped)."""
  with fileio.open(path) as f:
    for lineno, line in enumerate(f, 1):
      if line.strip():
        yield parse_article_line(line, path, lineno, lang)


@dataclasses.dataclass(frozen=True)
class LangLink:
  en_title: str
  lang: str
  title: str


def read_langlinks(path: str) -> list[LangLink]:
  """Interlanguage links (TSV `en_title, lang, title` with a header, or JSONL with those keys)."""
  out = []
  with fileio.open(path) as f:
    first = f.readline()
    jsonl = first.lstrip().startswith("{")
    if not jsonl:
      header = first.rstrip("\n").split("\t")
      if header != ["en_title", "lang", "title"]:
        raise DataFormatError(path, 1, "<header>",
                                   f"expected 'en_title\\tlang\\ttitle', got {first.rstrip()!r}")
      lines = enumerate(f, 2)
    else:
      lines = enumerate([first] + f.readlines(), 1)
    for lineno, line in lines:
      if not line.strip():
        continue
      if jsonl:
        try:
          obj = json.loads(line)
        except json.JSONDecodeError as e:
          raise DataFormatError(path, lineno, "<json>", f"not valid JSON ({e.msg})") from None
        values = []
        for field in ("en_title", "lang", "title"):
          if not isinstance(obj.get(field), str) or not obj[field].strip():
            raise DataFormatError(path, lineno, field, "missing or not a non-empty string")
          values.append(obj[field])
      else:
        values = line.rstrip("\n").split("\t")
        if len(values) != 3:
          raise DataFormatError(path, lineno, "<row>", f"expected 3 tab-separated fields, got {len(values)}")
        for field, v in zip(("en_title", "lang", "title"), values):
          if not v.strip():
            raise DataFormatError(path, lineno, field, "empty")
      out.append(LangLink(normalize_title(values[0]), values[1].strip(), normalize_title(values[2])))
  return out
