"""gin-configurable settings of the synthetic-data pipelines (`gin/synth/*.gin`)."""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import gin

from clqa_jax.data import formats
from clqa_jax.data.readers import REWRITE_BACKENDS
from clqa_jax.synth import filters
from clqa_jax.synth import http_backend

MINIWIKI_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "resources", "miniwiki")
XOR_LANGS = formats.XOR_LANGUAGES


@gin.configurable
def load_exported_checkpoint(path: str) -> tuple[Any, Any, str]:
  """The default ``SynthConfig.checkpoint_loader``: an exported checkpoint (``clqa export``).

  Returns:
    (UnifiedConfig, params (host numpy), the export's SentencePiece model path).
  """
  from clqa_jax.checkpoints.exported import load_exported

  model_config, params, vocab_path, _ = load_exported(path)
  return model_config, params, vocab_path


@gin.configurable
@dataclasses.dataclass(frozen=True)
class HttpConfig:
  """An OpenAI-compatible endpoint (see `http_backend.HttpBackend`)."""
  base_url: str = "http://127.0.0.1:8000/v1"
  model: str = ""
  api: str = "chat"
  batch_size: int = 8
  max_retries: int = 5
  backoff_s: float = 1.0
  timeout_s: float = 60.0
  max_tokens: int = 64
  api_key_env: str | None = None
  cache_dir: str | None = None  # default: <output_dir>/rewrite_cache

  def __post_init__(self):
    http_backend.check_base_url(self.base_url)  # before the URL is fingerprinted or stored


