"""A full in-process (FnApiRunner) run over the mini corpus (en, fi, ja) producing the contract's files,
read back with the data package's readers; resumption; the HTTP backend inside the qa stage."""
import dataclasses
import glob
import json
import os
import shutil

import pytest

from fixtures.synth import openai_server

from clqa_jax.data import readers
from clqa_jax.synth import config as config_lib
from clqa_jax.synth import manifest
from clqa_jax.synth import stages

TARGETS = ("fi", "ja")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("synth"))
  cfg = config_lib.SynthConfig(output_dir=out, langs=("en",) + TARGETS, target_langs=TARGETS)
  return cfg, stages.run_all(cfg)


def _shards(out, pattern):
  files = readers.expand_shards(os.path.join(out, pattern))
  assert files, pattern
  return files


def test_layout_and_manifests(run):
  cfg, results = run
  for stage_dir in ("passages", "anchors", "parallel", "stage1", "stage2", "xor"):
    m = manifest.read_manifest(os.path.join(cfg.output_dir, stage_dir))
    assert m["complete"] and m["files"], stage_dir
    for f in m["files"]:
      assert os.path.exists(os.path.join(cfg.output_dir, stage_dir, f))
  assert not glob.glob(os.path.join(cfg.output_dir, ".*tmp*"))  # staging dirs are gone
  s1 = results["teacher"]["counts"]["records"]
  assert set(s1) == set(TARGETS) and min(s1.values()) > 50
  for variant in ("retrieve", "full"):
    assert set(results["qa"]["counts"][variant]) == set(TARGETS)
  assert results["parallel"]["counts"]["pairs"]["ja"] > 50


def test_passages_tsv(run):
  cfg, results = run
  en = list(readers.read_passages_tsv(os.path.join(cfg.output_dir, "passages", "psgs_w100.tsv")))
  every = list(readers.read_passages_tsv(os.path.join(cfg.output_dir, "passages", "all_w100.tsv")))
  assert {p.pid.split("_")[0] for p in en} == {"en"}
  assert {p.pid.split("_")[0] for p in every} == {"en", "fi", "ja"}
  assert len({p.pid for p in every}) == len(every)
  assert len(every) == sum(results["passages"]["counts"]["passages"].values())
  assert all(len(p.text.split()) <= 100 for p in en)
  helsinki = [p for p in every if p.title == "ヘルシンキ"]
  assert helsinki and "フィンランド" in helsinki[0].text and " " not in helsinki[0].text


def test_stage1_records(run):
  cfg, _ = run
  pids = {p.pid for p in readers.read_passages_tsv(os.path.join(cfg.output_dir, "passages", "psgs_w100.tsv"))}
  for lang in TARGETS:
    recs = [r for f in _shards(cfg.output_dir, f"stage1/clr_pt.{lang}.jsonl-*") for r in readers.read_stage1_jsonl(f)]
    assert recs and all(r.lang == lang for r in recs)
    assert len({r.id for r in recs}) == len(recs)
    masked = sum("_X_" in r.question for r in recs)
    assert masked / len(recs) >= 0.9
    for r in recs:
      assert r.id.split("-")[1] == r.source_pid and r.source_pid in pids
      assert "_X_" in r.question_en and r.answers[0] not in r.question_en
      assert r.source_pid not in r.teacher_pids and set(r.teacher_pids) <= pids
      assert 0 < len(r.teacher_pids) <= 100
      assert list(r.teacher_scores) == sorted(r.teacher_scores, reverse=True)
  helsinki = [r for r in recs if r.question_en == "The capital of Finland is _X_."]
  assert helsinki[0].question == "フィンランドの首都は_X_である。" and helsinki[0].answers == ("Helsinki",)
  # BM25 ranks the answer's article first for the cloze.
  assert helsinki[0].teacher_pids[0] in {p.pid for p in readers.read_passages_tsv(
      os.path.join(cfg.output_dir, "passages", "psgs_w100.tsv")) if p.title == "Helsinki"}


def test_stage2_records(run):
  cfg, _ = run
  all_pids = {p.pid for p in readers.read_passages_tsv(os.path.join(cfg.output_dir, "passages", "all_w100.tsv"))}
  for lang in TARGETS:
    full = [r for f in _shards(cfg.output_dir, f"stage2/xor_full.{lang}.jsonl-*") for r in readers.read_stage2_jsonl(f)]
    ret = [r for f in _shards(cfg.output_dir, f"stage2/xor_retrieve.{lang}.jsonl-*") for r in readers.read_stage2_jsonl(f)]
    assert full and ret
    assert all(r.answer_lang == lang and r.source_pid.startswith(lang + "_") for r in full)
    assert all(r.answer_lang == "en" and r.source_pid.startswith("en_") for r in ret)
    assert all(r.source_pid in all_pids and r.rewrite_backend == "cloze" and "_X_" in r.question for r in full + ret)
  ja = [r for f in _shards(cfg.output_dir, "stage2/xor_full.ja.jsonl-*") for r in readers.read_stage2_jsonl(f)]
  assert any(r.answers == ("ヘルシンキ",) and r.question == "フィンランドの首都は_X_である。" for r in ja)


def test_questions_copied(run):
  cfg, _ = run
  qs = list(readers.read_xor_jsonl(os.path.join(cfg.output_dir, "xor", "xor_dev_full.jsonl")))
  assert {q.lang for q in qs} == {"ar", "bn", "fi", "ja", "ko", "ru", "te"}


def test_rerun_skips_and_conflicts_need_overwrite(run):
  cfg, _ = run
  again = stages.run_all(cfg)
  assert all(m["skipped"] for m in again.values())
  changed = dataclasses.replace(cfg, margin_threshold=1.2)
  with pytest.raises(manifest.StageConflictError):
    stages.run_parallel(changed)


def test_qa_stage_with_http_backend(run, tmp_path):
  cfg, _ = run
  out = str(tmp_path / "http")
  os.makedirs(out)
  shutil.copytree(os.path.join(cfg.output_dir, "anchors"), os.path.join(out, "anchors"))
  with openai_server.serve(fail_first=1) as srv:
    http_cfg = dataclasses.replace(
        cfg, output_dir=out, rewrite_backend="http", rewrite_batch_size=64,
        http=config_lib.HttpConfig(base_url=srv.url, model="m", api="completions", batch_size=64,
                                   backoff_s=0.01))
    result = stages.run_qa(http_cfg)
    n_requests = len(srv.requests)
    recs = [r for f in _shards(out, "stage2/xor_full.ja.jsonl-*") for r in readers.read_stage2_jsonl(f)]
    assert recs and all(r.rewrite_backend == "http" and "_X_" not in r.question for r in recs)
    assert any(r.question == "フィンランドの首都は何である？" for r in recs)
    # The fake model answers retrieve prompts in English: the script filter drops them for ja.
    assert "ja" not in result["counts"]["retrieve"]
    n_ja_retrieve = result["counts"]["clozes"]["ja"] - result["counts"]["full"]["ja"]
    assert result["counts"]["dropped"]["script"] == n_ja_retrieve
    assert result["counts"]["retrieve"]["fi"] > 0
    # A rerun from scratch is served from the response cache.
    shutil.rmtree(os.path.join(out, "stage2"))
    stages.run_qa(http_cfg)
    assert len(srv.requests) == n_requests
