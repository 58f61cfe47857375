"""ZusammenQA's English QA generation (peer-methods.md 2.5): article splits, answer then
question generation, and the AUG-QA records of the pairs the answer-type filter keeps.

Splitting (2.5.1): text -> NFKC -> ASCII (``unidecode``) -> sentences -> the fewest equal
splits (consecutive sentences, ``numpy.array_split`` sizes) of at most ``max_tokens`` tokens
each, the first ``keep`` of them. Departures: sentences come from the project's splitter
(``textseg.split_sentences``, not pySBD), and tokens are whitespace words (no T5 tokenizer is
assumed); both are per sentence, so every sentence keeps its place in the original article.

Generation (2.5.2), valhalla/t5-base-qa-qg-hl prompts: answers of each sentence from
``extract answers: <split with the sentence between <hl>>`` (replies split on ``<sep>``),
then one question per answer from ``generate question: <split with the answer's first
occurrence in its sentence between <hl>>``. Backends (``QaGenBackend``):
  template  deterministic, no model: answers are the sentence's anchors and numbers, questions
            the sentence with the answer replaced by a wh-phrase ("who" for an anchor to a
            person's article), for tests and the demo;
  http      an OpenAI-compatible server (``http_backend.HttpBackend``, cached): api
            "completions" sends the valhalla prompts as they are (a server of that model),
            api "chat" asks an instruction model the same with the prompt as its input.

Positive passage (2.5.4): the corpus passage holding the answer ([REC], ``positive="passage"``)
or the 100-word window of the article ending at the answer (``positive="window"``, the
official choice; those passages are new, see ``window_pid``).
"""
from __future__ import annotations

import dataclasses
import random
import re
import unicodedata
import zlib
from typing import Any, Iterator, Protocol, Sequence

import numpy as np
from unidecode import unidecode

from clqa_jax.data import wikipedia
from clqa_jax.synth import cloze
from clqa_jax.synth import passages as passages_lib
from clqa_jax.synth import rewrite
from clqa_jax.synth import textseg

HL, SEP = "<hl>", "<sep>"
BACKENDS = ("template", "http")
POSITIVES = ("passage", "window")
_NUMBER = re.compile(r"(?<!\w)\d+(?:[.,]\d+)*(?!\w)")


def ascii_text(text: str) -> str:
  """NFKC, then ASCII transliteration (``unidecode``), as the official preprocessing."""
  return unidecode(unicodedata.normalize("NFKC", text))


@dataclasses.dataclass(frozen=True)
class Sentence:
  """One sentence of an English article: its ASCII text, its span in the article text, and its
  anchors (``(text, target title)`` of every link inside it)."""
  text: str
  start: int
  end: int
  anchors: tuple[tuple[str, str], ...] = ()


def article_sentences(article: wikipedia.Article) -> list[Sentence]:
  out = []
  for s, e in textseg.split_sentences(article.text, article.lang):
    anchors = tuple((article.text[l.start:l.end], l.target) for l in article.links
                    if s <= l.start and l.end <= e)
    out.append(Sentence(ascii_text(article.text[s:e]), s, e, anchors))
  return out


def num_tokens(text: str) -> int:
  """The length measure of a split: whitespace words (see the module docstring)."""
  return len(text.split())


def equal_splits(sentences: Sequence[Sentence], max_tokens: int, keep: int) -> list[list[Sentence]]:
  """The first ``keep`` of the fewest equal splits whose token counts are all <= ``max_tokens``
  (a sentence longer than that alone is a split of its own)."""
  if not sentences:
    return []
  for n in range(1, len(sentences) + 1):
    parts = [list(p) for p in np.array_split(np.arange(len(sentences)), n)]
    if all(sum(num_tokens(sentences[i].text) for i in p) <= max_tokens or len(p) == 1
           for p in parts):
      return [[sentences[i] for i in p] for p in parts][:keep]
  raise AssertionError("unreachable: n = len(sentences) always fits")


def _highlight(sentences: Sequence[Sentence], index: int, start: int | None = None,
               end: int | None = None) -> str:
  """The split's text with sentence ``index`` (or its span ``start:end``) between <hl>."""
  parts = []
  for i, s in enumerate(sentences):
    if i != index:
      parts.append(s.text)
    elif start is None:
      parts.append(f"{HL} {s.text} {HL}")
    else:
      parts.append(f"{s.text[:start]}{HL} {s.text[start:end]} {HL}{s.text[end:]}")
  return " ".join(parts)


def answer_prompt(sentences: Sequence[Sentence], index: int) -> str:
  return "extract answers: " + _highlight(sentences, index)


def question_prompt(sentences: Sequence[Sentence], index: int, start: int, end: int) -> str:
  return "generate question: " + _highlight(sentences, index, start, end)


