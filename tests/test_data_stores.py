"""PassageStore, RetrievalStore, FiD batch assembly and global batches (numpy + JAX, no TF)."""
import os
import shutil
import sys

import jax
import numpy as np
import pytest
import sentencepiece as spm
from fake_gcs import fake_gcs, object_paths  # noqa: F401  (fake_gcs is a fixture)
from jax.sharding import Mesh

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "fixtures", "data"))
import tiny_vocab  # noqa: E402

from clqa_jax import fileio  # noqa: E402
from clqa_jax.data import fid_batch  # noqa: E402
from clqa_jax.data import passage_store as ps_lib  # noqa: E402
from clqa_jax.data import readers  # noqa: E402
from clqa_jax.data.errors import DataFormatError, StoreMismatchError  # noqa: E402
from clqa_jax.data.retrieval_store import RetrievalStore, exclude_and_truncate  # noqa: E402

ROOT = tiny_vocab.ROOT


@pytest.fixture(scope="module")
def vocab_path():
  return tiny_vocab.tiny_vocab_path()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  """The multilingual fixture corpus plus one very long passage (truncation) and string pids."""
  d = tmp_path_factory.mktemp("corpus")
  path = d / "all_w100.tsv"
  lines = open(os.path.join(ROOT, "passages", "all_w100.tsv"), encoding="utf-8").read()
  long_text = " ".join(["Helsinki Tokyo Seoul Moscow Cairo"] * 80)
  path.write_text(lines + f"900\t{long_text}\tLong\n", encoding="utf-8")
  return str(path)


@pytest.fixture(scope="module")
def store(corpus, vocab_path, tmp_path_factory):
  return ps_lib.PassageStore.build(corpus, vocab_path, str(tmp_path_factory.mktemp("s") / "store"),
                                   chunk_size=5, progress=False)


def test_passage_store_tokens_match_template(store, corpus, vocab_path):
  sp = spm.SentencePieceProcessor(model_file=vocab_path)
  passages = list(readers.read_passages_tsv(corpus))
  assert len(store) == len(passages) == 33
  rows = store.rows([p.pid for p in passages])
  np.testing.assert_array_equal(rows, np.arange(33))
  for p, row in zip(passages, rows):
    ids = sp.encode(f"title: {p.title} context: {p.text}")[:199] + [1]
    got = store.tokens(np.array([row]))[0]
    assert store.lengths(np.array([row]))[0] == len(ids)
    np.testing.assert_array_equal(got[:len(ids)], ids)
    assert not got[len(ids):].any()
    assert store.pid(row) == p.pid
  # The long passage is truncated to 200 with EOS kept last.
  long_row = store.rows(["900"])[0]
  assert store.lengths(np.array([long_row]))[0] == 200 and store.tokens_array[long_row, -1] == 1
  assert store.manifest["count"] == 33 and store.manifest["lengths"]["max"] == 200
  assert store.manifest["lengths"]["truncated_fraction"] == pytest.approx(1 / 33)
  # Padding rows are all-pad passages; unknown pids raise or pad.
  assert not store.tokens(np.array([[-1, -1]])).any()
  assert store.tokens(np.array([[0, -1]])).shape == (1, 2, 200)
  with pytest.raises(KeyError):
    store.rows(["12345"])
  np.testing.assert_array_equal(store.rows(["5", "nope", "05"], missing="pad"), [4, -1, -1])


def test_passage_store_refuses_other_corpus_or_vocab(store, corpus, vocab_path, tmp_path):
  # Same corpus and vocabulary: opened, not rebuilt.
  again = ps_lib.PassageStore.build(corpus, vocab_path, store.directory, progress=False)
  assert again.manifest == store.manifest
  other = tmp_path / "psgs_w100.tsv"
  shutil.copy(os.path.join(ROOT, "passages", "psgs_w100.tsv"), other)
  with pytest.raises(StoreMismatchError, match="built from"):
    ps_lib.PassageStore.build(str(other), vocab_path, store.directory, progress=False)
  with pytest.raises(StoreMismatchError, match="built from"):
    ps_lib.PassageStore.open(store.directory, corpus_path=str(other))
  # A different vocabulary (a retrained model differs in bytes).
  text = tmp_path / "t.txt"
  text.write_text("\n".join(tiny_vocab.fixture_sentences()), encoding="utf-8")
  from clqa_jax.data import spm_train
  other_vocab = spm_train.train_sentencepiece([str(text)], 700, str(tmp_path / "o.model"),
                                              hard_vocab_limit=False)
  with pytest.raises(StoreMismatchError, match="vocabulary"):
    ps_lib.PassageStore.open(store.directory, vocab=other_vocab)


