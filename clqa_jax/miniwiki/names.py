"""Synthetic names of the mini encyclopedia: consonant-vowel syllables written in each script,
and digits written the way each language's Wikipedia writes them.

Synthetic names are built from CV syllables over 10 consonants and 5 vowels; each script renders a
syllable the way that script writes a foreign name (katakana for Japanese, composed Hangul for
Korean, consonant + vowel sign for Bengali and Telugu, consonant + long vowel letter for Arabic).
"""
from __future__ import annotations

CONSONANTS = "ktmnsrldbp"
VOWELS = "aiueo"

_KATAKANA = {
    "k": "カキクケコ", "t": "タティトゥテト", "m": "マミムメモ", "n": "ナニヌネノ", "s": "サシスセソ",
    "r": "ラリルレロ", "l": "ラリルレロ", "d": "ダディドゥデド", "b": "バビブベボ", "p": "パピプペポ",
}
_HANGUL_INITIAL = {"k": 15, "t": 16, "m": 6, "n": 2, "s": 9, "r": 5, "l": 5, "d": 3, "b": 7, "p": 17}
_HANGUL_MEDIAL = {"a": 0, "e": 5, "i": 20, "o": 8, "u": 13}
_CYRILLIC_C = dict(zip(CONSONANTS, "ктмнсрлдбп"))
_CYRILLIC_V = dict(zip(VOWELS, "аиуео"))
_ARABIC_C = dict(zip(CONSONANTS, "كتمنسرلدبب"))
_ARABIC_V = {"a": "ا", "i": "ي", "u": "و", "e": "ي", "o": "و"}
_BENGALI_C = dict(zip(CONSONANTS, "কতমনসরলদবপ"))
_BENGALI_V = {"a": "া", "i": "ি", "u": "ু", "e": "ে", "o": "ো"}
_TELUGU_C = dict(zip(CONSONANTS, "కతమనసరలదబప"))
_TELUGU_V = {"a": "ా", "i": "ి", "u": "ు", "e": "ె", "o": "ొ"}


def _katakana(c: str, v: str) -> str:
  table = _KATAKANA[c]
  if len(table) == 5:
    return table[VOWELS.index(v)]
  # t/d rows: ta ti tu te to as タ ティ トゥ テ ト (2-char cells for ti, tu).
  cells = {"a": table[0], "i": table[1:3], "u": table[3:5], "e": table[5], "o": table[6]}
  return cells[v]


def transliterate_syllables(syllables: list[str], lang: str) -> str:
  """Renders CV syllables (e.g. ["ka", "lo"]) as one word in `lang`'s script."""
  out = []
  for syl in syllables:
    c, v = syl[0], syl[1]
    if lang in ("en", "fi"):
      out.append(syl)
    elif lang == "ja":
      out.append(_katakana(c, v))
    elif lang == "ko":
      out.append(chr(0xAC00 + (_HANGUL_INITIAL[c] * 21 + _HANGUL_MEDIAL[v]) * 28))
    elif lang == "ru":
      out.append(_CYRILLIC_C[c] + _CYRILLIC_V[v])
    elif lang == "ar":
      out.append(_ARABIC_C[c] + _ARABIC_V[v])
    elif lang == "bn":
      out.append(_BENGALI_C[c] + _BENGALI_V[v])
    elif lang == "te":
      out.append(_TELUGU_C[c] + _TELUGU_V[v])
    else:
      raise ValueError(f"no transliteration for language {lang!r}")
  word = "".join(out)
  if lang in ("en", "fi", "ru"):
    word = word[:1].upper() + word[1:]
  return word


def digits_for(lang: str, text: str) -> str:
  """Writes ASCII digits the way `lang`'s Wikipedia does (Bengali digits for bn)."""
  if lang == "bn":
    return text.translate(str.maketrans("0123456789", "০১২৩৪৫৬৭৮৯"))
  return text
