"""Retrieval evaluation on the embedded mini corpus: its English articles cut into 100-word
passages (the synth pipeline's passage rules) and its XOR-Retrieve dev questions."""
import json
import os

import numpy as np
import pytest

from clqa_jax.checkpoints import exported
from clqa_jax.data import wikipedia
from clqa_jax.eval import corpus_index
from clqa_jax.eval import runner as runner_lib
from clqa_jax.eval.inference import ModelRunner
from clqa_jax.synth import passages as passages_lib
from fixtures.data.tiny_vocab import tiny_vocab_path
from fixtures.export import tiny_run

MINIWIKI = os.path.join(os.path.dirname(runner_lib.__file__), "..", "resources", "miniwiki")
DEV = os.path.join(MINIWIKI, "xor", "xor_dev_retrieve_eng_span.jsonl")


def _english_passage_tsv(path: str) -> int:
  rows = ["id\ttext\ttitle"]
  for file in wikipedia.article_files(os.path.join(MINIWIKI, "articles", "en")):
    for article in wikipedia.read_articles(file, "en"):
      rows += [passages_lib.tsv_row(p) for p in passages_lib.article_passages(article)]
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(rows) + "\n")
  return len(rows) - 1


def test_retrieval_eval_on_the_mini_corpus(tmp_path):
  if not os.path.exists(DEV):
    pytest.skip("the mini corpus has no XOR-Retrieve dev file")
  tsv = str(tmp_path / "psgs_w100.tsv")
  count = _english_passage_tsv(tsv)
  assert count > 50                       # deeper than the retrieval depth used here
  config = tiny_run.tiny_config()
  params = tiny_run.tiny_params(config, seed=13)
  export_dir = str(tmp_path / "export")
  exported.write_exported(export_dir, config, params, tiny_vocab_path())
  runner = ModelRunner(config, params, query_batch_size=64, progress=False)
  corpus_index.build_index(export_dir, tsv, str(tmp_path / "index"), runner=runner,
                           batch_size=64, progress=False)
  out = str(tmp_path / "results")
  result = runner_lib.evaluate(export_dir, str(tmp_path / "index"), DEV, out,
                               runner_lib.EvalConfig(mode="retrieve", top_k=50, reader_k=50), runner=runner,
                               progress=False)
  table = result.tables[0]
  assert set(table.scores) == {"ar", "bn", "fi", "ja", "ko", "ru", "te"}
  for lang, row in table.scores.items():
    # More tokens can only add hits.
    assert row["R@2kt"] <= row["R@5kt"] <= row["R@100kt"], lang
  n = sum(1 for line in open(DEV) if line.strip())
  preds = json.load(open(os.path.join(out, "xor_retrieve_predictions.json")))
  assert len(preds) == n and all(len(p["ctxs"]) == 50 for p in preds)
  assert result.retrieval.rows.shape == (n, 50)
  assert np.all(np.diff(result.retrieval.scores, axis=1) <= 1e-6)
