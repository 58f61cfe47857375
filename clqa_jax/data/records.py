"""The records every reader returns: passages, questions, raw MKQA and our synthetic data.

Plain frozen dataclasses with no TensorFlow and no I/O, so that evaluation imports them cheaply.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Passage:
  """One row of a DPR passage TSV."""
  pid: str
  text: str
  title: str


@dataclasses.dataclass(frozen=True)
class Question:
  """One question of a QA dataset (XOR-TyDi, NQ, one MKQA language) or typed by a user.

  Attributes:
    qid: the dataset's id (MKQA: the ``example_id``, shared by the languages of a query).
    lang: the question's language.
    question: the question text ("" in gold files read without questions).
    answers: the gold answers; () when there are none (test files, unanswerable MKQA).
    answer_types: MKQA's answer types of this language, in file order; () elsewhere.
  """
  qid: str
  lang: str
  question: str
  answers: tuple[str, ...]
  answer_types: tuple[str, ...] = ()

  @property
  def key(self) -> str:
    """Unique over languages (MKQA ids repeat across languages)."""
    return f"{self.lang}/{self.qid}"


@dataclasses.dataclass(frozen=True)
class MkqaAnswer:
  """One answer of one MKQA language; ``text`` None is MKQA's "no answer"."""
  type: str
  text: str | None
  aliases: tuple[str, ...]
  entity: str | None


# The gold string the official MKQA evaluator uses for an answer whose text is null.
MKQA_NO_ANSWER = ""


@dataclasses.dataclass(frozen=True)
class MkqaExample:
  """One raw MKQA record: a query in every language and its answers per language.

  Gold answers follow the official evaluator (apple/ml-mkqa ``mkqa_eval.py``,
  ``read_annotations``): for each answer of the language, its ``text`` (a null text becomes
  ``""``, the official "No Answer") followed by its ``aliases``; the resulting strings are a
  set (here deduplicated in file order: scoring takes the max over golds, so order is
  irrelevant). Every answer type is read the same way: ``binary`` answers have the text "yes" or
  "no"; ``number``, ``date``, ``number_with_unit``, ``entity``, ``short_phrase`` their text and
  aliases; ``unanswerable`` and ``long_answer`` carry a null text. A question is answerable
  unless its gold set is exactly ``{""}``.
  """
  example_id: str
  query: str
  queries: dict[str, str]
  answers: dict[str, tuple[MkqaAnswer, ...]]

  def gold_answers(self, lang: str) -> tuple[str, ...]:
    """The official gold set of ``lang`` (``("",)`` when unanswerable)."""
    out: list[str] = []
    for a in self.answers[lang]:
      for s in (a.text if a.text is not None else MKQA_NO_ANSWER, *a.aliases):
        if s not in out:
          out.append(s)
    return tuple(out)

  def is_answerable(self, lang: str) -> bool:
    return self.gold_answers(lang) != (MKQA_NO_ANSWER,)

  def to_question(self, lang: str) -> Question:
    """The ``lang`` question: answers are the gold set, () when unanswerable.

    An answerable question keeps ``""`` among its answers when one of its answers has a null
    text, as the official evaluator does (an empty prediction then matches).
    """
    answers = self.gold_answers(lang) if self.is_answerable(lang) else ()
    return Question(qid=self.example_id, lang=lang, question=self.queries[lang], answers=answers,
                    answer_types=tuple(a.type for a in self.answers[lang]))


@dataclasses.dataclass(frozen=True)
class Stage1Record:
  id: str
  lang: str
  question_en: str
  question: str
  answers: tuple[str, ...]
  source_pid: str
  teacher_pids: tuple[str, ...]
  teacher_scores: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class Stage2Record:
  id: str
  lang: str
  question: str
  answers: tuple[str, ...]
  source_pid: str
  answer_lang: str
  cloze: str
  rewrite_backend: str
