"""XOR-Retrieve R@kt with the semantics of the official ``eval_xor_retrieve.py``.

For each prediction (a question with its ranked passages) whose id is in the gold file:
1. answers = gold answers minus the exact strings "yes" and "no"; none left -> not counted;
2. the passages' *text* (never the title) is word-tokenized (``word_tokenize``) and the tokens are
   concatenated in rank order, stopping once there are >= k*1000, then cut to exactly k*1000;
3. hit when any answer is a raw, case-sensitive substring of ``" ".join(tokens)``.
Per-language recall = hits / counted x 100 (the language is the prediction's ``lang``); the
reported number is the unweighted mean over the languages with at least one counted question.
As in the official script, gold questions absent from the predictions are not counted (their
number is reported in ``info``), and predictions for unknown ids are ignored.
"""
from __future__ import annotations

import dataclasses
import functools
import statistics
from typing import Callable, Sequence

from clqa_jax.data.errors import DataFormatError
from clqa_jax.data.records import Question
from clqa_jax.eval import inputs
from clqa_jax.eval import table
from clqa_jax.eval import word_tokenize

DEFAULT_KS = (2, 5, 100)
YES_NO = ("yes", "no")


@dataclasses.dataclass(frozen=True)
class RetrievalPrediction:
  """Ranked passage texts for one question (``lang`` None: take the gold file's).

  ``passage_ids``: the ranked passage ids (the files' optional ``pids``), None when absent.
  """
  qid: str
  lang: str | None
  passage_texts: list[str]
  passage_ids: list[str] | None = None


@functools.lru_cache(maxsize=1 << 18)
def _cached_tokens(text: str) -> tuple[str, ...]:
  return tuple(word_tokenize.word_tokenize(text))


def concatenated_tokens(passage_texts: Sequence[str], max_tokens: int,
                        tokenize: Callable[[str], Sequence[str]] | None = None) -> list[str]:
  """Tokens of the passages in rank order, cut to exactly ``max_tokens``."""
  tokenize = tokenize or _cached_tokens
  tokens: list[str] = []
  for text in passage_texts:
    tokens.extend(tokenize(text))
    if len(tokens) >= max_tokens:
      break
  return tokens[:max_tokens]


def span_answers(answers: Sequence[str] | str) -> list[str]:
  """The answers R@kt looks for: all but "yes"/"no" (a bare string is iterated, as officially)."""
  return [answer for answer in answers if answer not in YES_NO]


def hits_at_k(passage_texts: Sequence[str], answers: Sequence[str],
              ks: Sequence[int] = DEFAULT_KS,
              tokenize: Callable[[str], Sequence[str]] | None = None) -> dict[int, bool]:
  """{k: any answer is a substring of the first k*1000 tokens joined by spaces}."""
  tokens = concatenated_tokens(passage_texts, max(ks) * 1000, tokenize)
  hits = {}
  for k in ks:
    concat_string = " ".join(tokens[:k * 1000])
    hits[k] = any(answer in concat_string for answer in answers)
  return hits


def _question_hits(job: tuple[Sequence[str], list[str], tuple[int, ...]]) -> dict[int, bool]:
  passage_texts, answers, ks = job
  return hits_at_k(passage_texts, answers, ks)


