"""SeqIO preprocessors: the input templates, normalisation and length limits of the spec.

Deterministic steps (filtering, leak guard, normalisation, templates, question tokenisation) run
before ``CacheDatasetPlaceholder``; only the per-epoch answer choice and answer tokenisation run
after it. Limits: ``question: {q}`` without EOS, at most 50 tokens; answer with EOS, at most 50.
"""
from __future__ import annotations

import numpy as np
import seqio
import tensorflow as tf

from clqa_jax.data import code_switch
from clqa_jax.data import formats
from clqa_jax.data import text_normalize

QUERY_MAX_TOKENS = 50
PASSAGE_MAX_TOKENS = 200
PAIR_MAX_TOKENS = 250
ANSWER_MAX_TOKENS = 50
CLOZE_MASK = "_X_"

SEQUENCE_LENGTH = {"question": QUERY_MAX_TOKENS, "question_en": QUERY_MAX_TOKENS,
                   "question_translated": QUERY_MAX_TOKENS, "answer": ANSWER_MAX_TOKENS}


def _char_class(chars: str) -> str:
  return "[" + "".join(f"\\x{{{ord(c):04x}}}" for c in chars) + "]"


# (RE2 pattern, replacement) pairs reproducing text_normalize.normalize in the TF graph.
_TF_NORMALIZE_RULES = (
    (_char_class(text_normalize._CONTROLS_REMOVED + "\u00ad"), ""),
    (_char_class(text_normalize._TO_SPACE), " "),
    (_char_class(text_normalize._HYPHENS_AND_MINUSES), "-"),
    (_char_class(text_normalize._DOUBLE_QUOTES), '"'),
    (_char_class(text_normalize._SINGLE_QUOTES + "\u2032\u2035"), "'"),
    (_char_class("\u2033\u2036"), "''"),
    (_char_class("\u2034\u2037"), "'''"),
    ("\\x{2057}", "''''"),
    ("\\x{2026}", "..."),
    (" \\. \\. \\. ", " ... "),
    (_char_class(text_normalize._SLASHES), "/"),
    (_char_class(text_normalize._TILDES), "~"),
)


def normalize_tf(text: tf.Tensor) -> tf.Tensor:
  """``text_normalize.normalize`` on a tf.string tensor (same output, graph-only)."""
  for pattern, replacement in _TF_NORMALIZE_RULES:
    text = tf.strings.regex_replace(text, pattern, replacement)
  return text


def replace_literal(text: tf.Tensor, old: tf.Tensor, new: str) -> tf.Tensor:
  """Python's ``text.replace(old, new)`` for scalar strings (``old`` taken literally)."""
  parts = tf.strings.split(text, sep=old)
  return tf.cond(tf.strings.length(old) > 0,
                 lambda: tf.strings.reduce_join(parts, separator=new),
                 lambda: text)


def filter_by_lang(dataset: tf.data.Dataset, lang: str) -> tf.data.Dataset:
  """Keeps the examples of one language (XOR files hold all seven)."""
  return dataset.filter(lambda x: tf.equal(x["lang"], lang))