def parse_answers(reply: str) -> list[str]:
  """The distinct non-empty answers of an ``a <sep> b <sep>`` reply, in order."""
  out: list[str] = []
  for a in reply.replace("<pad>", "").replace("</s>", "").split(SEP):
    a = " ".join(a.split())
    if a and a not in out:
      out.append(a)
  return out


@dataclasses.dataclass(frozen=True)
class AnswerItem:
  sentences: tuple[Sentence, ...]
  index: int


@dataclasses.dataclass(frozen=True)
class QuestionItem:
  sentences: tuple[Sentence, ...]
  index: int
  start: int  # the answer's span in sentences[index].text
  end: int


class QaGenBackend(Protocol):
  name: str

  def extract_answers(self, items: list[AnswerItem]) -> list[list[str]]:
    ...

  def generate_questions(self, items: list[QuestionItem]) -> list[str]:
    ...


class TemplateQaBackend:
  """Answers: the sentence's anchors and numbers, in text order; question: the sentence with the
  answer replaced by "who" (an anchor to one of ``persons``, the person articles), "what year"
  (a 4-digit number after "in"/"born"), "how many" (another number) or "what", fronted when the
  answer opens the sentence."""
  name = "template"

  def __init__(self, persons: frozenset[str] = frozenset()):
    self.persons = persons

  def extract_answers(self, items: list[AnswerItem]) -> list[list[str]]:
    out = []
    for it in items:
      s = it.sentences[it.index]
      spans = [(m.start(), m.group()) for m in _NUMBER.finditer(s.text)]
      for text, _ in s.anchors:
        a = ascii_text(text)
        hit = s.text.find(a)
        if hit >= 0:
          spans.append((hit, a))
      out.append(parse_answers(SEP.join(a for _, a in sorted(spans))))
    return out

  def _wh(self, s: Sentence, start: int, end: int) -> str:
    answer = s.text[start:end]
    if any(ascii_text(t) == answer and target in self.persons for t, target in s.anchors):
      return "who"
    if _NUMBER.fullmatch(answer):
      before = s.text[:start].split()[-1:] or [""]
      if len(answer) == 4 and before[0].lstrip("(").lower() in ("in", "born"):
        return "what year"
      return "how many"
    return "what"

  def generate_questions(self, items: list[QuestionItem]) -> list[str]:
    out = []
    for it in items:
      s = it.sentences[it.index]
      wh = self._wh(s, it.start, it.end)
      rest = s.text[it.end:].strip().rstrip(".!?").strip()
      if it.start == 0:
        question = f"{wh[0].upper()}{wh[1:]} {rest}?"
      else:
        question = f"{s.text[:it.start]}{wh}{s.text[it.end:]}".strip().rstrip(".!?") + "?"
      out.append(" ".join(question.split()))
    return out


_CHAT_ANSWERS = ("Extract the short answer spans (names, places, numbers, dates) of the sentence "
                 "between the <hl> tokens. Reply with the spans only, each followed by <sep>.")
_CHAT_QUESTION = ("Write one English question whose answer is the text between the <hl> tokens, "
                  "using the rest of the passage as context. Reply with the question only.")


class HttpQaBackend:
  """The valhalla prompts through an OpenAI-compatible server (``http_backend.HttpBackend``)."""
  name = "http"

  def __init__(self, http):
    self.http = http

  def _requests(self, system: str, prompts: list[str]) -> list[dict[str, Any]]:
    return [self.http.request([{"role": "system", "content": system},
                               {"role": "user", "content": p}], p) for p in prompts]

  def extract_answers(self, items: list[AnswerItem]) -> list[list[str]]:
    prompts = [answer_prompt(it.sentences, it.index) for it in items]
    return [parse_answers(r) for r in self.http.complete(self._requests(_CHAT_ANSWERS, prompts))]

  def generate_questions(self, items: list[QuestionItem]) -> list[str]:
    prompts = [question_prompt(it.sentences, it.index, it.start, it.end) for it in items]
    return [rewrite.clean_question(r)
            for r in self.http.complete(self._requests(_CHAT_QUESTION, prompts))]


def person_title(article: wikipedia.Article) -> Iterator[str]:
  """The title of an English article about a person: "X was born ...", "X (born 1908) ..."
  with X its title."""
  if re.search(rf"(?<!\w){re.escape(article.title)} (?:was born\b|\(born\b)", article.text):
    yield article.title


def window_pid(article_id: str, start: int) -> str:
  """The id of the window passage ending at character ``start`` of an article (no '-', so
  record ids ``<lang>-<pid>-<n>`` split cleanly)."""
  return f"en_{article_id}_w{start}"


def window_text(text: str, answer_start: int, answer_end: int, words: int = 100) -> str:
  """The ``words`` whitespace tokens of ``text`` ending with the answer's last token."""
  before = text[:answer_end].split()
  return " ".join(before[-words:])


