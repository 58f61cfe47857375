"""clqa_jax.data: readers, vocabulary, SeqIO sources and preprocessors, stores, FiD batches.

  readers.py          streaming readers of every input format (typed errors, counted skips)
  text_normalize.py   the official question normalisation
  spm_train.py        small mT5-style SentencePiece training (no TF)
  vocab.py            the lazily resolved task vocabulary (seqio)
  paths.py            gin-configurable data root and vocabulary path
  tfds_builders/      TFDS builders over the downloaded XOR-TyDi, MKQA and NQ files
  sources.py          SeqIO sources (synthetic JSONL shards, TFDS under the data root)
  preprocessors.py    templates, normalisation, length limits
  mixing.py           rate(l) ∝ n_l^alpha
  pipeline.py         numpy question batches per host; fid_batches
  passage_store.py    memory-mapped passage tokens, built once per corpus and vocabulary
  retrieval_store.py  versioned qid -> top-K rows, atomically swapped
  fid_batch.py        FiD model features [B, K, ...] and global jax.Arrays
  inspection.py       per-language statistics behind `clqa inspect`
Task and mixture registration lives only in ``clqa_jax.tasks`` (the repository's top-level
``tasks/``, linked into the package).
"""