@gin.configurable
@dataclasses.dataclass(frozen=True)
class SynthConfig:
  """Every stage's settings. Stages read only their own fields (and fingerprint those)."""
  output_dir: str = ""
  corpus_dir: str = MINIWIKI_DIR  # articles/<lang>/..., langlinks.tsv, xor/
  langs: tuple[str, ...] = ("en",) + XOR_LANGS
  target_langs: tuple[str, ...] = XOR_LANGS
  # FnApiRunner: Beam's in-process runner. Beam's DirectRunner first fetches and starts its Prism
  # binary from GitHub (a network download; offline it retries, then falls back to FnApiRunner).
  runner: str = "FnApiRunner"
  beam_options: tuple[str, ...] = ()  # extra Beam flags, e.g. ("--direct_num_workers=2",)
  num_shards: int = 1
  overwrite: bool = False
  # passages
  passage_words: int = 100
  passage_chars: int = 180  # units per passage where words are characters (ja, zh, th)
  # parallel (stage 1 mining)
  encoder: str = "linked_entities"  # | "checkpoint"
  margin_k: int = 4
  margin_threshold: float = 1.05
  mining_mode: str = "mutual"
  # teacher retrieval
  retriever: str = "bm25"  # | "checkpoint"
  teacher_top_k: int = 100
  # the model of encoder/retriever "checkpoint" and rewrite_backend "seq2seq"
  checkpoint: str | None = None
  # path -> (config, params, vocab_path); default: an exported checkpoint directory
  checkpoint_loader: Callable[[str], Any] | None = load_exported_checkpoint
  # stage 2 QA
  # "miniwiki": the embedded corpus's own question templates (miniwiki/rewrite.py), no model
  rewrite_backend: str = "cloze"  # | "http" | "seq2seq" | "miniwiki"
  qa_variants: tuple[str, ...] = ("retrieve", "full")
  http: HttpConfig = dataclasses.field(default_factory=HttpConfig)
  rewrite_batch_size: int = 32
  filters: filters.FilterConfig = dataclasses.field(default_factory=filters.FilterConfig)
  # translate: the records of `translate_input` (a glob under output_dir, or absolute) with
  # their `translate_fields` translated into every `translate_langs` language (None: langs)
  translate_input: str = "stage2/xor_retrieve.*.jsonl-*"
  translate_output: str = "translated"  # the stage directory under output_dir
  translate_fields: tuple[str, ...] = ("question",)  # | "answers", "passage", ...
  translate_langs: tuple[str, ...] | None = None
  translate_backend: str = "dictionary"  # | "http" | "seq2seq" (the `checkpoint`)
  # dictionary backend: the folder of MUSE en-<lang>.txt files; None: the corpus's
  # interlanguage-linked titles (<corpus_dir>/langlinks.tsv) as the dictionaries
  translate_dictionaries: str | None = None
  translate_batch_size: int = 64
  # entity_augment: translate_input's records with their linked-article titles swapped into
  # one other translation_langs language per question (synth/entity_augmentation.py)
  entity_augment_output: str = "entity_augmented"  # the stage directory under output_dir
  entity_augment_seed: int = 0
  # ZusammenQA QA generation (qagen, qa_filter; synth/qagen.py). The http backend uses `http`.
  qagen_backend: str = "template"  # | "http"
  qagen_max_tokens: int = 512  # per article split (whitespace words)
  qagen_splits: int = 3  # the first splits of each article that are used
  qagen_positive: str = "passage"  # | "window" (100 words ending at the answer)
  qagen_negatives: int = 5  # answer-free negatives per language
  answer_filter_mode: str = "paper"  # | "code" (synth/answer_type_filter.py)

  def __post_init__(self):
    if not self.output_dir:
      raise ValueError("SynthConfig.output_dir is required (--out or SynthConfig.output_dir=...)")
    if "en" not in self.langs:
      raise ValueError("SynthConfig.langs must include 'en'")
    bad = [l for l in self.target_langs if l not in self.langs or l == "en"]
    if bad:
      raise ValueError(f"target_langs {bad} must be non-English languages listed in langs")
    if self.encoder not in ("linked_entities", "checkpoint"):
      raise ValueError(f"encoder must be 'linked_entities' or 'checkpoint', got {self.encoder!r}")
    if self.retriever not in ("bm25", "checkpoint"):
      raise ValueError(f"retriever must be 'bm25' or 'checkpoint', got {self.retriever!r}")
    if self.rewrite_backend not in REWRITE_BACKENDS:
      raise ValueError(f"rewrite_backend must be one of {REWRITE_BACKENDS}, got "
                       f"{self.rewrite_backend!r}")
    for v in self.qa_variants:
      if v not in ("retrieve", "full"):
        raise ValueError(f"qa_variants entries must be 'retrieve' or 'full', got {v!r}")
    if self.rewrite_backend == "http" and not self.http.model:
      raise ValueError("rewrite_backend='http' needs HttpConfig.model")
    if self.translate_backend not in ("dictionary", "http", "seq2seq"):
      raise ValueError(f"translate_backend must be dictionary, http or seq2seq, got "
                       f"{self.translate_backend!r}")
    if self.translate_backend == "http" and not self.http.model:
      raise ValueError("translate_backend='http' needs HttpConfig.model")
    if not self.translate_fields:
      raise ValueError("SynthConfig.translate_fields is empty")
    bad = [l for l in (self.translate_langs or ()) if l not in self.langs]
    if bad:
      raise ValueError(f"translate_langs {bad} must be listed in langs")
    for name, allowed in (("qagen_backend", ("template", "http")),
                          ("qagen_positive", ("passage", "window")),
                          ("answer_filter_mode", ("paper", "code"))):
      value = getattr(self, name)
      if value not in allowed:
        raise ValueError(f"SynthConfig.{name} must be one of {allowed}, got {value!r}")
    if self.qagen_backend == "http" and not self.http.model:
      raise ValueError("qagen_backend='http' needs HttpConfig.model")

  @property
  def translation_langs(self) -> tuple[str, ...]:
    """The languages the translate stage translates into."""
    return tuple(self.translate_langs or self.langs)

  def stage_config(self, *names: str) -> dict[str, Any]:
    """The fields a stage depends on, as plain JSON-able values (for its fingerprint)."""
    out = {}
    for n in names:
      v = getattr(self, n)
      out[n] = dataclasses.asdict(v) if dataclasses.is_dataclass(v) else (
          getattr(v, "__name__", repr(v)) if callable(v) else v)
    return out
