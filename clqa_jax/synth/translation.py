"""Translation backends: ``translate(texts, source_lang, target_lang) -> list[str]``, one text
per input, in order; a text that could not be translated comes back as "" (callers count it).

- ``DictionaryTranslator``: word by word through MUSE dictionaries ``en-<lang>.txt``
  (``data/code_switch.py`` reads them), no model: English -> xx through the dictionary,
  xx -> English through its inversion, xx -> yy through English. The longest dictionary entry
  starting at a token wins (entries may be phrases, e.g. linked article titles); unknown tokens
  are kept.
- ``HttpTranslator``: an OpenAI-compatible endpoint (``http_backend.HttpBackend``: batched,
  retried, cached), asked for the translation only.
- ``Seq2SeqTranslator``: a local exported checkpoint of ours, decoded with the synthesis
  prompt -> text path (``rewrite.Seq2SeqBackend.from_params``) on T5's prompt
  ``translate <Source> to <Target>: <text>``.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol, Sequence

from clqa_jax import fileio
from clqa_jax.data import code_switch
from clqa_jax.synth import exemplars
from clqa_jax.synth import rewrite

BACKENDS = ("dictionary", "http", "seq2seq")


class Translator(Protocol):
  name: str

  def translate(self, texts: list[str], source_lang: str, target_lang: str) -> list[str]:
    ...


def language_name(lang: str) -> str:
  if lang not in exemplars.LANGUAGE_NAMES:
    raise ValueError(f"no language name for {lang!r} (known: {sorted(exemplars.LANGUAGE_NAMES)})")
  return exemplars.LANGUAGE_NAMES[lang]


def first_line(reply: str) -> str:
  """The first non-empty line of a model reply, without surrounding quotes ("" if none)."""
  for line in reply.strip().splitlines():
    if line.strip():
      return line.strip().strip("\"'“”«»")
  return ""


class DictionaryTranslator:
  """Word-by-word translation through English-to-xx dictionaries (see the module docstring).

  Args:
    dictionaries: lang -> {English entry -> its translations}; the first translation is used
      (deterministic), and an inverted entry maps back to the first English entry having it.
  """
  name = "dictionary"

  def __init__(self, dictionaries: Mapping[str, Mapping[str, Sequence[str]]]):
    self.to_lang = {lang: {src: list(tgts)[0] for src, tgts in d.items() if tgts}
                    for lang, d in dictionaries.items()}
    self.from_lang: dict[str, dict[str, str]] = {}
    for lang, d in self.to_lang.items():
      inverse: dict[str, str] = {}
      for src, tgt in d.items():
        inverse.setdefault(tgt, src)
      self.from_lang[lang] = inverse

  @classmethod
  def from_directory(cls, directory: str, langs: Sequence[str]) -> "DictionaryTranslator":
    """The MUSE files ``<directory>/en-<lang>.txt`` of every non-English language of ``langs``."""
    dictionaries = {}
    for lang in langs:
      if lang == "en":
        continue
      path = code_switch.dictionary_path(directory, lang)
      if not fileio.exists(path):
        raise FileNotFoundError(f"{path}: no en-{lang} dictionary for the dictionary translator "
                                "(SynthConfig.translate_dictionaries names the folder)")
      dictionaries[lang] = code_switch.load_dictionary(path)
    return cls(dictionaries)

  def _table(self, lang: str, to_english: bool) -> dict[str, str]:
    tables = self.from_lang if to_english else self.to_lang
    if lang not in tables:
      raise ValueError(f"the dictionary translator has no en-{lang} dictionary "
                       f"(it has {sorted(tables)})")
    return tables[lang]

  @staticmethod
  def _lookup(table: Mapping[str, str], phrase: str) -> str | None:
    for variant in (phrase, phrase.lower(), phrase.title(), phrase.upper()):
      if variant in table:
        return table[variant]
    return None

  def _translate_one(self, text: str, table: Mapping[str, str], longest: int) -> str:
    tokens, out, i = text.split(), [], 0
    while i < len(tokens):
      for n in range(min(longest, len(tokens) - i), 0, -1):
        # Trailing punctuation stays outside the lookup (and after the translation).
        phrase = " ".join(tokens[i:i + n])
        core = phrase.rstrip("?.!,;:？。")
        hit = self._lookup(table, core) if core else None
        if hit is not None:
          out.append(hit + phrase[len(core):])
          i += n
          break
      else:
        out.append(tokens[i])
        i += 1
    return " ".join(out)

  def _step(self, texts: list[str], table: Mapping[str, str]) -> list[str]:
    longest = max((len(k.split()) for k in table), default=1)
    return [self._translate_one(t, table, longest) for t in texts]

  def translate(self, texts: list[str], source_lang: str, target_lang: str) -> list[str]:
    if source_lang == target_lang:
      return list(texts)
    if source_lang != "en":
      texts = self._step(texts, self._table(source_lang, to_english=True))
    if target_lang != "en":
      texts = self._step(texts, self._table(target_lang, to_english=False))
    return texts


def chat_messages(text: str, source_lang: str, target_lang: str) -> list[dict[str, str]]:
  return [{"role": "system",
           "content": f"Translate the user's {language_name(source_lang)} text into "
                      f"{language_name(target_lang)}. Reply with the translation only."},
          {"role": "user", "content": text}]


def completion_prompt(text: str, source_lang: str, target_lang: str) -> str:
  return (f"Translate from {language_name(source_lang)} to {language_name(target_lang)}.\n"
          f"{language_name(source_lang)}: {text}\n{language_name(target_lang)}:")


class HttpTranslator:
  """Translations from an OpenAI-compatible endpoint (``http_backend.HttpBackend``: its cache,
  retries and batching); the reply's first line is the translation."""
  name = "http"

  def __init__(self, backend: Any):
    self.backend = backend

  def translate(self, texts: list[str], source_lang: str, target_lang: str) -> list[str]:
    if source_lang == target_lang:
      return list(texts)
    reqs = [self.backend.request(chat_messages(t, source_lang, target_lang),
                                 completion_prompt(t, source_lang, target_lang)) for t in texts]
    return [first_line(r) for r in self.backend.complete(reqs)]


