"""Writing systems: which script a language uses, script detection, digit normalisation."""
from __future__ import annotations

import unicodedata

# Script name (as it appears in unicodedata.name) expected for each language's letters.
LANG_SCRIPT = {
    "en": "LATIN", "fi": "LATIN", "de": "LATIN", "es": "LATIN", "fr": "LATIN", "it": "LATIN",
    "ar": "ARABIC", "bn": "BENGALI", "ja": "CJK", "ko": "HANGUL", "ru": "CYRILLIC",
    "te": "TELUGU", "ta": "TAMIL", "ml": "MALAYALAM", "kn": "KANNADA", "zh": "CJK", "th": "THAI",
}
# Languages written without spaces between words: passages and matching work on characters.
NO_SPACE_LANGS = frozenset({"ja", "zh", "th", "km", "lo", "my"})


def letter_script(ch: str) -> str | None:
  """The script of a letter ("LATIN", "CJK", "HANGUL", ...) or None for non-letters."""
  if not unicodedata.category(ch).startswith("L") and unicodedata.category(ch) not in ("Mn", "Mc"):
    return None
  name = unicodedata.name(ch, "")
  if not name:
    return None
  if name.startswith(("CJK", "HIRAGANA", "KATAKANA")):
    return "CJK"
  if name.startswith("HANGUL"):
    return "HANGUL"
  return name.split(" ", 1)[0]


def script_fraction(text: str, lang: str) -> float:
  """Fraction of the letters of `text` written in `lang`'s script (1.0 when no letters)."""
  want = LANG_SCRIPT.get(lang)
  if want is None:
    raise ValueError(f"unknown script for language {lang!r}")
  scripts = [s for s in map(letter_script, text) if s is not None]
  if not scripts:
    return 1.0
  return sum(s == want for s in scripts) / len(scripts)


def normalize_digits(text: str) -> str:
  """Maps every Unicode decimal digit to ASCII (for language-independent number matching)."""
  return "".join(str(unicodedata.digit(c)) if c.isdigit() and unicodedata.digit(c, None) is not None
                 else c for c in text)