def _positive(article: wikipedia.Article, sentence: Sentence, answer: str, positive: str,
              words: int, spans: list[tuple[int, int]]) -> dict[str, str] | None:
  """The positive passage (``{"pid", "title", "text"}``) of an answer of ``sentence``, None
  when the answer is not in the original sentence (transliteration changed it)."""
  original = article.text[sentence.start:sentence.end]
  hits = cloze.find_answer(original, answer, "en")
  if not hits:
    return None
  start, end = sentence.start + hits[0][0], sentence.start + hits[0][1]
  if positive == "window":
    return {"pid": window_pid(article.id, start), "title": article.title,
            "text": window_text(article.text, start, end, words)}
  k = max(i for i, (s, _) in enumerate(spans) if s <= start)
  s, e = spans[k]
  return {"pid": passages_lib.pid_for("en", article.id, k), "title": article.title,
          "text": " ".join(article.text[s:e].split())}


def generate_pairs(article: wikipedia.Article, backend: QaGenBackend, *, max_tokens: int = 512,
                   keep_splits: int = 3, positive: str = "passage",
                   words: int = 100) -> Iterator[dict[str, Any]]:
  """The (question, answer) pairs of one English article, with their positive passage.

  Record: ``{"id": "<positive pid>-<n>", "question", "answer", "positive": {"pid", "title",
  "text"}, "title"}``; n numbers the pairs of the article. An answer not found again in the
  original sentence yields ``{"dropped": "answer_not_in_text"}`` instead.
  """
  splits = equal_splits(article_sentences(article), max_tokens, keep_splits)
  spans = passages_lib.passage_spans(article.text, "en", words)
  answer_items = [AnswerItem(tuple(split), i) for split in splits for i in range(len(split))]
  answers = backend.extract_answers(answer_items) if answer_items else []
  question_items, found = [], []
  for item, item_answers in zip(answer_items, answers):
    text = item.sentences[item.index].text
    for a in item_answers:
      start = text.find(a)
      if start < 0:
        yield {"dropped": "answer_not_in_text"}
        continue
      question_items.append(QuestionItem(item.sentences, item.index, start, start + len(a)))
      found.append((item.sentences[item.index], a))
  questions = backend.generate_questions(question_items) if question_items else []
  for n, ((sentence, a), q) in enumerate(zip(found, questions)):
    pos = _positive(article, sentence, a, positive, words, spans)
    if pos is None:
      yield {"dropped": "answer_not_in_text"}
      continue
    yield {"id": f"{pos['pid']}-{n}", "question": q, "answer": a, "positive": pos,
           "title": article.title}


def answer_free(text: str, answer: str) -> bool:
  """Negatives must not contain the answer (lower-cased substring test, as the official code)."""
  return answer.lower() not in text.lower()


def draw_negatives(pool: Sequence[tuple[str, str, str]], answer: str, exclude: str, count: int,
                   seed_key: str) -> list[tuple[str, str, str]]:
  """``count`` passages ``(pid, title, text)`` of ``pool`` drawn at random (seeded by
  ``seed_key``, so reruns agree) among those without the answer, other than ``exclude``."""
  rng = random.Random(zlib.crc32(seed_key.encode("utf-8")))
  out: list[tuple[str, str, str]] = []
  order = list(range(len(pool)))
  rng.shuffle(order)
  for i in order:
    pid, title, text = pool[i]
    if pid != exclude and answer_free(text, answer):
      out.append(pool[i])
      if len(out) == count:
        break
  return out


def aug_qa_records(pair: dict[str, Any], rule: str, langs: Sequence[str],
                   pool: Sequence[tuple[str, str, str]],
                   num_negatives: int) -> Iterator[dict[str, Any]]:
  """One AUG-QA record per language (stage-1 schema, ``readers.read_stage1_jsonl``): the
  English question and answer, the positive first in ``teacher_pids`` (score 1) then the
  language's own answer-free negatives (score 0). ``question`` is still English
  (``question_lang``) until a translate stage writes it in ``lang``; ``positive_text`` and
  ``negative_texts`` carry the passages for one that translates them too (AUG-QAP)."""
  pos = pair["positive"]
  pid, n = pos["pid"], pair["id"].rsplit("-", 1)[1]
  for lang in langs:
    negs = draw_negatives(pool, pair["answer"], pid, num_negatives, f"{pair['id']}/{lang}")
    yield {"id": f"{lang}-{pid}-{n}", "lang": lang, "question_en": pair["question"],
           "question": pair["question"], "question_lang": "en", "answers": [pair["answer"]],
           "answer_type": rule, "source_pid": pid,
           "teacher_pids": [pid] + [p for p, _, _ in negs],
           "teacher_scores": [1.0] + [0.0] * len(negs),
           "positive_text": pos["text"], "negative_texts": [t for _, _, t in negs]}