def seq2seq_prompt(text: str, source_lang: str, target_lang: str) -> str:
  """T5's translation prompt."""
  return f"translate {language_name(source_lang)} to {language_name(target_lang)}: {text}"


class Seq2SeqTranslator:
  """Translations decoded by a local checkpoint: ``generate(prompts) -> texts`` (see
  ``from_checkpoint``), ``batch_size`` prompts at a time."""
  name = "seq2seq"

  def __init__(self, generate: Callable[[list[str]], list[str]], batch_size: int = 16):
    self.generate = generate
    self.batch_size = batch_size

  @classmethod
  def from_checkpoint(cls, path: str, loader: Callable[[str], Any], batch_size: int = 16,
                      max_output_len: int = 64) -> "Seq2SeqTranslator":
    """``loader(path) -> (config, params, vocab_path)`` (``SynthConfig.checkpoint_loader``),
    decoded through ``rewrite.Seq2SeqBackend.from_params`` (greedy)."""
    config, params, vocab = loader(path)
    backend = rewrite.Seq2SeqBackend.from_params(config, params, vocab,
                                                 max_output_len=max_output_len,
                                                 batch_size=batch_size)
    return cls(backend.generate, batch_size)

  def translate(self, texts: list[str], source_lang: str, target_lang: str) -> list[str]:
    if source_lang == target_lang:
      return list(texts)
    prompts = [seq2seq_prompt(t, source_lang, target_lang) for t in texts]
    out: list[str] = []
    for i in range(0, len(prompts), self.batch_size):
      out += [first_line(t) for t in self.generate(prompts[i:i + self.batch_size])]
    return out


# A record field -> the record field holding its language (``lang`` when the record lacks it).
FIELD_LANGUAGE = {"question": "lang", "answers": "answer_lang", "passage": "passage_lang"}
TRANSLATIONS = "translations"


def field_language(record: Mapping[str, Any], field: str) -> str:
  """The language of ``record[field]``: its ``FIELD_LANGUAGE`` field, else the record's lang."""
  return record.get(FIELD_LANGUAGE.get(field, "lang"), record["lang"])


def translate_records(records: list[dict], fields: Sequence[str], langs: Sequence[str],
                      translator: Translator) -> tuple[list[dict], list[str]]:
  """Each record with ``translations``: {lang: {field: translated value}} for every lang of
  ``langs`` other than the record's own; a field is a string or a list of strings (answers).
  One translator call per (field, source, target); a field already in the target language is
  copied. A non-empty text that comes back empty stays
  "" and is reported in the second result as ``"<field>.<target>"`` (one entry per text).
  """
  out = [{**r, TRANSLATIONS: {l: {} for l in langs if l != r["lang"]}} for r in records]
  # (field, source, target) -> [(record index, position in a list field or None, text)]
  groups: dict[tuple[str, str, str], list[tuple[int, int | None, str]]] = {}
  for i, r in enumerate(records):
    for field in fields:
      value, source = r[field], field_language(r, field)
      for target in out[i][TRANSLATIONS]:
        if isinstance(value, str):
          groups.setdefault((field, source, target), []).append((i, None, value))
        else:
          out[i][TRANSLATIONS][target][field] = [""] * len(value)
          for j, text in enumerate(value):
            groups.setdefault((field, source, target), []).append((i, j, text))
  failures: list[str] = []
  for (field, source, target), items in sorted(groups.items()):
    originals = [t for _, _, t in items]
    texts = originals if source == target else translator.translate(originals, source, target)
    if len(texts) != len(items):
      raise ValueError(f"translation backend {translator.name!r} returned {len(texts)} texts "
                       f"for {len(items)} ({field}, {source}->{target})")
    for (i, j, original), text in zip(items, texts):
      if original.strip() and not text.strip():
        failures.append(f"{field}.{target}")
        text = ""
      slot = out[i][TRANSLATIONS][target]
      if j is None:
        slot[field] = text
      else:
        slot[field][j] = text
  return out, failures