def test_passage_store_resumes_interrupted_build(corpus, vocab_path, tmp_path, monkeypatch, store):
  target = str(tmp_path / "store")
  real = spm.SentencePieceProcessor.encode
  calls = {"n": 0}

  def flaky(self, *a, **k):
    calls["n"] += 1
    if calls["n"] == 3:
      raise KeyboardInterrupt("simulated crash")
    return real(self, *a, **k)
  monkeypatch.setattr(spm.SentencePieceProcessor, "encode", flaky)
  with pytest.raises(KeyboardInterrupt):
    ps_lib.PassageStore.build(corpus, vocab_path, target, chunk_size=5, progress=False)
  assert not os.path.exists(target)  # nothing half-built is visible
  assert os.path.exists(target + ".build/progress.json")
  resumed = ps_lib.PassageStore.build(corpus, vocab_path, target, chunk_size=5, progress=False)
  assert calls["n"] == 3 + 5  # 10 rows were kept; the remaining 23 need 5 more chunks
  np.testing.assert_array_equal(resumed.tokens_array, store.tokens_array)
  assert not os.path.exists(target + ".build")


def test_passage_store_rejects_duplicate_pids_and_bad_rows(tmp_path, vocab_path):
  dup = tmp_path / "d.tsv"
  dup.write_text("id\ttext\ttitle\n1\ta\tA\n2\tb\tB\n1\tc\tC\n", encoding="utf-8")
  with pytest.raises(ValueError, match="more than once"):
    ps_lib.PassageStore.build(str(dup), vocab_path, str(tmp_path / "s1"), progress=False)
  bad = tmp_path / "b.tsv"
  bad.write_text("id\ttext\ttitle\nx1\ta\tA\nx2\tb\nx3\tc\tC\n", encoding="utf-8")
  with pytest.raises(DataFormatError):
    ps_lib.PassageStore.build(str(bad), vocab_path, str(tmp_path / "s2"), progress=False)
  s = ps_lib.PassageStore.build(str(bad), vocab_path, str(tmp_path / "s3"), progress=False,
                                skip_errors=True)
  assert len(s) == 2 and s.manifest["skipped_rows"] == 1 and s.manifest["pid_dtype"] == "bytes"
  np.testing.assert_array_equal(s.rows(["x3", "x1"]), [1, 0])



def test_passage_store_on_gs_path(store, corpus, vocab_path, fake_gcs):
  """Built locally, uploaded with manifest.json last, opened from a local copy; the files are
  those of a local build."""
  remote = "gs://bucket/stores/all"
  built = ps_lib.PassageStore.build(corpus, vocab_path, remote, chunk_size=5, progress=False)
  names = sorted(os.listdir(store.directory))
  assert object_paths(fake_gcs) == [f"{remote}/{n}" for n in names]
  for name in names:
    if name != "manifest.json":  # build_seconds differs
      with open(os.path.join(store.directory, name), "rb") as f:
        assert fileio.read_bytes(f"{remote}/{name}") == f.read(), name
  np.testing.assert_array_equal(built.tokens_array, store.tokens_array)
  assert not fileio.is_remote(built.tokens_array.filename)
  again = ps_lib.PassageStore.build(corpus, vocab_path, remote, progress=False)  # reopened
  assert again.manifest == built.manifest
  np.testing.assert_array_equal(again.rows(["5", "900"]), store.rows(["5", "900"]))
  assert not os.path.exists(ps_lib._build_dir(remote))

# -- RetrievalStore ----------------------------------------------------------------------------


def test_exclude_and_truncate():
  rows = np.array([[5, 3, 7, 9], [2, -1, 4, 1], [8, 8, 8, 8]])
  out, scores = exclude_and_truncate(rows, np.array([3, -1, 8]), 3,
                                     np.arange(12, dtype=np.float32).reshape(3, 4))
  np.testing.assert_array_equal(out, [[5, 7, 9], [2, 4, 1], [-1, -1, -1]])
  np.testing.assert_array_equal(scores[0], [0, 2, 3])
  out, _ = exclude_and_truncate(rows[:, :2], None, 3)
  np.testing.assert_array_equal(out, [[5, 3, -1], [2, -1, -1], [8, 8, -1]])


