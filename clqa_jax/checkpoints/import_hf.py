"""``clqa import``: a Hugging Face mT5, official CLASS or T5X mT5 directory -> an exported
checkpoint.

The output is the format ``clqa export`` writes (``exported.write_exported``), so everything
that reads exports (``load_exported``, eval, index, infer, ``Teacher.checkpoint``,
``CheckpointConfig.init_checkpoint``, ``clqa export`` itself) reads imports too.
"""
from __future__ import annotations

import re
from typing import Any

from clqa_jax import fileio
from clqa_jax.checkpoints import exported
from clqa_jax.checkpoints import hf_mt5
from clqa_jax.checkpoints import t5x_mt5

SOURCES = ("hf_mt5", "class", "t5x")
PLAIN_MT5_SOURCES = ("hf_mt5", "t5x")  # no retriever head: --unified initialises one
HF_VOCAB_FILE = "spiece.model"  # the SentencePiece model a Hugging Face T5 directory ships
RETRIEVER_HEAD_RECORD = "retriever_head"  # the manifest source's field for the MaxSim head


def resolve_import_vocabulary(src: str, vocab_path: str | None) -> str:
  """The SentencePiece model to ship: explicit, the source's ``spiece.model``, or the
  configured default (``clqa_jax.data.paths.vocabulary_path``: env CLQA_VOCAB / data root)."""
  own = fileio.join(src, HF_VOCAB_FILE)
  return exported.vocabulary_to_ship(vocab_path, own if fileio.exists(own) else None,
                                     f"{src} has no {HF_VOCAB_FILE}")


def _source_step(source: str, src: str) -> int | None:
  """The training step a T5X directory's name records (``checkpoint_1000000``), else None."""
  match = re.fullmatch(r"checkpoint_(\d+)", fileio.basename(src.rstrip("/")))
  return int(match.group(1)) if source == "t5x" and match else None


def import_checkpoint(source: str, src: str, out_dir: str, *, unified: bool = False,
                      retriever_layer: int | None = None, seed: int = 0,
                      scan_layers: bool = False, vocab_path: str | None = None,
                      dtype: str = "float32", overwrite: bool = False
                      ) -> tuple[dict[str, Any], list[str]]:
  """Reads ``src`` and writes it to ``out_dir`` as an exported checkpoint.

  Args:
    source: "hf_mt5" (a Hugging Face mT5 directory), "class" (the official CLASS layout) or
      "t5x" (a T5X mT5 ``checkpoint_N`` directory, local or gs://).
    unified: hf_mt5 / t5x: import as a UnifiedRetrieverReader with a freshly initialised
      retriever head (init ``seed``); otherwise a plain mT5 export (model_config kind "mt5").
    retriever_layer: class / unified: the retriever layer R when the source's config.json has
      no ``retriever_layer`` (default: encoder layers // 2); one that differs from the
      config.json field is an error. T5X checkpoints have no config.json.
    scan_layers: store each stack's layers stacked for scan-over-layers models.
    vocab_path: see ``resolve_import_vocabulary``.

  The manifest's ``source`` records ``retriever_head``, the MaxSim head (``Teacher.maxsim_head``)
  of a unified import: config.json's ``retriever_head``; absent there, the official teacher
  default (``hf_mt5.DEFAULT_TEACHER_RETRIEVER_HEAD``) for ``--unified`` and None for ``class``
  (whose retriever is its projection head).

  Returns:
    (the manifest, the parameter paths that did not come from ``src``).
  """
  if source not in SOURCES:
    raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
  if source in PLAIN_MT5_SOURCES and not unified and retriever_layer is not None:
    raise ValueError("--retriever_layer needs 'class' or --unified")
  if fileio.exists(out_dir) and not overwrite:
    raise FileExistsError(f"{out_dir} exists; pass --overwrite to replace it")
  vocab = resolve_import_vocabulary(src, vocab_path)  # before the (long) read of the weights
  overrides = {"scan_layers": True} if scan_layers else {}
  initialised: list[str] = []
  if source == "hf_mt5" and unified:
    config, params, initialised = hf_mt5.load_hf_mt5_as_unified(src, retriever_layer, seed,
                                                                **overrides)
  elif source == "hf_mt5":
    config, params = hf_mt5.load_hf_mt5(src, **overrides)
  elif source == "t5x" and unified:
    config, params, initialised = t5x_mt5.load_t5x_mt5_as_unified(src, retriever_layer, seed,
                                                                   **overrides)
  elif source == "t5x":
    config, params = t5x_mt5.load_t5x_mt5(src, **overrides)
  else:
    config, params = hf_mt5.load_class_checkpoint(src, retriever_layer, **overrides)
  record = {"kind": source, "path": fileio.abspath(src), "step": _source_step(source, src),
            "initialised": initialised}
  if source == "class" or unified:
    head = hf_mt5.retriever_head_from_hf(src) if source != "t5x" else None  # no config.json
    if head is None and unified:
      head = hf_mt5.DEFAULT_TEACHER_RETRIEVER_HEAD
    record[RETRIEVER_HEAD_RECORD] = head
  manifest = exported.write_exported(out_dir, config, params, vocab, dtype=dtype,
                                     source=record, overwrite=overwrite)
  return manifest, initialised
