"""`clqa synth parallel/teacher` with the checkpoint encoder and dense teacher read a tiny
exported checkpoint through the default SynthConfig.checkpoint_loader (no gin function bound);
the seq2seq rewrite backend decodes with an export's mT5 backbone."""
import glob
import json
import os

import gin
import jax
import numpy as np
import pytest

from clqa_jax.checkpoints.exported import load_exported, write_exported
from clqa_jax.cli import main as cli_main
from clqa_jax.synth import config as config_lib
from clqa_jax.synth import dofns, passages as passages_lib, rewrite
from fixtures.data.tiny_vocab import tiny_vocab_path
from fixtures.export.tiny_run import tiny_config, tiny_params

LANGS = ("en", "ja")


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("synth_ckpt")
  config = tiny_config()
  write_exported(str(root / "export"), config, tiny_params(config, seed=5), tiny_vocab_path())
  return str(root / "export")


def _synth(stage, out, corpus, *bindings):
  gin.clear_config()
  try:
    return cli_main.main(["synth", stage, "--gin_file", "synth/mini.gin", "--out", out,
                          "--corpus", corpus,
                          f"--gin.SynthConfig.langs={LANGS!r}",
                          f"--gin.SynthConfig.target_langs={LANGS[1:]!r}", *bindings])
  finally:
    gin.clear_config()


def _records(pattern):
  out = []
  for path in sorted(glob.glob(pattern)):
    with open(path, encoding="utf-8") as f:
      out += [json.loads(l) for l in f]
  return out


def test_parallel_and_teacher_stages_with_an_exported_checkpoint(export_dir, tmp_path):
  out, corpus = str(tmp_path / "synth"), str(tmp_path / "corpus")
  assert cli_main.main(["synth", "generate", "--out", corpus, "--synthetic_entities", "12"]) == 0
  model_bindings = ['--gin.SynthConfig.encoder="checkpoint"',
                    '--gin.SynthConfig.retriever="checkpoint"',
                    f'--gin.SynthConfig.checkpoint="{export_dir}"',
                    "--gin.SynthConfig.margin_threshold=0.0", "--gin.SynthConfig.teacher_top_k=5"]
  assert _synth("passages", out, corpus) == 0
  assert _synth("anchors", out, corpus) == 0
  assert _synth("parallel", out, corpus, *model_bindings) == 0
  assert _synth("teacher", out, corpus, *model_bindings) == 0
  with open(os.path.join(out, "stage1", "MANIFEST.json")) as f:
    manifest = json.load(f)
  assert manifest["complete"]
  records = _records(os.path.join(out, "stage1", "clr_pt.ja.jsonl-*"))
  assert records and all(len(r["teacher_pids"]) == 5 for r in records)

  # The teacher's scores are the exported model's dense scores (not BM25's).
  config, params, vocab, _ = load_exported(export_dir)
  import sentencepiece as spm
  from clqa_jax.models import UnifiedRetrieverReader
  sp = spm.SentencePieceProcessor(model_file=vocab)
  model = UnifiedRetrieverReader(config)

  def tok(text, length, eos):
    ids = sp.encode(text)[:length - int(eos)] + ([1] if eos else [])
    return np.asarray([ids + [0] * (length - len(ids))], np.int32)

  rows = {p[0]: p for p in passages_lib.read_tsv(os.path.join(out, "passages", "psgs_w100.tsv"))}
  r = records[0]
  q = model.apply({"params": params}, tok("question: " + r["question_en"], 50, False),
                  method=UnifiedRetrieverReader.encode_queries)
  pid = r["teacher_pids"][0]
  p = model.apply({"params": params}, tok(f"title: {rows[pid][1]} context: {rows[pid][2]}", 200,
                                          True), method=UnifiedRetrieverReader.encode_passages)
  np.testing.assert_allclose(r["teacher_scores"][0], float(np.asarray(q @ p.T)[0, 0]),
                             rtol=1e-4, atol=1e-5)
  assert r["teacher_scores"] == sorted(r["teacher_scores"], reverse=True)
  assert pid != r["source_pid"]


def test_seq2seq_backend_from_an_export_uses_the_mt5_backbone(export_dir, tmp_path):
  cfg = config_lib.SynthConfig(output_dir=str(tmp_path), rewrite_backend="seq2seq",
                               checkpoint=export_dir)
  backend = dofns.make_backend(cfg)
  items = [rewrite.RewriteItem("full", "ja", "フィンランドの首都は_X_である。")]
  config, params, vocab, _ = load_exported(export_dir)
  backbone = {k: v for k, v in params.items() if k != "retriever"}
  ref = rewrite.Seq2SeqBackend.from_params(config.mt5, backbone, vocab)
  assert backend.rewrite(items) == ref.rewrite(items)


def test_seq2seq_translator_decodes_t5_prompts_with_an_export(export_dir):
  from clqa_jax.synth import translation
  translator = translation.Seq2SeqTranslator.from_checkpoint(
      export_dir, config_lib.load_exported_checkpoint, batch_size=2, max_output_len=8)
  texts = ["The capital of Finland", "Helsinki", "Tokyo"]
  config, params, vocab, _ = load_exported(export_dir)
  backbone = {k: v for k, v in params.items() if k != "retriever"}
  ref = rewrite.Seq2SeqBackend.from_params(config.mt5, backbone, vocab, max_output_len=8)
  want = [translation.first_line(t) for t in ref.generate(
      [translation.seq2seq_prompt(t, "en", "ja") for t in texts])]
  assert translator.translate(texts, "en", "ja") == want