def test_retrieval_store_versions_swap_atomically(tmp_path):
  rs = RetrievalStore(str(tmp_path / "r"), keep_versions=2)
  with pytest.raises(FileNotFoundError):
    rs.latest()
  v1 = rs.write(100, ["q2", "q1"], np.array([[1, 2, 3], [4, 5, 6]]), source_rows=np.array([2, -1]), k=2)
  np.testing.assert_array_equal(v1.lookup(["q1", "q2"]), [[4, 5], [1, 3]])
  old_reader = rs.latest()
  rs.write(200, ["q1", "q2"], np.array([[7, 8], [9, 10]]), k=2)
  # The old version is untouched for its reader; LATEST moved.
  np.testing.assert_array_equal(old_reader.lookup(["q1"]), [[4, 5]])
  assert rs.latest().step == 200
  np.testing.assert_array_equal(rs.latest().lookup(["q1"]), [[7, 8]])
  with pytest.raises(FileExistsError):
    rs.write(200, ["q1"], np.array([[1]]), k=1)
  rs.write(300, ["q1"], np.array([[1]]), k=1)
  assert rs.versions() == [200, 300]  # pruned to keep_versions
  with pytest.raises(KeyError, match="q9"):
    rs.latest().lookup(["q9"])
  assert not [f for f in os.listdir(tmp_path / "r") if f.startswith(".")]



def test_retrieval_store_on_gs_path(tmp_path, fake_gcs):
  local, remote = RetrievalStore(str(tmp_path / "r"), keep_versions=1), RetrievalStore(
      "gs://bucket/r", keep_versions=1)
  assert remote.versions() == []
  with pytest.raises(FileNotFoundError):
    remote.latest()
  for rs in (local, remote):
    rs.write(100, ["q2", "q1"], np.array([[1, 2, 3], [4, 5, 6]]), source_rows=np.array([2, -1]),
             k=2, meta={"window": "next"})
    rs.write(200, ["q1", "q2"], np.array([[7, 8], [9, 10]]), scores=np.ones((2, 2)), k=2)
  assert remote.versions() == [200] and remote.latest().step == 200
  np.testing.assert_array_equal(remote.latest().lookup(["q2"]), [[9, 10]])
  np.testing.assert_array_equal(remote.latest().lookup_scores(["q2"]), [[1, 1]])
  names = ["LATEST"] + [f"step_0000000200/{n}" for n in
                        ("meta.json", "qids.npy", "rows.npy", "scores.npy")]
  assert object_paths(fake_gcs) == [f"gs://bucket/r/{n}" for n in names]
  for name in names:
    assert fileio.read_bytes(f"gs://bucket/r/{name}") == (tmp_path / "r" / name).read_bytes()

# -- FiD batches -------------------------------------------------------------------------------


def _question_batch(store):
  return {
      "qid": np.array([b"fi-1-0", b"ja-2-0"], object),
      "question": np.array([[5, 6, 7] + [0] * 47, [8, 9] + [0] * 48], np.int32),
      "question_en": np.array([[11, 12] + [0] * 48, [13] + [0] * 49], np.int32),
      "answer": np.array([[20, 21, 1] + [0] * 47, [22, 1] + [0] * 48], np.int32),
      "teacher_pids": np.array([[b"1", b"17", b"3"], [b"2", b"", b""]], object),
      "source_pid": np.array([b"1", b"2"], object),
  }


def test_fid_batch_from_teacher_pids(store):
  batch = _question_batch(store)
  out = fid_batch.FiDBatchAssembler(store, "teacher_pids", k=4)(batch)
  assert set(out) == set(fid_batch.STAGE1_FEATURES)
  np.testing.assert_array_equal(out["passage_rows"], [[0, 16, 2, -1], [1, -1, -1, -1]])
  assert out["passage_tokens"].shape == (2, 4, 200) and out["passage_tokens"].dtype == np.int32
  np.testing.assert_array_equal(out["passage_tokens"][0, 1], store.tokens(np.array([16]))[0])
  assert not out["passage_tokens"][1, 1:].any()
  np.testing.assert_array_equal(out["decoder_input_tokens"][0, :4], [0, 20, 21, 1])
  np.testing.assert_array_equal(out["decoder_target_tokens"][0, :4], [20, 21, 1, 0])
  np.testing.assert_array_equal(out["decoder_loss_weights"][1, :3], [1, 1, 0])
  np.testing.assert_array_equal(out["query_en_tokens"], batch["question_en"])


def test_fid_batch_passage_length_cuts_the_stored_tokens(store):
  batch = _question_batch(store)
  full = fid_batch.FiDBatchAssembler(store, "teacher_pids", k=4)(batch)["passage_tokens"]
  cut = fid_batch.FiDBatchAssembler(store, "teacher_pids", k=4, passage_length=7,
                                    answer_length=3)(batch)
  assert cut["passage_tokens"].shape == (2, 4, 7)
  np.testing.assert_array_equal(cut["passage_tokens"], full[..., :7])
  assert cut["decoder_target_tokens"].shape == (2, 3)


