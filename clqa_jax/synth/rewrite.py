"""Rewrite backends: cloze sentence -> natural question in the target language.

`backend.rewrite(items: list[RewriteItem]) -> list[str]`, one question per item, in order.
- `ClozeBackend`: no rewrite (the question is the cloze; the ablation).
- `HttpBackend` (`http_backend.py`): any OpenAI-compatible server, batched, retried, cached.
- `Seq2SeqBackend`: a local seq2seq checkpoint through `clqa_jax.models.decoding`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol

from clqa_jax import fileio
from clqa_jax.synth import exemplars


@dataclasses.dataclass(frozen=True)
class RewriteItem:
  kind: str  # "retrieve" (English cloze -> question in lang) | "full" (cloze in lang)
  lang: str
  cloze: str


class RewriteBackend(Protocol):
  name: str

  def rewrite(self, items: list[RewriteItem]) -> list[str]:
    ...


def clean_question(text: str) -> str:
  """The first non-empty line of a model reply, without a 'Question:' prefix or quotes."""
  for line in text.strip().splitlines():
    line = line.strip()
    if line.lower().startswith("question:"):
      line = line[len("question:"):].strip()
    if line:
      return line.strip("\"'“”«»")
  return ""


class ClozeBackend:
  name = "cloze"

  def rewrite(self, items: list[RewriteItem]) -> list[str]:
    return [it.cloze for it in items]


class Seq2SeqBackend:
  """Greedy/beam decoding of the few-shot prompt with a local checkpoint.

  `generate(prompts: list[str]) -> list[str]` wraps the model's decoding; `from_params` builds
  it from the model API (`clqa_jax.models.decoding`).
  """
  name = "seq2seq"

  def __init__(self, generate: Callable[[list[str]], list[str]], batch_size: int = 16):
    self.generate = generate
    self.batch_size = batch_size

  @classmethod
  def from_params(cls, config: Any, params: Any, vocab_path: str, max_input_len: int = 512,
                  max_output_len: int = 50, batch_size: int = 16,
                  beam_size: int = 1) -> "Seq2SeqBackend":
    """An mT5 checkpoint (`MT5Config`, params) decoded with `clqa_jax.models.decoding.generate`.

    A unified checkpoint (`UnifiedConfig`, e.g. an export) decodes with its mT5 backbone: the
    full encoder over the prompt, without the retriever head.
    """
    import jax
    import numpy as np
    import sentencepiece as spm
    from clqa_jax.models import decoding
    from clqa_jax.models.mt5 import MT5

    from clqa_jax.models.unified import UnifiedConfig

    if isinstance(config, UnifiedConfig):
      config = config.mt5
      params = {k: v for k, v in params.items() if k != "retriever"}
    model = MT5(config)
    sp = spm.SentencePieceProcessor(model_proto=fileio.read_bytes(vocab_path))  # local or gs://

    @jax.jit
    def run(tokens):
      encoded = model.apply({"params": params}, tokens, method="encode")
      out = decoding.generate(model, params, encoded, tokens != config.pad_id,
                              max_length=max_output_len, beam_size=beam_size)
      return out if beam_size == 1 else out[0][:, 0]

    def generate(prompts: list[str]) -> list[str]:
      tokens = np.zeros((len(prompts), max_input_len), np.int32)
      for i, p in enumerate(prompts):
        ids = sp.encode(p)[:max_input_len - 1] + [config.eos_id]
        tokens[i, :len(ids)] = ids
      out = np.asarray(run(tokens))
      return [sp.decode([int(t) for t in row if t not in (config.pad_id, config.eos_id)]) for row in out]

    return cls(generate, batch_size)

  def rewrite(self, items: list[RewriteItem]) -> list[str]:
    prompts = [exemplars.completion_prompt(it.kind, it.lang, it.cloze) for it in items]
    out: list[str] = []
    for i in range(0, len(prompts), self.batch_size):
      out += [clean_question(t) for t in self.generate(prompts[i:i + self.batch_size])]
    return out
