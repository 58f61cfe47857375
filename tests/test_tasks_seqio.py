"""SeqIO tasks on literal raw data (every family), TFDS builders, mixtures, batches, inspect."""
import collections
import itertools
import json
import os
import shutil
import sys

import gin
import numpy as np
import pytest
import sentencepiece as spm
import seqio

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "fixtures", "data"))
import tiny_vocab  # noqa: E402

from clqa_jax import tasks  # noqa: E402
from clqa_jax.data import mixing  # noqa: E402
from clqa_jax.data import paths  # noqa: E402
from clqa_jax.data import pipeline  # noqa: E402
from clqa_jax.data import preprocessors as pp  # noqa: E402
from clqa_jax.data import text_normalize  # noqa: E402
from clqa_jax.data import tfds_builders  # noqa: E402

SEQ = dict(pp.SEQUENCE_LENGTH)

# Literal raw records written into the data root (beside the fixture files).
LEAKY_STAGE1 = {
    "id": "te-7-0", "lang": "te", "source_pid": "7", "answers": ["Hyderabad"],
    "question_en": "_X_ is the capital of Telangana.",
    "question": "\u201cHyderabad\u201d \u2014 Telangana\u2019s capital\u2026 Hyderabad",
    "teacher_pids": ["8", "7", "1"], "teacher_scores": [3.0, 2.0, 1.0]}
LONG_STAGE2 = {
    "id": "bn-9-0", "lang": "bn", "source_pid": "9", "question": " ".join(["ঢাকা কোথায়"] * 60),
    "answers": [" ".join(["Dhaka"] * 80)], "answer_lang": "en", "cloze": "c",
    "rewrite_backend": "cloze"}


def _jsonl(path, records):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    for r in records:
      f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _synthetic_stage2(lang, n):
  return [{"id": f"{lang}-{i}-0", "lang": lang, "source_pid": str(i), "question": f"q {lang} {i}",
           "answers": [f"a{i}"], "answer_lang": "en", "cloze": "c", "rewrite_backend": "cloze"}
          for i in range(n)]


@pytest.fixture(scope="module", autouse=True)
def data_root(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("data") / "root")
  shutil.copytree(tiny_vocab.ROOT, root)
  _jsonl(f"{root}/stage1/clr_pt.te.jsonl-00000-of-00001", [LEAKY_STAGE1])
  _jsonl(f"{root}/stage2/xor_retrieve.bn.jsonl-00000-of-00001", [LONG_STAGE2])
  # 10:1:1 languages for the mixing test.
  for lang, n in (("ar", 200), ("ru", 20), ("te", 20)):
    _jsonl(f"{root}/stage2/xor_retrieve.{lang}.jsonl-00000-of-00001", _synthetic_stage2(lang, n))
  old = {k: os.environ.get(k) for k in (paths.DATA_DIR_ENV, paths.VOCAB_ENV)}
  os.environ[paths.DATA_DIR_ENV] = root
  os.environ[paths.VOCAB_ENV] = tiny_vocab.tiny_vocab_path()
  yield root
  for k, v in old.items():
    if v is None:
      os.environ.pop(k, None)
    else:
      os.environ[k] = v


@pytest.fixture(scope="module")
def sp():
  return spm.SentencePieceProcessor(model_file=tiny_vocab.tiny_vocab_path())


def _examples(name, split, **kw):
  task = seqio.get_mixture_or_task(name)
  return list(task.get_dataset(sequence_length=SEQ, split=split, shuffle=False, **kw).as_numpy_iterator())


def test_registry_covers_every_family():
  names = set(seqio.TaskRegistry.names())
  for lang in tasks.XOR_LANGUAGES:
    for fam in ("clr_pt", "mlqa_pt.xor_retrieve", "mlqa_pt.xor_full", "xor_retrieve", "xor_full"):
      assert f"clqa.{fam}.{lang}" in names
  assert "clqa.nq.en" in names
  assert {f"clqa.mkqa.{l}" for l in tasks.MKQA_LANGUAGES} <= names and len(tasks.MKQA_LANGUAGES) == 26
  assert {"clqa.clr_pt", "clqa.mlqa_pt.xor_retrieve", "clqa.mlqa_pt.xor_full", "clqa.xor_retrieve",
          "clqa.xor_full", "clqa.mkqa"} <= set(seqio.MixtureRegistry.names())


def test_missing_data_root_is_a_clear_error(monkeypatch):
  monkeypatch.delenv(paths.DATA_DIR_ENV)
  with pytest.raises(FileNotFoundError, match="CLQA_DATA_DIR"):
    _examples("clqa.clr_pt.fi", "train")


