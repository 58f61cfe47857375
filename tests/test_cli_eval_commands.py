"""clqa index / eval / infer command lines: help, gin files, resumption, refusals, infer output."""
import glob
import json
import os

import numpy as np
import pytest

from clqa_jax.checkpoints import exported
from clqa_jax.cli import main as cli_main
from fixtures.data.tiny_vocab import ROOT, tiny_vocab_path
from fixtures.export import tiny_run

PSGS = os.path.join(ROOT, "passages", "psgs_w100.tsv")
XOR_FULL = os.path.join(ROOT, "xor", "xor_dev_full_v1_1.jsonl")
ALL = os.path.join(ROOT, "passages", "all_w100.tsv")


# Command lines parse gin into the process-wide config (conftest.fresh_gin).
pytestmark = pytest.mark.usefixtures("fresh_gin")


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
  root = tmp_path_factory.mktemp("cli")
  config = tiny_run.tiny_config()
  dirs = []
  for seed in (7, 8):
    d = str(root / f"export{seed}")
    exported.write_exported(d, config, tiny_run.tiny_params(config, seed=seed), tiny_vocab_path())
    dirs.append(d)
  index = str(root / "index")
  assert cli_main.main(["index", "--export", dirs[0], "--corpus", PSGS, "--out", index,
                        "--batch_size", "8", "--rows_per_shard", "6"]) == 0
  return root, dirs, index


@pytest.mark.parametrize("name,words", [("index", ["resumable", "--searcher"]),
                                        ("eval", ["R@2kt", "--search", "official"]),
                                        ("infer", ["--question", "--questions_file"]),
                                        ("export", ["--format", "CLASS"])])
def test_help(name, words, capsys):
  with pytest.raises(SystemExit) as e:
    cli_main.main([name, "--help"])
  assert e.value.code == 0
  text = capsys.readouterr().out
  for w in words:
    assert w in text


def test_index_resumes_and_refuses_another_export(exports, capsys):
  root, dirs, index = exports
  emb = os.path.join(index, "embeddings")
  shards = sorted(glob.glob(os.path.join(emb, "emb-*.npy")))
  assert len(shards) == 3                                     # 16 passages, 6 per shard
  before = np.load(shards[1])
  # An interrupted run: shard 1 never finished, the index was never marked done.
  os.remove(shards[1].replace(".npy", ".json"))
  os.remove(os.path.join(index, "index.json"))
  mtime0 = os.path.getmtime(shards[0])
  assert cli_main.main(["index", "--export", dirs[0], "--corpus", PSGS, "--out", index,
                        "--batch_size", "8", "--rows_per_shard", "6"]) == 0
  np.testing.assert_array_equal(np.load(shards[1]), before)
  assert os.path.getmtime(shards[0]) == mtime0                # finished shards are kept
  assert cli_main.main(["index", "--export", dirs[1], "--corpus", PSGS, "--out", index]) == 2
  assert "another export" in capsys.readouterr().err
  assert cli_main.main(["index", "--export", dirs[0], "--corpus", ALL, "--out", index]) == 2
  assert "corpus" in capsys.readouterr().err


def test_eval_refuses_an_index_of_another_export(exports, capsys):
  root, dirs, index = exports
  assert cli_main.main(["eval", "--export", dirs[1], "--index", index, "--data_file",
                        XOR_FULL, "--out", str(root / "r")]) == 2
  assert "not " + dirs[1] in capsys.readouterr().err


def test_eval_with_gin_file_builds_the_index_from_corpus(exports, capsys):
  root, dirs, _ = exports
  out, index = str(root / "full"), str(root / "index_all")
  assert cli_main.main(["eval", "--gin_file", "eval/xor_full.gin", "--export", dirs[0],
                        "--index", index, "--corpus", ALL, "--data_file", XOR_FULL,
                        "--out", out, "--reader_k", "3", "--max_answer_length", "4",
                        "--langs", "ja", "fi"]) == 0
  assert os.path.exists(os.path.join(index, "index.json"))
  metrics = json.load(open(os.path.join(out, "metrics.json")))
  assert list(metrics) == ["xor-full"]                        # the gin file's mode = 'read'
  assert set(metrics["xor-full"]["per_language"]) <= {"ja", "fi"}
  run = json.load(open(os.path.join(out, "eval_run.json")))
  assert run["config"]["task"] == "xor-full" and run["config"]["reader_k"] == 3


def test_infer(exports, capsys, tmp_path):
  _, dirs, index = exports
  assert cli_main.main(["infer", "--export", dirs[0], "--index", index, "--question",
                        "Mikä on Suomen pääkaupunki?", "--lang", "fi", "--reader_k", "3",
                        "--max_answer_length", "4", "--show", "2"]) == 0
  out = capsys.readouterr().out
  assert "answer:" in out and out.count("  1. ") == 1 and "  2. " in out
  # Without --lang the script decides (question_language.RULE).
  assert cli_main.main(["infer", "--export", dirs[0], "--index", index, "--question",
                        "日本の首都は？", "--reader_k", "3", "--max_answer_length", "4"]) == 0
  assert "[ja] 日本の首都は？" in capsys.readouterr().out
  qfile = tmp_path / "q.jsonl"
  qfile.write_text('{"id": "a", "lang": "ja", "question": "日本の首都は？"}\n'
                   '{"question": "What is the capital of Finland?"}\n'
                   '{"question": "대한민국의 수도는?"}\n', encoding="utf-8")
  answers = tmp_path / "answers.jsonl"
  assert cli_main.main(["infer", "--export", dirs[0], "--index", index, "--questions_file",
                        str(qfile), "--reader_k", "3", "--max_answer_length", "4",
                        "--out", str(answers), "--lang", "en"]) == 0
  rows = [json.loads(l) for l in answers.read_text(encoding="utf-8").splitlines()]
  assert [r["id"] for r in rows] == ["a", "1", "2"]
  assert [r["lang"] for r in rows] == ["ja", "en", "en"]      # --lang: records without "lang"
  qfile.write_text('{"id": "k", "question": "대한민국의 수도는?"}\n', encoding="utf-8")
  assert cli_main.main(["infer", "--export", dirs[0], "--index", index, "--questions_file",
                        str(qfile), "--reader_k", "3", "--max_answer_length", "4",
                        "--out", str(answers), "--show", "0"]) == 0
  assert json.loads(answers.read_text(encoding="utf-8"))["lang"] == "ko"
  assert all(len(r["passages"]) == 3 and isinstance(r["answer"], str) for r in rows)
  scores = [p["score"] for p in rows[0]["passages"]]
  assert scores == sorted(scores, reverse=True)
  qfile.write_text('{"id": "x"}\n')
  assert cli_main.main(["infer", "--export", dirs[0], "--index", index, "--questions_file",
                        str(qfile)]) == 2
  assert f"clqa infer: error: {qfile}:1: question: missing" in capsys.readouterr().err