def evaluate_xor_retrieve(predictions: Sequence[RetrievalPrediction],
                          gold: Sequence[Question],
                          ks: Sequence[int] = DEFAULT_KS, num_workers: int = 1,
                          progress: bool = False) -> table.LanguageTable:
  """R@kt per language (x100) and their macro average.

  Args:
    predictions: ranked passage texts per question, in any order.
    gold: the gold questions (answers and language).
    ks: evaluate R@{k}kt, i.e. the first k*1000 word tokens.
    num_workers: processes that tokenize (tokenization is the cost: ~1.7k passages/s/core).
    progress: show a tqdm bar (rate, ETA) on stderr.
  """
  ks = tuple(ks)
  gold_by_id = {q.qid: q for q in gold}
  langs: list[str] = []
  jobs = []
  skipped_yes_no = unknown_ids = 0
  seen = set()
  for pred in predictions:
    question = gold_by_id.get(pred.qid)
    if question is None:
      unknown_ids += 1
      continue
    seen.add(pred.qid)
    answers = span_answers(question.answers)
    if not answers:
      skipped_yes_no += 1
      continue
    langs.append(pred.lang if pred.lang is not None else question.lang)
    jobs.append((pred.passage_texts, answers, ks))
  if num_workers > 1 and len(jobs) > 1:
    import multiprocessing
    with multiprocessing.get_context("spawn").Pool(num_workers) as pool:
      results = list(_progress(pool.imap(_question_hits, jobs, chunksize=16), len(jobs),
                               progress))
  else:
    results = [_question_hits(job) for job in _progress(jobs, len(jobs), progress)]
  counts: dict[str, int] = {}
  hits: dict[str, dict[int, int]] = {}
  for lang, question_hits in zip(langs, results):
    counts[lang] = counts.get(lang, 0) + 1
    lang_hits = hits.setdefault(lang, {k: 0 for k in ks})
    for k, hit in question_hits.items():
      lang_hits[k] += int(hit)
  metrics = tuple(f"R@{k}kt" for k in ks)
  scores = {lang: {f"R@{k}kt": hits[lang][k] / counts[lang] * 100 for k in ks}
            for lang in counts}
  macro = {m: statistics.mean(scores[lang][m] for lang in scores) if scores else 0.0
           for m in metrics}
  info = {"tokenizer": word_tokenize.tokenizer_name(),
          "skipped_yes_no_only": skipped_yes_no,
          "predictions_with_unknown_id": unknown_ids,
          "gold_questions_without_prediction": sum(q.qid not in seen for q in gold)}
  return table.LanguageTable("xor-retrieve", metrics, scores, counts, macro, info)


def _progress(iterable, total: int, enabled: bool):
  if not enabled:
    return iterable
  import tqdm
  return tqdm.tqdm(iterable, total=total, desc="R@kt", unit="question")


def read_retrieve_predictions(path: str,
                              with_passage_ids: bool = False) -> list[RetrievalPrediction]:
  """The official prediction JSON: [{"id", "lang", "ctxs": [text | {"text", ...}, ...]}, ...].

  with_passage_ids: also read ``pids`` (``clqa eval`` / ``clqa bm25`` write one), the passage ids
  of ``ctxs`` rank for rank, into ``passage_ids`` (None where absent). Off, ``pids`` is ignored,
  as the official script ignores it.
  """
  data = inputs.read_json(path)
  if not isinstance(data, list):
    raise DataFormatError(path, None, None,
                                'must be a JSON list of {"id", "lang", "ctxs"} objects')
  predictions = []
  for index, item in enumerate(data):
    where = f"[{index}]."
    if not isinstance(item, dict):
      raise DataFormatError(path, None, f"[{index}]", "must be an object")
    for field in ("id", "ctxs"):
      if field not in item:
        raise DataFormatError(path, None, where + field, "is missing")
    qid = inputs.qid_string(item["id"], path, None, where + "id")
    lang = item.get("lang")
    if lang is not None and not isinstance(lang, str):
      raise DataFormatError(path, None, where + "lang", f"must be a string, got {lang!r}")
    ctxs = item["ctxs"]
    if not isinstance(ctxs, list):
      raise DataFormatError(path, None, where + "ctxs", "must be a list")
    texts = []
    for j, ctx in enumerate(ctxs):
      if isinstance(ctx, dict):
        ctx = ctx.get("text")  # the passage text only: titles never count
      if not isinstance(ctx, str):
        raise DataFormatError(path, None, f"{where}ctxs[{j}]",
                                    "must be a passage text or an object with a string 'text'")
      texts.append(ctx)
    pids = None
    if with_passage_ids and "pids" in item:
      pids = item["pids"]
      if not isinstance(pids, list) or len(pids) != len(texts):
        raise DataFormatError(path, None, where + "pids",
                              f"must be a list of {len(texts)} ids (one per ctxs entry)")
      pids = [inputs.qid_string(pid, path, None, f"{where}pids[{j}]")
              for j, pid in enumerate(pids)]
    predictions.append(RetrievalPrediction(qid, lang, texts, pids))
  return predictions
