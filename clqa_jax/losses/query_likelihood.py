"""UMR's query-likelihood teacher (reference/peer-methods.md section 4.2): a plain mT5 scores
a (question, passage) pair by the mean token log-likelihood of the question given the passage.

  x = "Passage:  {title} {text}. Please write a question based on this passage in {Language}."
      (two spaces after "Passage:", English prompt, <= 512 tokens with EOS)
  y = "Question: {q}" + EOS (<= 128 tokens)
  s_LM(q, p) = (1/|y|) sum_t log P(y_t | y_<t, x)

Every y token counts (the "Question:" prefix and EOS too); the decoder starts from pad (0).
LM-adapted mT5 checkpoints are plain mT5, so the model is ``models.mt5.MT5`` with weights from
a Hugging Face directory or an export (``index.rerank.load_teacher`` reads both).
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from clqa_jax import fileio
from clqa_jax.losses import divergences
from clqa_jax.models.config import MT5Config
from clqa_jax.models.mt5 import MT5

MAX_PROMPT_TOKENS = 512
MAX_QUESTION_TOKENS = 128
# The language names UMR's prompt uses; any other language is named by its ISO code, as the
# released code does (spec 4.8).
LANGUAGE_NAMES = {"ar": "Arabic", "bn": "Bengali", "en": "English", "fi": "Finnish",
                  "ja": "Japanese", "ko": "Korean", "ru": "Russian", "te": "Telugu"}


def language_name(lang: str) -> str:
  return LANGUAGE_NAMES.get(lang, lang)


def prompt_text(title: str, text: str, lang: str) -> str:
  """x: the passage prompt (two spaces after "Passage:", as the source has it)."""
  return (f"Passage:  {title} {text}. Please write a question based on this passage in "
          f"{language_name(lang)}.")


def target_text(question: str) -> str:
  """y without its EOS."""
  return f"Question: {question}"


def mean_target_log_likelihood(model: MT5, params: Any, encoder_tokens_BS: jax.Array,
                               target_tokens_BT: jax.Array) -> jax.Array:
  """(1/|y|) sum_t log P(y_t | y_<t, x) over the non-pad target tokens (EOS included) -> [B].

  encoder_tokens_BS: int [B, S] prompt + EOS, pad 0.
  target_tokens_BT: int [B, T] target + EOS, pad 0; the decoder input is it shifted right
    behind the start id (pad).
  """
  start = jnp.full_like(target_tokens_BT[:, :1], model.config.decoder_start_id)
  decoder_inputs = jnp.concatenate([start, target_tokens_BT[:, :-1]], axis=1)
  logits = model.apply({"params": params}, encoder_tokens_BS, decoder_inputs)
  token_ll = -divergences.token_cross_entropy(logits, target_tokens_BT)
  return divergences.token_mean(token_ll, target_tokens_BT != model.config.pad_id)


@dataclasses.dataclass(frozen=True)
class ScoringItem:
  """One (question, passage) pair to score."""
  question: str
  lang: str
  title: str
  text: str


class QueryLikelihoodTeacher:
  """s_LM of (question, passage) pairs with a frozen plain mT5, in fixed-shape batches.

  Args:
    config: the mT5 config (a unified config scores with its mT5 backbone).
    params: its parameters (a unified tree's ``retriever`` head is dropped).
    vocab_path: its SentencePiece model (local or gs://).
    batch_size: pairs per device call (the last batch is padded, so one program serves all).
    identity: what the score cache records about this teacher (checkpoint path etc.).
  """

  def __init__(self, config: Any, params: Any, vocab_path: str, *, batch_size: int = 32,
               dtype: str | None = None, identity: dict[str, Any] | None = None):
    import sentencepiece as spm  # pylint: disable=g-import-not-at-top

    if hasattr(config, "mt5"):
      config = config.mt5
      params = {k: v for k, v in params.items() if k != "retriever"}
    if not isinstance(config, MT5Config):
      raise TypeError(f"QueryLikelihoodTeacher needs an MT5Config, got {type(config).__name__}")
    if dtype is not None:
      config = dataclasses.replace(config, dtype=dtype)
    if batch_size < 1:
      raise ValueError(f"batch_size must be positive, got {batch_size}")
    self.config = config
    self.batch_size = batch_size
    vocab_bytes = fileio.read_bytes(vocab_path)
    self.sp = spm.SentencePieceProcessor(model_proto=vocab_bytes)
    if self.sp.get_piece_size() > config.vocab_size:
      raise ValueError(f"{vocab_path}: {self.sp.get_piece_size()} pieces do not fit the "
                       f"teacher's {config.vocab_size} embeddings")
    self.identity = {"vocab_sha256": hashlib.sha256(vocab_bytes).hexdigest(),
                     "prompt": prompt_text("{title}", "{text}", "{lang}"), **(identity or {})}
    model = MT5(config)
    self._params = params
    self._score = jax.jit(lambda p, x, y: mean_target_log_likelihood(model, p, x, y))
    self.calls = 0  # device calls made (a later round with a warm cache makes fewer)

  def tokenize(self, items: Sequence[ScoringItem]) -> tuple[np.ndarray, np.ndarray]:
    """(prompt tokens int32 [B, 512], target tokens int32 [B, 128]): truncated, EOS last, pad 0."""
    eos = self.config.eos_id
    x = np.zeros((len(items), MAX_PROMPT_TOKENS), np.int32)
    y = np.zeros((len(items), MAX_QUESTION_TOKENS), np.int32)
    prompts = self.sp.encode([prompt_text(it.title, it.text, it.lang) for it in items])
    targets = self.sp.encode([target_text(it.question) for it in items])
    for i, (p, t) in enumerate(zip(prompts, targets)):
      p = p[:MAX_PROMPT_TOKENS - 1] + [eos]
      t = t[:MAX_QUESTION_TOKENS - 1] + [eos]
      x[i, :len(p)] = p
      y[i, :len(t)] = t
    return x, y

  def score(self, items: Sequence[ScoringItem],
            on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """float32 [len(items)] s_LM of each pair; ``on_batch(n)`` after each batch of n pairs."""
    out = np.zeros((len(items),), np.float32)
    for lo in range(0, len(items), self.batch_size):
      chunk = list(items[lo:lo + self.batch_size])
      x, y = self.tokenize(chunk)
      pad = self.batch_size - len(chunk)
      if pad:  # Fixed shapes: pad rows score a lone EOS and are dropped.
        x = np.pad(x, ((0, pad), (0, 0)))
        y = np.pad(y, ((0, pad), (0, 0)))
        y[len(chunk):, 0] = self.config.eos_id
      scores = np.asarray(self._score(self._params, x, y))
      self.calls += 1
      out[lo:lo + len(chunk)] = scores[:len(chunk)]
      if on_batch is not None:
        on_batch(len(chunk))
    return out
