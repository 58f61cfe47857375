"""The language of a question read from its script, for ``clqa infer`` without ``--lang``.

The rule (stated in ``clqa infer --help`` as ``RULE``): the question's words are runs of letters
of one script. Kana, with or without kanji, is Japanese; hangul, with or without hanja, Korean;
Arabic, Hebrew, Bengali, Telugu, Thai, Khmer and Cyrillic script are ar, he, bn, te, th, km, ru.
That language is taken when its words outnumber the question's Latin-script words (names,
acronyms) and no other script occurs. Nothing else is certain: Latin script is shared by en,
fi, es, de, ... and kanji/hanzi without kana by ja and zh, so such a question needs ``--lang``.
"""
from __future__ import annotations

import unicodedata

from clqa_jax.synth import scripts

RULE = ("without --lang the language is read from the script: kana (with or without kanji) "
        "ja, hangul ko, Arabic ar, Hebrew he, Bengali bn, Telugu te, Thai th, Khmer km, "
        "Cyrillic ru, when the question's words in that script outnumber its Latin-script "
        "words and no other script occurs; Latin script alone (en, fi, es, ... look alike), "
        "kanji/hanzi without kana (ja or zh) or any other mix needs --lang")

# Script (``scripts.letter_script``, kana split from "CJK") -> the one known language using it.
_SCRIPT_LANGUAGE = {"KANA": "ja", "HANGUL": "ko", "ARABIC": "ar", "HEBREW": "he",
                    "BENGALI": "bn", "TELUGU": "te", "THAI": "th", "KHMER": "km",
                    "CYRILLIC": "ru"}


def _script(ch: str) -> str | None:
  """"LATIN", "KANA", "HAN", "HANGUL", ... for a letter or mark; None for anything else and for
  combining marks of no script (they belong to the letter before them)."""
  script = scripts.letter_script(ch)
  if script is None or script == "COMBINING":
    return None
  name = unicodedata.name(ch, "")
  if "HIRAGANA" in name or "KATAKANA" in name:
    return "KANA"
  if script in ("CJK", "IDEOGRAPHIC"):  # IDEOGRAPHIC: the iteration mark 々 (佐々木)
    return "HAN"
  if name.startswith("FULLWIDTH LATIN"):
    return "LATIN"
  return script


def script_words(text: str) -> dict[str, int]:
  """{script: number of maximal runs of letters in it}; any non-letter ends a run."""
  words: dict[str, int] = {}
  previous = None
  for ch in text:
    script = _script(ch)
    if script is None and unicodedata.category(ch).startswith("M"):
      continue  # a combining mark extends the run it follows
    if script is not None and script != previous:
      words[script] = words.get(script, 0) + 1
    previous = script
  return words


def detect(text: str) -> str | None:
  """The language of ``text`` by ``RULE``, or None where the rule does not decide."""
  words = script_words(text)
  latin = words.pop("LATIN", 0)
  han = words.pop("HAN", 0)
  if han:
    if "KANA" in words:
      words["KANA"] += han
    elif "HANGUL" in words:
      words["HANGUL"] += han
    else:
      return None  # kanji or hanzi alone: Japanese or Chinese
  if len(words) != 1:
    return None
  (script, count), = words.items()
  if script not in _SCRIPT_LANGUAGE or count <= latin:
    return None
  return _SCRIPT_LANGUAGE[script]


def why_undecided(text: str) -> str:
  """What the rule saw in ``text`` when ``detect`` returns None (for the error message)."""
  words = script_words(text)
  if not words:
    return "it has no letters"
  if set(words) == {"LATIN"}:
    return "it is in Latin script, which en, fi, es, de, ... share"
  if set(words) <= {"HAN", "LATIN"}:
    return "its kanji/hanzi without kana may be Japanese or Chinese"
  unknown = sorted(set(words) - set(_SCRIPT_LANGUAGE) - {"HAN", "LATIN"})
  if unknown:
    return f"clqa knows no language written in {', '.join(s.lower() for s in unknown)} script"
  return f"it mixes scripts ({', '.join(s.lower() for s in sorted(words))})"