def test_clr_pt_leak_guard_normalisation_and_tokens(sp):
  (ex,) = _examples("clqa.clr_pt.te", "train")
  want_q = "question: \"_X_\" - Telangana's capital... _X_"
  assert ex["question_pretokenized"].decode() == want_q
  assert ex["question_en_pretokenized"].decode() == "question: _X_ is the capital of Telangana."
  np.testing.assert_array_equal(ex["question"], sp.encode(want_q)[:50])
  np.testing.assert_array_equal(ex["question_en"], sp.encode("question: _X_ is the capital of Telangana."))
  np.testing.assert_array_equal(ex["answer"], sp.encode("Hyderabad") + [1])
  assert ex["qid"] == b"te-7-0" and ex["source_pid"] == b"7" and ex["lang"] == b"te"
  assert ex["teacher_pids"].tolist() == [b"8", b"7", b"1"]
  np.testing.assert_allclose(ex["teacher_scores"], [3.0, 2.0, 1.0])
  fi = _examples("clqa.clr_pt.fi", "train")
  assert [e["qid"] for e in fi] == [b"fi-1-0", b"fi-9-1", b"fi-14-2"]


def test_mlqa_pt_variants_and_length_limits(sp):
  ret = _examples("clqa.mlqa_pt.xor_retrieve.ja", "train")
  full = _examples("clqa.mlqa_pt.xor_full.ja", "train")
  assert [e["answer_pretokenized"] for e in ret] == [b"Tokyo", b"Mount Fuji"]
  assert [e["answer_pretokenized"] for e in full] == ["東京".encode(), "富士山".encode()]
  q = "question: " + text_normalize.normalize("日本の首都はどこですか？")
  np.testing.assert_array_equal(full[0]["question"], sp.encode(q))
  (long_ex,) = _examples("clqa.mlqa_pt.xor_retrieve.bn", "train")
  raw_q = sp.encode("question: " + LONG_STAGE2["question"])
  assert len(raw_q) > 50 and long_ex["question"].tolist() == raw_q[:50]  # no EOS
  raw_a = sp.encode(LONG_STAGE2["answers"][0])
  assert len(raw_a) > 49 and long_ex["answer"].tolist() == raw_a[:49] + [1]


def test_xor_tasks_from_tfds(sp):
  dev = _examples("clqa.xor_retrieve.ko", "validation")
  assert [e["qid"] for e in dev] == [b"-1239213921393291"]
  assert dev[0]["answers"].tolist() == [b"King Sejong the Great", b"Sejong"]
  assert dev[0]["answer_pretokenized"] in (b"King Sejong the Great", b"Sejong")
  full_ja = _examples("clqa.xor_full.ja", "validation")
  assert sorted(e["qid"] for e in full_ja) == [b"100200300", b"8117340000137346110"]
  assert {e["answers"][0] for e in full_ja} == {"富士山".encode(), b"yes"}
  assert len(_examples("clqa.xor_full.ja", "train")) == 1
  # Per-language counts (the mixing rates with alpha > 0 use them), not the whole file's.
  task = seqio.get_mixture_or_task("clqa.xor_full.ja")
  assert (task.num_input_examples("train"), task.num_input_examples("validation")) == (1, 2)
  assert _examples("clqa.xor_full.te", "train") == []  # the train fixture has no te question


def test_nq_and_mkqa_tasks(sp):
  nq = {s: _examples("clqa.nq.en", s) for s in ("train", "validation", "test")}
  assert [len(v) for v in nq.values()] == [3, 1, 2]
  assert nq["validation"][0]["question_pretokenized"] == b"question: who wrote war and peace"
  mk = _examples("clqa.mkqa.ja", "test")
  assert [e["qid"] for e in mk] == [b"-7206178045539210390", b"563260143484355911"]  # unanswerable dropped
  assert mk[0]["answers"].tolist() == [b"3776.0 meter", b"3776 m", b"3,776 meters"]
  assert seqio.get_mixture_or_task("clqa.mkqa.ja").num_input_examples("test") == 3


def test_tfds_builders_splits(data_root):
  import tensorflow_datasets as tfds
  b = tfds_builders.prepare("clqa_xor_tydi/retrieve", os.path.join(data_root, "tfds"),
                            os.path.join(data_root, "xor"))
  assert {k: v.num_examples for k, v in b.info.splits.items()} == {"train": 5, "validation": 7}
  mk = tfds.builder("clqa_mkqa", data_dir=os.path.join(data_root, "tfds"))
  mk = tfds_builders.prepare("clqa_mkqa", os.path.join(data_root, "tfds"), os.path.join(data_root, "mkqa"))
  assert sorted(mk.info.splits) == ["ar", "en", "fi", "ja", "ko"]


def test_normalize_tf_matches_python():
  import tensorflow as tf
  s = ("\u201cA\u201d \u2018b\u2019 \u2013\u2014\u2212 a\u2044b \u2026 x . . . y \u0001\u000b\u0085"
       "\u00ad 6\u2032\u2033\u2034\u2057 \u301c `\u00b4 日本語 Ünïcode")
  assert pp.normalize_tf(tf.constant(s)).numpy().decode() == text_normalize.normalize(s)