def test_fid_batch_source_first(store):
  batch = _question_batch(store)
  batch["source_pid"] = np.array([b"3", b"2"], object)  # q0's source among its pids, q1's not
  out = fid_batch.FiDBatchAssembler(store, "teacher_pids", k=3, source_first=True)(batch)
  # The source first, then the retrieved passages other than it, K kept.
  np.testing.assert_array_equal(out["passage_rows"], [[2, 0, 16], [1, -1, -1]])
  np.testing.assert_array_equal(out["passage_tokens"][0, 0], store.tokens(np.array([2]))[0])
  batch["source_pid"] = np.array([b"3", b"nope"], object)
  with pytest.raises(KeyError, match="nope"):
    fid_batch.FiDBatchAssembler(store, "teacher_pids", k=3, source_first=True)(batch)


def test_fid_batch_teacher_inputs(store, corpus, tmp_path):
  # The teacher has its own vocabulary: a second store of the same corpus.
  text = tmp_path / "t.txt"
  text.write_text("\n".join(tiny_vocab.fixture_sentences()), encoding="utf-8")
  from clqa_jax.data import spm_train
  teacher_vocab = spm_train.train_sentencepiece([str(text)], 700, str(tmp_path / "teacher.model"),
                                                hard_vocab_limit=False)
  teacher_store = ps_lib.PassageStore.build(corpus, teacher_vocab, str(tmp_path / "ts"), progress=False)
  batch = _question_batch(store)
  batch["question_en_pretokenized"] = np.array([b"question: _X_ is a city.", b"question: _X_ ?"], object)
  teacher = fid_batch.TeacherInputs(teacher_store, teacher_vocab)
  out = fid_batch.FiDBatchAssembler(store, "teacher_pids", k=4, teacher=teacher)(batch)
  sp = spm.SentencePieceProcessor(model_file=teacher_vocab)
  want = sp.encode("question: _X_ is a city.")
  np.testing.assert_array_equal(out["teacher_query_tokens"][0, :len(want)], want)
  assert not out["teacher_query_tokens"][0, len(want):].any()
  np.testing.assert_array_equal(out["teacher_passage_tokens"][0, 1], teacher_store.tokens(np.array([16]))[0])
  assert not (out["teacher_passage_tokens"][0, :3] == out["passage_tokens"][0, :3]).all()
  other = ps_lib.PassageStore.build(os.path.join(ROOT, "passages", "psgs_w100.tsv"), teacher_vocab,
                                    str(tmp_path / "other"), progress=False)
  with pytest.raises(ValueError, match="another corpus"):
    fid_batch.FiDBatchAssembler(store, "teacher_pids", k=4, teacher=fid_batch.TeacherInputs(other, teacher_vocab))


def test_fid_batch_from_refreshed_retrieval(store, tmp_path):
  rs = RetrievalStore(str(tmp_path / "r"))
  source = store.rows(["1", "2"])
  rs.write(10, ["fi-1-0", "ja-2-0"], np.array([[0, 5, 6], [7, 1, 8]]), source_rows=source, k=3)
  batch = {k: v for k, v in _question_batch(store).items() if k not in ("question_en", "teacher_pids")}
  assembler = fid_batch.FiDBatchAssembler(store, rs, k=3)
  out = assembler(batch)
  assert "query_en_tokens" not in out
  np.testing.assert_array_equal(out["passage_rows"], [[5, 6, -1], [7, 8, -1]])
  rs.write(20, ["fi-1-0", "ja-2-0"], np.array([[9, 10, 11], [12, 13, 14]]), k=3)
  np.testing.assert_array_equal(assembler(batch)["passage_rows"][0], [9, 10, 11])  # refresh seen


def test_make_global_batch_shards_over_data_axis(store):
  devices = np.array(jax.devices()[:8]).reshape(4, 2)
  mesh = Mesh(devices, ("data", "model"))
  batch = _question_batch(store)
  local = fid_batch.FiDBatchAssembler(store, "teacher_pids", k=4)(
      {k: np.concatenate([v, v]) for k, v in batch.items()})
  arrays = fid_batch.make_global_batch(local, mesh)
  assert arrays["passage_tokens"].shape == (4, 4, 200)
  assert arrays["passage_tokens"].sharding.spec[0] == "data"
  np.testing.assert_array_equal(np.asarray(arrays["passage_rows"]), local["passage_rows"])
  assert len(arrays["query_tokens"].addressable_shards) == 8
