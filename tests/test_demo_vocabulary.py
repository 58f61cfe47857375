"""The demo vocabulary is near word level on the mini corpus: a name in any script is one or two
pieces, so the tiny model learns each name as a unit (demo.VOCAB_SIZE: 1,000 pieces spelt most
non-Latin names letter by letter, 3 to 10 pieces a title)."""
import collections
import os

import numpy as np
import sentencepiece as spm

from clqa_jax import demo
from clqa_jax.data import readers
from fixtures.integration import mini_data


def test_titles_are_one_or_two_pieces_in_every_language():
  root = mini_data.data_root()
  sp = spm.SentencePieceProcessor(model_file=os.path.join(root, "vocab", "spm.model"))
  assert sp.get_piece_size() == demo.VOCAB_SIZE
  pieces = collections.defaultdict(list)
  for p in readers.read_passages_tsv(os.path.join(root, "passages", "all_w100.tsv")):
    pieces[p.pid.split("_")[0]].append(len(sp.encode(p.title)))
  assert sorted(pieces) == sorted(["en", *demo.XOR_LANGUAGES])
  for lang, counts in pieces.items():
    assert np.mean(counts) <= 2.5, (lang, np.mean(counts))