def test_registered_family_mixture_reads_rates_from_data():
  name = tasks.register_language_mixture("test.mix_10_1_1", "mlqa_pt.xor_retrieve", ["ar", "ru", "te"])
  mixture = seqio.get_mixture_or_task(name)
  try:
    with gin.unlock_config():
      gin.bind_parameter("language_mixing_alpha.alpha", 0.5)
    rates = {t.name.rsplit(".", 1)[1]: mixture.get_rate(t) for t in mixture.tasks}
    assert rates == pytest.approx({"ar": 200 ** 0.5, "ru": 20 ** 0.5, "te": 20 ** 0.5})
    langs = [l for b in itertools.islice(pipeline.get_question_dataset(name, "train", 100, seed=3), 3)
             for l in b["lang"]]
    assert len(langs) == 300 and set(langs) == {b"ar", b"ru", b"te"}
  finally:
    gin.clear_config()


def _counting_task(name, lang, n):
  import tensorflow as tf

  def dataset_fn(split, shuffle_files, seed=None):
    del split, shuffle_files, seed
    return tf.data.Dataset.from_tensor_slices({"lang": [lang] * n, "i": list(range(n))})
  if name not in seqio.TaskRegistry.names():
    seqio.TaskRegistry.add(name, source=seqio.FunctionDataSource(
        dataset_fn, splits=["train"], num_input_examples={"train": n}),
        preprocessors=[], output_features={})
  return name


def test_language_mixture_rates_follow_alpha():
  counts = {"xx": 1000, "yy": 100, "zz": 100}  # 10:1:1
  task_names = [_counting_task(f"test.count.{l}", l, n) for l, n in counts.items()]
  mixture = seqio.Mixture("test.count_mix", [(t, mixing.LanguageRate("train")) for t in task_names])
  try:
    for alpha in (0.0, 0.5, 1.0):
      with gin.unlock_config():
        gin.bind_parameter("language_mixing_alpha.alpha", alpha)
      want = mixing.normalized_rates(counts, alpha)
      ds = mixture.get_dataset(None, split="train", num_epochs=None, shuffle=True, seed=11,
                               passthrough_features=["lang"], log_mixing_proportions=False)
      langs = ds.map(lambda x: x["lang"]).batch(1000).take(20)
      got = collections.Counter(x.decode() for b in langs.as_numpy_iterator() for x in b)
      assert sum(got.values()) == 20000
      for lang, rate in want.items():
        assert abs(got[lang] / 20000 - rate) < 0.02, (alpha, lang, got, want)
  finally:
    gin.clear_config()


def test_question_batches_shard_across_hosts():
  seen = []
  for index in range(2):
    batches = list(pipeline.get_question_dataset("clqa.clr_pt.fi", "train", 1, shard_index=index, num_shards=2, num_epochs=1,
                                                 shuffle=False, drop_remainder=False))
    seen.append({q for b in batches for q in b["qid"]})
  assert not seen[0] & seen[1]
  assert seen[0] | seen[1] == {b"fi-1-0", b"fi-9-1", b"fi-14-2"}


def test_fid_batches_end_to_end(tmp_path):
  import jax
  from jax.sharding import Mesh
  from clqa_jax.data import fid_batch
  from clqa_jax.data.passage_store import PassageStore

  store = PassageStore.build(os.path.join(os.environ[paths.DATA_DIR_ENV], "passages", "psgs_w100.tsv"),
                             tiny_vocab.tiny_vocab_path(), str(tmp_path / "store"), progress=False)
  mesh = Mesh(np.array(jax.devices()[:4]), ("data",))
  assembler = fid_batch.FiDBatchAssembler(store, "teacher_pids", k=4)
  batch, arrays = next(pipeline.fid_batches("clqa.clr_pt.fi", "train", 4, assembler, mesh=mesh, seed=1))
  assert set(arrays) == set(fid_batch.STAGE1_FEATURES)
  assert arrays["passage_tokens"].shape == (4, 4, 200)
  for i, pids in enumerate(batch["teacher_pids"]):
    np.testing.assert_array_equal(np.asarray(arrays["passage_rows"])[i], store.rows(pids[:4]))


def test_inspect_command(capsys):
  from clqa_jax.cli import main
  try:
    code = main.main(["inspect", "clqa.mlqa_pt.xor_full", "--languages", "fi,ja", "--num_samples", "1",
                      "--gin.language_mixing_alpha.alpha=1.0"])
  finally:
    gin.clear_config()  # the command locks gin; later tests may add configurables
  assert code == 0
  out = capsys.readouterr().out
  lines = {l.split()[0]: l for l in out.splitlines() if l.startswith("clqa.mlqa_pt.xor_full.")}
  assert set(lines) == {"clqa.mlqa_pt.xor_full.fi", "clqa.mlqa_pt.xor_full.ja"}
  assert "0.500" in lines["clqa.mlqa_pt.xor_full.fi"] and "question 13/" in lines["clqa.mlqa_pt.xor_full.fi"]
  assert "question: Mikä on Suomen pääkaupunki?" in out
