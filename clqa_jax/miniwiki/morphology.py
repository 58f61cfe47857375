"""Case forms and particles for names in templates.

`inflect(name, lang, case, table)` returns `(lead, word, trail)`: `word` is what a link's anchor
text covers, `lead`/`trail` (a Russian preposition, a particle or suffix) stay outside the link. Finnish and Russian inflect the name itself
(piped links such as `[[Suomi|Suomen]]`); Korean particles, Bengali and Telugu case suffixes
follow the linked name (as wikiextractor renders link trails in non-Latin scripts).
"""
from __future__ import annotations

_BN_VOWEL_SIGNS = set("ািীুূৃেৈোৌ")
_BN_INDEPENDENT_VOWELS = set("অআইঈউঊঋএঐওঔ")
_FI_BACK = set("aouAOU")
_RU_HUSHING = set("гкхжшщч")


def _hangul_has_final(ch: str) -> bool:
  code = ord(ch) - 0xAC00
  return 0 <= code < 11172 and code % 28 != 0


def korean_particle(name: str, case: str) -> str:
  """Topic/subject/object particle chosen by whether the last syllable has a final consonant."""
  final = _hangul_has_final(name[-1])
  return {"top": ("은", "는"), "subj": ("이", "가"), "obj": ("을", "를")}[case][0 if final else 1]


def finnish_form(name: str, case: str) -> str:
  """Genitive (-n) and inessive (-ssa/-ssä, by vowel harmony) of a vowel-final name."""
  if case == "gen":
    return name + "n" if name[-1] in "aeiouyäö" else name + "in"
  if case == "loc":
    back = any(c in _FI_BACK for c in name)  # only e/i (neutral) or front vowels: -ssä
    stem = name if name[-1] in "aeiouyäö" else name + "i"
    return stem + ("ssa" if back else "ssä")
  raise ValueError(f"no Finnish case {case!r}")


def russian_form(name: str, case: str) -> str:
  """Genitive and 'в' + prepositional of a name: -а nouns decline, other vowel finals do not."""
  last = name[-1]
  if case == "gen":
    if last == "а":
      return name[:-1] + ("и" if len(name) > 1 and name[-2] in _RU_HUSHING else "ы")
    if last == "я":
      return name[:-1] + "и"
    if last in "иуеоэю":
      return name
    return name + "а"
  if case == "loc":
    if last in "ая":
      return "в " + name[:-1] + "е"
    if last in "иуеоэю":
      return "в " + name
    return "в " + name + "е"
  raise ValueError(f"no Russian case {case!r}")


def bengali_suffix(name: str, case: str) -> str:
  """Genitive -র/-এর and locative -য়/-তে/-এ after a vowel or consonant final."""
  last = name[-1]
  vowel_final = last in _BN_VOWEL_SIGNS or last in _BN_INDEPENDENT_VOWELS
  if case == "gen":
    return "র" if vowel_final else "ের"
  if case == "loc":
    if last == "া":
      return "য়"
    return "তে" if vowel_final else "ে"
  raise ValueError(f"no Bengali case {case!r}")


def inflect(name: str, lang: str, case: str | None,
            table: dict[str, dict[str, str]] | None = None) -> tuple[str, str, str]:
  """The (leading text, anchor word, trailing text) for `name` in grammatical `case` of `lang`."""
  if case is None:
    return "", name, ""
  if lang == "ru" and case == "on":  # "on the river": на + prepositional (tables list it as loc)
    if table and "ru" in table and "loc" in table["ru"]:
      form = table["ru"]["loc"]
    else:
      form = "на " + russian_form(name, "loc")[2:]
  elif table and lang in table and case in table[lang]:
    form = table[lang][case]
  elif lang == "fi":
    form = finnish_form(name, case)
  elif lang == "ru":
    form = russian_form(name, case)
  elif lang == "ko":
    return "", name, korean_particle(name, case)
  elif lang == "bn":
    return "", name, bengali_suffix(name, case)
  elif lang == "te":
    return "", name, {"loc": "లో", "dat": "కు"}[case]
  else:
    raise ValueError(f"language {lang!r} has no case {case!r} in the templates")
  head, sep, rest = form.partition(" ")
  if lang == "ru" and sep and head in ("в", "во", "на"):
    return head + " ", rest, ""
  return "", form, ""
