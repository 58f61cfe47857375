"""Dictionary-based code-switching of English queries (the CLASS stage-1 augmentation used with
cross-lingual alignment when parallel queries are off).

For each query one dictionary language is drawn uniformly; every space-separated token except
``question:`` is replaced by a uniformly drawn translation of the first of token.lower(),
token.title(), token.upper() that the dictionary has, and kept otherwise. The result mixes that
language's words with the untranslated English ones.

Dictionaries are MUSE bilingual lexicons ``<dir>/en-<lang>.txt``: one ``source target`` pair a
line (tab-separated, else whitespace-separated); pairs whose two sides are equal are skipped; a
source with several lines has several translations (in file order).
"""
from __future__ import annotations

import functools
from typing import Mapping, Sequence

import gin
import numpy as np

from clqa_jax import fileio
from clqa_jax.data import paths

# The official code's dictionary languages (the XOR-TyDi languages), in its order.
DICTIONARY_LANGUAGES = ("ar", "bn", "fi", "ja", "ko", "ru", "te")
KEPT_TOKEN = "question:"

Dictionary = Mapping[str, Sequence[str]]


def load_dictionary(path: str) -> dict[str, list[str]]:
  """English word -> its translations, from one MUSE file (see the module docstring)."""
  dictionary: dict[str, list[str]] = {}
  with fileio.open(path) as f:
    for number, line in enumerate(f, 1):
      line = line.strip()
      if not line:
        continue
      fields = line.split("\t")
      if len(fields) != 2:
        fields = line.split()
      if len(fields) != 2:
        raise ValueError(f"{path}:{number}: a dictionary line is 'source<TAB>target' or "
                         f"'source target', got {line!r}")
      source, target = (x.strip() for x in fields)
      if source == target:
        continue
      dictionary.setdefault(source, []).append(target)
  return dictionary


def dictionary_path(directory: str, lang: str) -> str:
  return fileio.join(directory, f"en-{lang}.txt")


@gin.configurable
def code_switch_dictionaries(directory: str | None = None,
                             languages: Sequence[str] = DICTIONARY_LANGUAGES
                             ) -> dict[str, dict[str, list[str]]]:
  """The dictionaries the code-switching preprocessor uses (gin-configurable), by language.

  Args:
    directory: the folder of ``en-<lang>.txt`` files (relative: under the data root); default
      ``<data_root>/muse``.
    languages: the languages to load, in the order the per-query draw indexes them.
  """
  resolved = paths.resolve(directory) if directory else paths.data_path("muse")
  return _load_all(resolved, tuple(languages))


@functools.lru_cache(maxsize=4)
def _load_all(directory: str, languages: tuple[str, ...]) -> dict[str, dict[str, list[str]]]:
  if not languages:
    raise ValueError("code_switch_dictionaries.languages is empty")
  missing = [dictionary_path(directory, l) for l in languages
             if not fileio.exists(dictionary_path(directory, l))]
  if missing:
    raise FileNotFoundError(f"code-switching dictionaries not found: {missing} (MUSE en-<lang>.txt"
                            " files; set code_switch_dictionaries.directory in gin)")
  return {lang: load_dictionary(dictionary_path(directory, lang)) for lang in languages}


def translation_candidates(token: str, dictionary: Dictionary) -> Sequence[str] | None:
  """The translations of the first of token.lower(), .title(), .upper() in the dictionary."""
  for variant in (token.lower(), token.title(), token.upper()):
    if variant in dictionary:
      return dictionary[variant]
  return None


def code_switch(query: str, dictionaries: Mapping[str, Dictionary],
                rng: np.random.Generator) -> str:
  """``query`` with its words translated into one randomly drawn dictionary language."""
  languages = list(dictionaries)
  dictionary = dictionaries[languages[int(rng.integers(len(languages)))]]
  out = []
  for token in query.split(" "):
    candidates = None if token == KEPT_TOKEN else translation_candidates(token, dictionary)
    out.append(token if not candidates else candidates[int(rng.integers(len(candidates)))])
  return " ".join(out)
