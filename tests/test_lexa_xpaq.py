"""LEXA's XPAQ filter (peer-methods 3.4, 3.8): each candidate's max dot product over the XOR
questions, the top N kept best first and written as the candidates' own JSON objects, against
numpy on a small file; chunking changes nothing."""
import argparse
import json

import numpy as np
import pytest

from clqa_jax.cli import xpaq_cmd
from clqa_jax.cli.errors import UsageError
from clqa_jax.data.errors import DataFormatError
from clqa_jax.data.records import Question
from clqa_jax.index import xpaq

DIM = 5


def _vector(text):
  """A deterministic stand-in query encoder: a seeded random vector per question text."""
  seed = sum(ord(c) * (i + 1) for i, c in enumerate(text)) % (2**32)
  return np.random.default_rng(seed).normal(size=DIM).astype(np.float32)


def _tokenize(questions):
  # The "tokens" carry the text index; the encoder maps them back to the text's vector.
  _tokenize.texts = getattr(_tokenize, "texts", [])
  start = len(_tokenize.texts)
  _tokenize.texts.extend(q.question for q in questions)
  return np.arange(start, start + len(questions))[:, None]


def _encode(tokens):
  return np.stack([_vector(_tokenize.texts[int(t)]) for t in tokens[:, 0]])


def _write_candidates(path, n=23):
  rows = [{"question": f"candidate question {i}?", "answer": [f"a{i}"], "subsets": ["L1"]}
          for i in range(n)]
  if n > 7:
    rows[7]["question"] = rows[3]["question"]  # a tie: the earlier record ranks first
  lines = [json.dumps(r) for r in rows]
  path.write_text("\n".join(lines[:2]) + "\n\n" + "\n".join(lines[2:]) + "\n")  # a blank line
  return rows


@pytest.mark.parametrize("chunk_size", [4, 1000])
def test_keeps_the_top_n_by_max_similarity(tmp_path, chunk_size):
  rows = _write_candidates(tmp_path / "paq.jsonl")
  xor = [Question(qid=f"x{i}", lang=l, question=f"xor {i}", answers=())
         for i, l in enumerate(["ja", "fi", "ru"])]
  out = tmp_path / "xpaq.jsonl"
  report = xpaq.select_xpaq(_encode, _tokenize, str(tmp_path / "paq.jsonl"), xor, str(out),
                            keep=6, chunk_size=chunk_size)
  cand = np.stack([_vector(r["question"]) for r in rows])
  targets = np.stack([_vector(q.question) for q in xor])
  scores = (cand.astype(np.float64) @ targets.T).max(axis=1)
  want = sorted(range(len(rows)), key=lambda i: (-scores[i], i))[:6]
  got = [json.loads(line) for line in out.read_text().splitlines()]
  assert [{k: v for k, v in g.items() if k != "xpaq_score"} for g in got] == [rows[i] for i in want]
  np.testing.assert_allclose([g["xpaq_score"] for g in got], scores[want], rtol=1e-5, atol=1e-5)
  assert (report.candidates, report.xor_questions, report.kept) == (23, 3, 6)
  if 3 in want and 7 in want:
    assert want.index(3) < want.index(7)


def test_keep_beyond_the_candidates_keeps_all(tmp_path):
  rows = _write_candidates(tmp_path / "paq.jsonl", n=3)
  xor = [Question(qid="x", lang="ja", question="xor", answers=())]
  out = tmp_path / "xpaq.jsonl"
  assert xpaq.select_xpaq(_encode, _tokenize, str(tmp_path / "paq.jsonl"), xor, str(out),
                          keep=10).kept == 3
  assert sorted(json.loads(l)["answer"][0] for l in out.read_text().splitlines()) == [
      r["answer"][0] for r in rows]


def test_a_candidate_without_a_question_names_its_line(tmp_path):
  (tmp_path / "paq.jsonl").write_text('{"question": "ok?"}\n{"answer": ["x"]}\n')
  xor = [Question(qid="x", lang="ja", question="xor", answers=())]
  with pytest.raises(DataFormatError, match=r"paq.jsonl:2: question"):
    xpaq.select_xpaq(_encode, _tokenize, str(tmp_path / "paq.jsonl"), xor,
                     str(tmp_path / "out.jsonl"))
  assert not (tmp_path / "out.jsonl").exists()


def test_cli_rejects_a_non_positive_keep():
  parser = argparse.ArgumentParser()
  xpaq_cmd.add_arguments(parser)
  args = parser.parse_args(["--export", "e", "--candidates", "c", "--xor_questions", "x",
                            "--out", "o", "--keep", "0"])
  with pytest.raises(UsageError, match="--keep"):
    xpaq_cmd.run(args)