def filter_answerable(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """Drops examples without a gold answer (MKQA unanswerable, test files)."""
  return dataset.filter(lambda x: tf.size(x["answers"]) > 0)


def question_template(question: tf.Tensor, lang: tf.Tensor) -> tf.Tensor:
  """``question: {q}``; non-English questions normalised first (official normalize_text)."""
  q = tf.strings.strip(question)
  q = tf.cond(tf.equal(lang, "en"), lambda: q, lambda: normalize_tf(q))
  return tf.strings.join([formats.QUESTION_PREFIX, q])


def _shuffle(values: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """A seeded permutation of a 1-D tensor."""
  return tf.gather(values, tf.argsort(tf.random.stateless_uniform(tf.shape(values), seed)))


def _random_segmentation(num_items: tf.Tensor, num_segments: tf.Tensor,
                         seed: tf.Tensor) -> tf.Tensor:
  """int32 [num_segments]: the lengths of a uniformly random split of ``num_items`` items into
  ``num_segments`` non-empty runs (T5's ``_random_segmentation``)."""
  dividers = tf.concat([tf.ones([num_segments - 1], tf.int32),
                        tf.zeros([num_items - num_segments], tf.int32)], axis=0)
  first_in_segment = tf.pad(_shuffle(dividers, seed), [[1, 0]])
  segment_id = tf.cumsum(first_in_segment)
  return tf.math.unsorted_segment_sum(tf.ones([num_items], tf.int32), segment_id, num_segments)


def random_spans_noise_mask(length: tf.Tensor, noise_density: float,
                            mean_noise_span_length: float, seed: tf.Tensor) -> tf.Tensor:
  """bool [length]: T5's span-corruption noise mask. round(length * noise_density) noise tokens
  (at least 1, at most length - 1) in round(noise / mean_noise_span_length) spans (at least
  1); noise and non-noise span lengths are random segmentations, interleaved starting with
  non-noise, so the first token is never noise. ``seed`` int32 [2] (two derived seeds)."""
  orig_length = length
  length = tf.maximum(length, 2)  # as T5: a 1-token sequence gets a mask of its first token
  num_noise = tf.cast(tf.round(tf.cast(length, tf.float32) * noise_density), tf.int32)
  num_noise = tf.clip_by_value(num_noise, 1, length - 1)
  num_spans = tf.maximum(tf.cast(tf.round(tf.cast(num_noise, tf.float32)
                                          / mean_noise_span_length), tf.int32), 1)
  seeds = tf.random.experimental.stateless_split(seed, 2)
  noise_lengths = _random_segmentation(num_noise, num_spans, seeds[0])
  nonnoise_lengths = _random_segmentation(length - num_noise, num_spans, seeds[1])
  interleaved = tf.reshape(tf.stack([nonnoise_lengths, noise_lengths], axis=1), [num_spans * 2])
  span_starts = tf.cumsum(interleaved)[:-1]
  start_indicator = tf.math.unsorted_segment_sum(tf.ones_like(span_starts), span_starts, length)
  is_noise = tf.equal(tf.math.floormod(tf.cumsum(start_indicator), 2), 1)
  return is_noise[:orig_length]


def _spans_to_sentinels(tokens: tf.Tensor, mask: tf.Tensor, vocab_size: int) -> tf.Tensor:
  """``tokens`` with each run of masked tokens replaced by one sentinel, the i-th (from 0)
  being ``vocab_size - 1 - i`` (T5's ``noise_span_to_unique_sentinel``)."""
  previous = tf.pad(mask[:-1], [[1, 0]])
  first = tf.logical_and(mask, tf.logical_not(previous))
  later = tf.logical_and(mask, previous)
  sentinels = vocab_size - tf.cumsum(tf.cast(first, tokens.dtype))
  return tf.boolean_mask(tf.where(first, sentinels, tokens), tf.logical_not(later))


def span_corruption(dataset: tf.data.Dataset, vocab_size: int, eos_id: int = 1,
                    noise_density: float = 0.15, mean_noise_span_length: float = 3.0,
                    feature: str = "targets") -> tf.data.Dataset:
  """T5's span corruption (mT5 pre-training; peer-methods.md 2.4) of ``x[feature]`` (int32 [L],
  without EOS): ``inputs`` = the text with each noise span replaced by a sentinel, ``targets``
  = each sentinel followed by its span (the non-noise runs replaced by sentinels), both ending
  with EOS. Sentinels count down from the last id of the vocabulary (``vocab_size - 1``), as
  mT5 uses its SentencePiece model's last pieces. The masks are drawn per example and epoch
  from the seqio map seed."""

  @seqio.map_over_dataset(num_seeds=1)
  def corrupt(x, seed):
    x = dict(x)
    tokens = x[feature]
    mask = random_spans_noise_mask(tf.size(tokens), noise_density, mean_noise_span_length, seed)
    eos = tf.constant([eos_id], tokens.dtype)
    x["inputs"] = tf.concat([_spans_to_sentinels(tokens, mask, vocab_size), eos], axis=0)
    x["targets"] = tf.concat([_spans_to_sentinels(tokens, tf.logical_not(mask), vocab_size), eos],
                             axis=0)
    return x

  return corrupt(dataset)


@seqio.map_over_dataset
def format_question(x):
  """``question_template`` of the example's question."""
  x = dict(x)
  x["question"] = question_template(x["question"], x["lang"])
  return x


@seqio.map_over_dataset
def format_parallel_questions(x):
  """Stage 1: the English cloze query and its parallel query, leak-guarded and normalised.

  As in CLASS: if the (English) answer occurs in the parallel query it is replaced with
  ``_X_``; the parallel query is then normalised; both get the ``question:`` template.
  """
  x = dict(x)
  guarded = replace_literal(x["question"], x["answers"][0], CLOZE_MASK)
  x["question"] = tf.strings.join([formats.QUESTION_PREFIX,
                                   normalize_tf(tf.strings.strip(guarded))])
  x["question_en"] = tf.strings.join([formats.QUESTION_PREFIX,
                                      tf.strings.strip(x["question_en"])])
  return x


def tokenize_questions(dataset: tf.data.Dataset, output_features,
                       features: tuple[str, ...] = ("question", "question_en")
                       ) -> tf.data.Dataset:
  """Tokenises ``question`` (and ``question_en``) without EOS, truncated to 50 tokens."""
  keys = [k for k in features if k in output_features]

  def fn(x):
    x = dict(x)
    for k in keys:
      if k in x:
        x[f"{k}_pretokenized"] = x[k]
        ids = output_features[k].vocabulary.encode_tf(x[k])
        x[k] = tf.cast(ids[:QUERY_MAX_TOKENS], tf.int32)
    return x
  return dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE)


def code_switch_question(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """Stage 1 without parallel queries: the query becomes the code-switched English query.

  ``question`` (the string; tokenised after this step) = ``code_switch.code_switch`` of
  ``question_en_pretokenized`` with the dictionaries of gin ``code_switch_dictionaries``, drawn
  anew for every example of every epoch (after the cache, as the official collator does per
  batch). The English query stays the ``question_en`` row.
  """
  dictionaries = code_switch.code_switch_dictionaries()   # loaded here, outside the graph

  def switch(text: bytes, example_seed: np.ndarray) -> bytes:
    rng = np.random.default_rng([int(s) & 0xFFFFFFFF for s in example_seed])
    return code_switch.code_switch(text.decode("utf-8"), dictionaries, rng).encode("utf-8")

  @seqio.map_over_dataset(num_seeds=1)
  def switch_example(x, seed):
    x = dict(x)
    switched = tf.numpy_function(switch, [x["question_en_pretokenized"], seed], tf.string,
                                 stateful=False)
    x["question"] = tf.ensure_shape(switched, [])
    return x

  return switch_example(dataset)


@seqio.map_over_dataset(num_seeds=1)
def select_answer(x, seed):
  """The training target: one gold answer drawn uniformly (CLASS's ``random.choice``)."""
  x = dict(x)
  n = tf.size(x["answers"])
  i = tf.random.stateless_uniform([], seed=seed, minval=0, maxval=tf.maximum(n, 1), dtype=tf.int32)
  x["answer"] = x["answers"][i]
  return x


def tokenize_answer(dataset: tf.data.Dataset, output_features) -> tf.data.Dataset:
  """Tokenises ``answer`` with EOS: the first 49 pieces + EOS (HF truncation keeps EOS)."""
  vocab = output_features["answer"].vocabulary

  def fn(x):
    x = dict(x)
    x["answer_pretokenized"] = x["answer"]
    ids = tf.cast(vocab.encode_tf(x["answer"])[:ANSWER_MAX_TOKENS - 1], tf.int32)
    x["answer"] = tf.concat([ids, tf.constant([vocab.eos_id], tf.int32)], axis=0)
    return x
  return dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE)


QA_FIELDS = ("qid", "lang", "question", "answers", "source_pid")


@seqio.map_over_dataset
def select_qa_fields(x):
  """The common raw schema of every QA source (TFDS sources have no ``source_pid``)."""
  out = {k: x[k] for k in QA_FIELDS if k in x}
  if "source_pid" not in out:
    out["source_pid"] = tf.constant("", tf.string)
  return out


# -- the capstone's Algorithm 1 over ``clqa synth translate`` records ------------------------

ALGORITHM1_PROBABILITY = 0.5  # spec 1.8: the source's "50%", a draw per example and epoch


def algorithm1_choice(lang: str, passage_lang: str, translation_langs: list[str],
                      translation_questions: list[str], rng: np.random.Generator,
                      probability: float = ALGORITHM1_PROBABILITY) -> tuple[int, int]:
  """(the question's version after Algorithm 1, its partner q') as indices into the
  translations, -1 the original question.

  Algorithm 1 (``synth.query_translation.plan_targets``): L_q != L_p keeps the question; else,
  with ``probability``, it becomes its stored translation into a language drawn uniformly from
  the corpus languages (the record's own and its translations') other than L_p; a failed ("")
  translation keeps the original. q' is drawn uniformly from the other versions with a
  non-empty question; without one, q' is the question itself. A record without translations
  (an entity-augmentation record whose question names no linked title) keeps its question.
  """
  from clqa_jax.synth import query_translation  # pylint: disable=g-import-not-at-top

  if not translation_langs:
    return -1, -1
  corpus = [lang] + [l for l in translation_langs if l != lang]
  target = query_translation.plan_targets([lang], [passage_lang], corpus, rng, probability)[0]
  chosen = -1
  if target is not None:
    i = translation_langs.index(target)
    chosen = i if translation_questions[i].strip() else -1
  others = [i for i in [-1] + list(range(len(translation_langs)))
            if i != chosen and (i == -1 or translation_questions[i].strip())]
  partner = others[int(rng.integers(len(others)))] if others else chosen
  return chosen, partner


def algorithm1_translate(dataset: tf.data.Dataset, swap_answers: bool = False,
                         probability: float = ALGORITHM1_PROBABILITY) -> tf.data.Dataset:
  """Algorithm 1 per example and epoch (after the cache) on translated records: ``question``
  and ``lang`` become the chosen version's (``algorithm1_choice``), ``question_translated`` /
  ``question_translated_lang`` its partner q'. ``swap_answers`` (the reader version): the
  answers become the chosen language's translated answers (its non-empty ones; the original
  answers when none). Format and tokenise after this step.
  """
  def choose(lang, passage_lang, t_langs, t_questions, t_answers, t_counts, question, answers,
             seed):
    rng = np.random.default_rng([int(s) & 0xFFFFFFFF for s in seed])
    t_langs = [l.decode("utf-8") for l in t_langs]
    t_questions = [q.decode("utf-8") for q in t_questions]
    chosen, partner = algorithm1_choice(lang.decode("utf-8"), passage_lang.decode("utf-8"),
                                        t_langs, t_questions, rng, probability)

    def version(i):
      return (question, lang) if i < 0 else (t_questions[i].encode("utf-8"),
                                             t_langs[i].encode("utf-8"))
    q, q_lang = version(chosen)
    qt, qt_lang = version(partner)
    new_answers = answers
    if swap_answers and chosen >= 0:
      start = int(np.sum(t_counts[:chosen]))
      swapped = [a for a in t_answers[start:start + int(t_counts[chosen])] if a.strip()]
      new_answers = np.array(swapped, dtype=object) if swapped else answers
    return (np.bytes_(q), np.bytes_(q_lang), np.bytes_(qt), np.bytes_(qt_lang),
            np.asarray(new_answers, dtype=object).astype(bytes))

  @seqio.map_over_dataset(num_seeds=1)
  def translate_example(x, seed):
    x = dict(x)
    q, q_lang, qt, qt_lang, answers = tf.numpy_function(
        choose, [x["lang"], x["passage_lang"], x["translation_langs"],
                 x["translation_questions"], x["translation_answers"],
                 x["translation_answer_counts"], x["question"], x["answers"], seed],
        [tf.string] * 5, stateful=False)
    x["question"], x["lang"] = tf.ensure_shape(q, []), tf.ensure_shape(q_lang, [])
    x["question_translated"] = tf.ensure_shape(qt, [])
    x["question_translated_lang"] = tf.ensure_shape(qt_lang, [])
    x["answers"] = tf.ensure_shape(answers, [None])
    return x

  return translate_example(dataset)


@seqio.map_over_dataset
def format_translated_question(x):
  """``question_template`` of q' (``question_translated``, in its own language)."""
  x = dict(x)
  x["question_translated"] = question_template(x["question_translated"],
                                               x["question_translated_lang"])
  return x
