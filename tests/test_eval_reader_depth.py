"""The reader's depth at evaluation and inference (EvalConfig.reader_k): eval/zusammenqa.gin
makes the reader read exactly each question's top 15 retrieved passages, in `clqa eval`'s
path and in `clqa infer`; the default is unchanged."""
import dataclasses
import os

import gin
import numpy as np
import pytest

from clqa_jax import gin_utils
from clqa_jax.checkpoints import exported
from clqa_jax.cli import main as cli_main
from clqa_jax.serving import corpus_index
from clqa_jax.serving import runner as runner_lib
from clqa_jax.serving.inference import ModelRunner
from fixtures.data.tiny_vocab import ROOT, tiny_vocab_path
from fixtures.export import tiny_run

ALL = os.path.join(ROOT, "passages", "all_w100.tsv")           # 32 passages
XOR_FULL = os.path.join(ROOT, "xor", "xor_dev_full_v1_1.jsonl")

pytestmark = pytest.mark.usefixtures("fresh_gin")


@pytest.fixture(scope="module")
def export(tmp_path_factory):
  root = tmp_path_factory.mktemp("depth")
  config = tiny_run.tiny_config()
  params = tiny_run.tiny_params(config, seed=5)
  export_dir, index = str(root / "export"), str(root / "index")
  exported.write_exported(export_dir, config, params, tiny_vocab_path())
  runner = ModelRunner(config, params, query_batch_size=8, reader_batch_size=8, progress=False)
  corpus_index.build_index(export_dir, ALL, index, runner=runner, batch_size=8, progress=False)
  return root, export_dir, index, runner


@pytest.fixture
def read_passages(monkeypatch):
  """The passage tokens [N, K, Lp] of every reading call."""
  calls = []
  original = ModelRunner.generate

  def generate(self, query_tokens, passage_tokens, *args, **kwargs):
    calls.append(np.asarray(passage_tokens))
    return original(self, query_tokens, passage_tokens, *args, **kwargs)

  monkeypatch.setattr(ModelRunner, "generate", generate)
  return calls


def test_eval_reads_exactly_the_top_15(export, read_passages):
  root, export_dir, index, runner = export
  gin_utils.parse_gin(["eval/xor_full.gin", "eval/zusammenqa.gin"], [])
  config = runner_lib.EvalConfig()
  assert config.reader_k == 15 and config.task == "xor-full"
  config = dataclasses.replace(config, mode="both", top_k=25, max_answer_length=3, ks=(2,),
                               limit=5)
  result = runner_lib.evaluate(export_dir, index, XOR_FULL, str(root / "out"), config,
                               runner=runner, progress=False)
  rows = result.retrieval.rows
  assert rows.shape == (5, 25) and (rows >= 0).all()
  [passages] = read_passages
  store = corpus_index.CorpusIndex(index, export_dir).store
  assert passages.shape[:2] == (5, 15)
  np.testing.assert_array_equal(passages, store.tokens(rows[:, :15].astype(np.int32)))


def test_infer_takes_the_depth_from_gin(export, read_passages, capsys):
  _, export_dir, index, _ = export
  base = ["infer", "--export", export_dir, "--index", index, "--question", "Mikä on Suomen "
          "pääkaupunki?", "--lang", "fi", "--max_answer_length", "3"]
  assert cli_main.main(base + ["--gin_file", "eval/zusammenqa.gin"]) == 0
  assert [p.shape[1] for p in read_passages] == [15]   # (--reader_k would override it)
  gin.clear_config()
  assert runner_lib.EvalConfig().reader_k == 100       # the default is unchanged
