"""clqa_jax.serving: running an exported checkpoint over questions and a passage corpus.

Modules: ``questions`` (question files to model inputs, answers back to text), ``inference``
(jitted, sharded encoding and decoding through the model contract), ``corpus_index`` (the
resumable corpus index of ``clqa index``) and ``runner`` (``clqa eval``: retrieve, read, score
with ``clqa_jax.eval``'s metrics). The metrics themselves live in ``clqa_jax.eval``, which
imports no JAX.
"""
