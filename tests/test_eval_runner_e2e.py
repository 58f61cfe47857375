"""clqa index + clqa eval end to end on a tiny random model and the fixture corpus; the
runner's retrieval is exact search over the re-encoded corpus."""
import json
import os
import shutil

import jax
import ml_dtypes
import numpy as np
import pytest
import sentencepiece as spm

from clqa_jax.checkpoints import exported
from clqa_jax.cli import main as cli_main
from clqa_jax.serving import corpus_index
from clqa_jax.serving import questions as questions_lib
from clqa_jax.serving import runner as runner_lib
from clqa_jax.eval import xor_retrieve
from clqa_jax.serving.inference import ModelRunner
from clqa_jax.models import UnifiedRetrieverReader
from fixtures.data.tiny_vocab import ROOT, tiny_vocab_path
from fixtures.export import tiny_run
from fixtures.integration import mini_data

PSGS = os.path.join(ROOT, "passages", "psgs_w100.tsv")
ALL = os.path.join(ROOT, "passages", "all_w100.tsv")
XOR_RETRIEVE = os.path.join(ROOT, "xor", "xor_dev_retrieve_eng_span_v1_1.jsonl")
XOR_FULL = os.path.join(ROOT, "xor", "xor_dev_full_v1_1.jsonl")
MKQA = os.path.join(ROOT, "mkqa", "mkqa.jsonl")
READER_K = 4


# Command lines parse gin into the process-wide config (conftest.fresh_gin).
pytestmark = pytest.mark.usefixtures("fresh_gin")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  root = tmp_path_factory.mktemp("eval")
  config = tiny_run.tiny_config()
  params = tiny_run.tiny_params(config, seed=5)
  export_dir = str(root / "export")
  exported.write_exported(export_dir, config, params, tiny_vocab_path())
  runner = ModelRunner(config, params, query_batch_size=8, reader_batch_size=8, progress=False)
  return root, export_dir, config, params, runner


