"""clqa_jax.eval: metrics with the official scripts' semantics, and their reports.

Modules: ``word_tokenize`` (R@kt token counting), ``normalize`` (answer normalization, F1/EM),
``bleu`` (nltk's character-level sentence BLEU), ``segment`` (MeCab for Japanese, grapheme
segmentation for the MIA-style mode), ``xor_retrieve``, ``xor_full``, ``xor_engspan``, ``mkqa``,
``inputs`` (file readers with typed errors), ``prediction_files`` (official-format writers),
``table`` (the per-language result type) and ``report`` (JSON / markdown / PNG).
Pure Python and numpy: no JAX import (a test checks). Running a checkpoint to produce the
predictions these score is ``clqa_jax.serving``.
"""
