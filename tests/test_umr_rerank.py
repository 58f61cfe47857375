"""``clqa rerank`` (UMR re-ranking): the scored lists are the teacher's s_LM of each pair, sorted;
the score cache makes a later round score only unseen (qid, pid) pairs (oracle O4); a finished
job reruns as a no-op; sharded workers fill the cache, one run then writes."""
import os

import numpy as np
import pytest

pytest.importorskip("transformers")

from clqa_jax.cli import main as cli_main  # noqa: E402
from clqa_jax.data.passage_store import PassageStore, read_passages  # noqa: E402
from clqa_jax.data.retrieval_store import RetrievalStore  # noqa: E402
from clqa_jax.index import rerank  # noqa: E402
from clqa_jax.index.score_cache import ScoreCache, ScoreCacheMismatchError  # noqa: E402
from clqa_jax.losses.query_likelihood import ScoringItem  # noqa: E402
from fixtures.data.tiny_vocab import ROOT, tiny_vocab_path  # noqa: E402
from fixtures.umr.teacher import write_tiny_teacher  # noqa: E402

CORPUS = os.path.join(ROOT, "passages", "psgs_w100.tsv")
QUESTIONS = os.path.join(ROOT, "xor", "xor_train_retrieve_eng_span.jsonl")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("rerank")
  store = PassageStore.build(CORPUS, tiny_vocab_path(), str(tmp / "passages"), progress=False)
  teacher_dir = write_tiny_teacher(str(tmp / "teacher"), tiny_vocab_path())
  return store, teacher_dir, rerank.read_questions(QUESTIONS)


def _write_lists(root, step, qids, rows, store):
  RetrievalStore(root).write(step, qids, np.asarray(rows), k=len(rows[0]),
                             meta={"passage_store": store.directory})


def test_rerank_scores_sorts_and_caches(setup, tmp_path):
  store, teacher_dir, questions = setup
  qids = sorted(questions)[:3]
  retrieval, out, cache = (str(tmp_path / n) for n in ("retrieval", "out", "cache"))
  _write_lists(retrieval, 0, qids, [[0, 1, 2, 3], [4, 5, 6, -1], [7, 8, 9, 10]], store)
  teacher = rerank.load_teacher(teacher_dir, batch_size=4)
  result = rerank.rerank(retrieval, out, teacher, questions, cache_dir=cache, progress=False)
  assert (result.pairs, result.scored, teacher.calls) == (11, 11, 3)
  version = RetrievalStore(out).latest()
  assert version.step == 0 and version.meta["teacher"]["prompt"].startswith("Passage:  ")
  rows, scores = version.lookup(qids), version.lookup_scores(qids)
  texts = read_passages(store, range(11), CORPUS)
  for i, qid in enumerate(qids):
    real = rows[i] >= 0
    assert sorted(rows[i][real].tolist()) == sorted(
        [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9, 10]][i])
    q = questions[qid]
    want = teacher.score([ScoringItem(q.question, q.lang, texts[r].title, texts[r].text)
                          for r in rows[i][real]])
    np.testing.assert_allclose(scores[i][real], want, atol=1e-5)
    assert (np.diff(scores[i][real]) <= 0).all()          # best first
    assert np.isneginf(scores[i][~real]).all()

  # Rerunning the finished job scores and writes nothing.
  again = rerank.load_teacher(teacher_dir, batch_size=4)
  result = rerank.rerank(retrieval, out, again, questions, cache_dir=cache, progress=False)
  assert (result.scored, again.calls, result.existing) == (0, 0, [out])

  # Round 2 (O4): new lists overlapping the old ones; only the 3 unseen pairs are scored.
  _write_lists(retrieval, 5, qids, [[3, 2, 1, 11], [4, 5, 6, 12], [7, 8, 9, 13]], store)
  round2 = rerank.load_teacher(teacher_dir, batch_size=4)
  result = rerank.rerank(retrieval, str(tmp_path / "out2"), round2, questions, cache_dir=cache,
                         progress=False)
  assert (result.pairs, result.scored, round2.calls) == (12, 3, 1)
  assert len(ScoreCache(cache, round2.identity)) == 14


def test_shards_fill_the_cache_then_one_run_writes(setup, tmp_path):
  store, teacher_dir, questions = setup
  qids = sorted(questions)[:4]
  retrieval = str(tmp_path / "retrieval" / "process_00000")
  _write_lists(retrieval, 2, qids, [[0, 1], [2, 3], [4, 5], [6, 7]], store)
  cache, out = str(tmp_path / "cache"), str(tmp_path / "out")
  scored = []
  for shard in range(2):
    teacher = rerank.load_teacher(teacher_dir, batch_size=8)
    result = rerank.rerank(str(tmp_path / "retrieval"), out, teacher, questions,
                           cache_dir=cache, num_shards=2, shard_index=shard, progress=False)
    scored.append(result.scored)
    assert result.written == []
  assert scored == [4, 4]
  teacher = rerank.load_teacher(teacher_dir, batch_size=8)
  result = rerank.rerank(str(tmp_path / "retrieval"), out, teacher, questions, cache_dir=cache,
                         progress=False)
  assert (result.scored, teacher.calls) == (0, 0)
  assert RetrievalStore(os.path.join(out, "process_00000")).latest().step == 2
  # A cache made by another teacher is refused.
  with pytest.raises(ScoreCacheMismatchError, match="another teacher"):
    ScoreCache(cache, {**teacher.identity, "checkpoint": "/elsewhere"})


def test_cli_reranks_and_reports_bad_input(setup, tmp_path, capsys):
  store, teacher_dir, questions = setup
  retrieval = str(tmp_path / "retrieval")
  _write_lists(retrieval, 0, sorted(questions)[:2], [[0, 1], [2, 3]], store)
  args = ["rerank", "--retrieval", retrieval, "--questions", QUESTIONS, "--teacher", teacher_dir,
          "--out", str(tmp_path / "out"), "--no_progress"]
  assert cli_main.main(args) == 0
  assert "4 pairs, 4 scored now" in capsys.readouterr().out
  assert RetrievalStore(str(tmp_path / "out")).latest().k == 2
  assert cli_main.main(args[:-1] + ["--shard_index", "3"]) == 2
  assert "--shard_index 3" in capsys.readouterr().err
  assert cli_main.main(["rerank", "--retrieval", str(tmp_path / "none"), "--questions",
                        QUESTIONS, "--teacher", teacher_dir, "--out", str(tmp_path / "o")]) == 2
  assert "neither a retrieval store" in capsys.readouterr().err