def test_index_and_eval_cli_xor_retrieve(setup, capsys):
  root, export_dir, _, _, _ = setup
  index_dir, out = str(root / "index_en"), str(root / "results_en")
  assert cli_main.main(["index", "--export", export_dir, "--corpus", PSGS, "--out", index_dir,
                        "--batch_size", "8", "--rows_per_shard", "8"]) == 0
  manifest = json.load(open(os.path.join(index_dir, "index.json")))
  assert manifest["num_passages"] == 16 and manifest["dim"] == 32
  assert len([f for f in os.listdir(os.path.join(index_dir, "embeddings"))
              if f.endswith(".json") and f.startswith("emb-")]) == 2
  assert cli_main.main(["eval", "--export", export_dir, "--index", index_dir,
                        "--data_file", XOR_RETRIEVE, "--task", "xor-retrieve", "--out", out,
                        "--mode", "both",
                        "--reader_k", str(READER_K), "--max_answer_length", "6",
                        "--gin.EvalConfig.reader_batch_size=8"]) == 0
  printed = capsys.readouterr().out
  assert "xor-retrieve" in printed and "xor-engspan" in printed
  for name in ("metrics.json", "metrics.md", "metrics.xor-retrieve.png",
               "metrics.xor-engspan.png", "xor_retrieve_predictions.json",
               "xor_engspan_predictions.json", "eval_run.json"):
    assert os.path.getsize(os.path.join(out, name)) > 0, name
  with open(os.path.join(out, "metrics.png" if False else "metrics.xor-retrieve.png"), "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  metrics = json.load(open(os.path.join(out, "metrics.json")))
  assert set(metrics) == {"xor-retrieve", "xor-engspan"}
  # The prediction file is the official script's input: the metrics CLI reads it back and gets
  # the same numbers as the runner.
  rescored = str(root / "rescored.json")
  assert cli_main.main(["metrics", "xor-retrieve", "--data_file", XOR_RETRIEVE,
                        "--pred_file", os.path.join(out, "xor_retrieve_predictions.json"),
                        "--out", rescored]) == 0
  assert json.load(open(rescored))["xor-retrieve"]["per_language"] == \
      metrics["xor-retrieve"]["per_language"]
  preds = json.load(open(os.path.join(out, "xor_retrieve_predictions.json")))
  gold_ids = [json.loads(l)["id"] for l in open(XOR_RETRIEVE)]
  assert [p["id"] for p in preds] == gold_ids
  assert all(len(p["ctxs"]) == 16 == len(p["pids"]) for p in preds)
  answers = json.load(open(os.path.join(out, "xor_engspan_predictions.json")))
  assert sorted(answers) == sorted(gold_ids) and all(isinstance(a, str) for a in answers.values())
  # No accidental overwrite; --overwrite replaces.
  args = ["eval", "--export", export_dir, "--index", index_dir, "--data_file", XOR_RETRIEVE,
          "--out", out, "--mode", "retrieve"]
  assert cli_main.main(args) == 2
  assert cli_main.main(args + ["--overwrite"]) == 0
  # The rerun read nothing, so the earlier answers and reading table are gone.
  assert not os.path.exists(os.path.join(out, "xor_engspan_predictions.json"))
  assert not os.path.exists(os.path.join(out, "metrics.xor-engspan.png"))
  assert list(json.load(open(os.path.join(out, "metrics.json")))) == ["xor-retrieve"]


def test_retrieval_is_exact_search_over_the_reencoded_corpus(setup):
  root, export_dir, config, params, runner = setup
  index_dir = str(root / "index_en")
  if not os.path.exists(os.path.join(index_dir, "index.json")):
    corpus_index.build_index(export_dir, PSGS, index_dir, runner=runner, batch_size=8)
  index = corpus_index.CorpusIndex(index_dir, export_dir)
  sp = spm.SentencePieceProcessor(model_file=tiny_vocab_path())
  qs = questions_lib.load_questions(XOR_RETRIEVE, "xor-retrieve")
  tokens = questions_lib.tokenize_queries(sp, qs)
  got = runner_lib.retrieve(runner, index, tokens, 100)
  # Reference: encode every passage and question directly with the model methods.
  model = UnifiedRetrieverReader(config)
  passages = jax.jit(lambda p, t: model.apply({"params": p}, t, method="encode_passages"))(
      params, index.store.tokens_array[:])
  queries = jax.jit(lambda p, t: model.apply({"params": p}, t, method="encode_queries"))(
      params, tokens)
  # The index stores bfloat16 vectors: score against the same rounding.
  stored = np.asarray(passages).astype(ml_dtypes.bfloat16).astype(np.float32)
  scores = np.asarray(queries) @ stored.T
  assert got.rows.shape == (len(qs), 16)
  for i in range(len(qs)):
    np.testing.assert_allclose(got.scores[i], scores[i, got.rows[i]], atol=1e-4)
    np.testing.assert_allclose(got.scores[i], np.sort(scores[i])[::-1], atol=1e-4)
  # And with k below the corpus size, the rows are the exact top-k, on device too.
  top = runner_lib.retrieve(runner, index, tokens, 5)
  for i in range(len(qs)):
    np.testing.assert_allclose(np.sort(scores[i])[::-1][:5], scores[i, top.rows[i]], atol=1e-4)
  on_device = runner_lib.retrieve(runner, index, tokens, 5, search="device")
  np.testing.assert_array_equal(on_device.rows, top.rows)
  # ScaNN built on the fly (this index saved none); brute force at this size.
  scann = runner_lib.retrieve(runner, index, tokens, 5, search="scann")
  np.testing.assert_array_equal(scann.rows, top.rows)


def test_xor_full_and_mkqa_with_the_runner(setup):
  root, export_dir, _, _, runner = setup
  index_dir = str(root / "index_all")
  m = corpus_index.build_index(export_dir, ALL, index_dir, runner=runner, batch_size=8,
                               searcher="scann")
  assert m["searcher"] == "scann" and m["scann_recall_at_100"] == 1.0   # brute force below 4096
  cfg = runner_lib.EvalConfig(task="xor-full", search="scann", reader_k=READER_K,
                              max_answer_length=6, reader_batch_size=8)
  out = str(root / "results_full")
  result = runner_lib.evaluate(export_dir, index_dir, XOR_FULL, out, cfg, runner=runner)
  assert [t.task for t in result.tables] == ["xor-full-retrieval", "xor-full"]
  preds = json.load(open(os.path.join(out, "xor_full_predictions.json")))
  assert sorted(preds) == sorted(json.loads(l)["id"] for l in open(XOR_FULL))
  # The predictions score the same through the metrics CLI.
  rescored = str(root / "full_rescored.json")
  assert cli_main.main(["metrics", "xor-full", "--data_file", XOR_FULL, "--pred_file",
                        os.path.join(out, "xor_full_predictions.json"), "--out", rescored]) == 0
  assert json.load(open(rescored))["xor-full"]["macro"] == pytest.approx(
      result.tables[1].macro)
  # MKQA: ids repeat across languages; predictions are {lang: {id: answer}}.
  cfg = runner_lib.EvalConfig(task="mkqa", mode="read", reader_k=READER_K,
                              max_answer_length=6, reader_batch_size=8, langs=("ja", "fi"))
  out = str(root / "results_mkqa")
  result = runner_lib.evaluate(export_dir, index_dir, MKQA, out, cfg, runner=runner)
  assert result.tables[0].task == "mkqa" and set(result.tables[0].scores) == {"ja", "fi"}
  preds = json.load(open(os.path.join(out, "mkqa_predictions.json")))
  assert set(preds) == {"ja", "fi"} and set(preds["ja"]) == set(preds["fi"])
  assert not os.path.exists(os.path.join(out, "xor_retrieve_predictions.json"))


def test_a_copied_export_and_index_give_the_same_results(setup, tmp_path):
  """`cp -r` of the export and the index, originals deleted: eval from the copies gives the
  same predictions and metrics."""
  _, export_dir, _, _, _ = setup
  before, after = tmp_path / "a", tmp_path / "b"
  shutil.copytree(export_dir, before / "export")
  assert cli_main.main(["index", "--export", str(before / "export"), "--corpus", PSGS, "--out",
                        str(before / "index"), "--batch_size", "8", "--rows_per_shard", "8"]) == 0
  index_json = (before / "index" / "index.json").read_text()
  assert json.loads(index_json)["passage_store"] == "passages"
  assert json.loads(index_json)["fingerprint"] == corpus_index.export_fingerprint(
      exported.read_manifest(export_dir))

  def evaluate(root, out):
    assert cli_main.main(["eval", "--export", str(root / "export"), "--index",
                          str(root / "index"), "--data_file", XOR_RETRIEVE, "--out", str(out),
                          "--mode", "retrieve"]) == 0
    return ((out / "xor_retrieve_predictions.json").read_bytes(),
            json.loads((out / "metrics.json").read_text()))

  old_cache = mini_data.enable_compilation_cache()   # the second eval compiles nothing
  try:
    expected = evaluate(before, tmp_path / "results_a")
    shutil.copytree(before, after)
    shutil.rmtree(before)
    assert evaluate(after, tmp_path / "results_b") == expected
  finally:
    mini_data.restore_compilation_cache(old_cache)
  # Without its passage store the copy is refused, naming the field.
  shutil.rmtree(after / "index" / "passages")
  with pytest.raises(corpus_index.IndexMismatchError,
                     match=r"index.json: field 'passage_store' \('passages'\): .* not a passage "
                           "store"):
    corpus_index.CorpusIndex(str(after / "index"), str(after / "export"))


def test_an_external_passage_store_is_recorded_by_its_absolute_path(setup, tmp_path):
  _, export_dir, _, _, runner = setup
  store = str(tmp_path / "store")
  m = corpus_index.build_index(export_dir, PSGS, str(tmp_path / "index"), runner=runner,
                               passage_store_dir=store, batch_size=8, progress=False)
  assert m["passage_store"] == store
  shutil.copytree(tmp_path / "index", tmp_path / "moved")
  shutil.rmtree(tmp_path / "index")
  index = corpus_index.CorpusIndex(str(tmp_path / "moved"), export_dir)
  assert index.store.directory == store and len(index) == 16


def test_an_index_written_with_path_fingerprints_still_opens(setup, tmp_path):
  """index.json of older builds: the export's path in the fingerprint (not compared), the
  store by its absolute path."""
  _, export_dir, _, _, runner = setup
  index_dir = tmp_path / "index"
  corpus_index.build_index(export_dir, PSGS, str(index_dir), runner=runner, batch_size=8,
                           progress=False)
  manifest = json.loads((index_dir / "index.json").read_text())
  manifest["fingerprint"] = {"export": "/gone/export",
                             **{k: manifest["fingerprint"][k] for k in ("created", "source",
                                                                        "dtype")}}
  manifest["passage_store"] = str(index_dir / "passages")
  (index_dir / "index.json").write_text(json.dumps(manifest))
  assert len(corpus_index.CorpusIndex(str(index_dir), export_dir)) == 16
  manifest["fingerprint"]["created"] = "2020-01-01T00:00:00+00:00"
  (index_dir / "index.json").write_text(json.dumps(manifest))
  with pytest.raises(corpus_index.IndexMismatchError,
                     match=r"built for the export .*\(created 2020-01-01"):
    corpus_index.CorpusIndex(str(index_dir), export_dir)
