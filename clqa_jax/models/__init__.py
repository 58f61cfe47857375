"""clqa_jax.models: mT5 and the CLASS unified retriever-reader (flax.linen).

``MT5(config).apply({"params": p}, encoder_input_tokens, decoder_input_tokens)`` -> logits;
``UnifiedRetrieverReader(UnifiedConfig(mt5=...))`` for retrieval + reading, run by every caller
through ``UnifiedModel`` (``clqa_jax.models.model_api``); decoding helpers in
``clqa_jax.models.decoding``.
"""
from clqa_jax.models.cache import DecodingCache
from clqa_jax.models.config import PRESETS, MT5Config, mt5_preset
from clqa_jax.models.model_api import UnifiedModel
from clqa_jax.models.mt5 import MT5
from clqa_jax.models.unified import UnifiedConfig, UnifiedRetrieverReader

__all__ = ["DecodingCache", "MT5", "MT5Config", "PRESETS", "UnifiedConfig",
           "UnifiedModel", "UnifiedRetrieverReader", "mt5_preset"]
