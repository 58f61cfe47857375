"""BM25 baseline: per-language analyzers, the Lucene formula by hand, and ``clqa bm25`` files."""
import json
import math

import numpy as np
import pytest

from clqa_jax.cli import main as cli_main
from clqa_jax.data.errors import DataFormatError
from clqa_jax.data.records import Passage
from clqa_jax.data.records import Question
from clqa_jax.eval import xor_retrieve
from clqa_jax.index import bm25
from clqa_jax.index import bm25_analyzers


def lucene_bm25(query_terms, doc_terms, k1=0.9, b=0.4):
  """The spec's formula, term by term, one score per document."""
  n = len(doc_terms)
  avgdl = sum(len(d) for d in doc_terms) / n
  scores = []
  for doc in doc_terms:
    score = 0.0
    for term in query_terms:
      df = sum(term in d for d in doc_terms)
      tf = doc.count(term)
      if tf:
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        score += idf * tf / (tf + k1 * (1 - b + b * len(doc) / avgdl))
    scores.append(score)
  return np.array(scores)


EN_PASSAGES = [
    Passage("p1", "The cat sat on the mat; the cat slept.", "Cats"),
    Passage("p2", "A dog chased the cat!", "Dogs"),
    Passage("p3", "Birds sing at dawn.", "Birds"),
    Passage("p4", "Cat-like dogs: a rare breed.", "Dogs"),
]
EN_TERMS = [
    ["cats", "the", "cat", "sat", "on", "the", "mat", "the", "cat", "slept"],
    ["dogs", "a", "dog", "chased", "the", "cat"],
    ["birds", "birds", "sing", "at", "dawn"],
    ["dogs", "cat", "like", "dogs", "a", "rare", "breed"],
]


def test_analyzers_split_on_punctuation_and_keep_marks():
  assert [bm25_analyzers.analyzer_for("en")(bm25.passage_document(p))
          for p in EN_PASSAGES] == EN_TERMS
  # Bengali vowel signs (combining marks) stay inside their word; NFKC folds full-width digits.
  assert bm25_analyzers.analyzer_for("bn")("বাংলাদেশের রাজধানী, ঢাকা।") == [
      "বাংলাদেশের", "রাজধানী", "ঢাকা"]
  assert bm25_analyzers.analyzer_for("ru")("Кто написал «Войну и мир»?") == [
      "кто", "написал", "войну", "и", "мир"]
  assert bm25_analyzers.analyzer_for("ja")("日本で一番高い山は？１９５８年") == [
      "日本", "で", "一番", "高い", "山", "は", "1958", "年"]
  assert bm25_analyzers.analyzer_for("zh_cn")("北京是首都。") == ["北", "京", "是", "首", "都"]


def test_english_scores_equal_lucene_formula():
  index = bm25.Bm25Index.build(EN_PASSAGES, "en")
  query = "The cat, the DOGS?"
  want = lucene_bm25(["the", "cat", "the", "dogs"], EN_TERMS)
  np.testing.assert_allclose(index.scores(query), want, rtol=1e-5)
  # Ranking: descending score; p3 shares no term and is not returned.
  assert [row for row, _ in index.search(query, 10)] == list(np.argsort(-want)[:3])
  assert index.search("zebra", 10) == []
  k1_b = bm25.Bm25Index.build(EN_PASSAGES, "en", k1=1.2, b=0.75)
  np.testing.assert_allclose(k1_b.scores("cat dogs"),
                             lucene_bm25(["cat", "dogs"], EN_TERMS, 1.2, 0.75), rtol=1e-5)


JA_PASSAGES = [
    Passage("j1", "日本で一番高い山は富士山です。", "富士山"),
    Passage("j2", "東京は日本の首都です。", "東京"),
    Passage("j3", "京都は古い都です。", "京都"),
]
JA_TERMS = [
    ["富士", "山", "日本", "で", "一番", "高い", "山", "は", "富士", "山", "です"],
    ["東京", "東京", "は", "日本", "の", "首都", "です"],
    ["京都", "京都", "は", "古い", "都", "です"],
]


def test_japanese_scores_equal_lucene_formula():
  assert [bm25_analyzers.analyzer_for("ja")(bm25.passage_document(p))
          for p in JA_PASSAGES] == JA_TERMS
  index = bm25.Bm25Index.build(JA_PASSAGES, "ja")
  want = lucene_bm25(["日本", "の", "山"], JA_TERMS)
  np.testing.assert_allclose(index.scores("日本の山"), want, rtol=1e-5)
  assert [JA_PASSAGES[row].pid for row, _ in index.search("日本の山", 2)] == ["j1", "j2"]


def test_ties_go_to_the_lower_row():
  passages = [Passage(str(i), "same words here", "t") for i in range(4)]
  index = bm25.Bm25Index.build(passages, "en")
  assert [row for row, _ in index.search("words", 3)] == [0, 1, 2]


def _write_tsv(path, passages):
  lines = ["id\ttext\ttitle"] + [f"{p.pid}\t{p.text}\t{p.title}" for p in passages]
  path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_cli_writes_the_retrieval_prediction_file(tmp_path, capsys):
  _write_tsv(tmp_path / "en.tsv", EN_PASSAGES)
  _write_tsv(tmp_path / "ja.tsv", JA_PASSAGES)
  questions = tmp_path / "q.jsonl"
  questions.write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in [
      {"id": "1", "lang": "ja", "question": "日本の山", "answers": ["富士山"]},
      {"id": "2", "lang": "en", "question": "dogs?", "answers": ["dog"]},
  ]) + "\n", encoding="utf-8")
  out = tmp_path / "pred.json"
  argv = ["bm25", "--corpus", f"ja={tmp_path / 'ja.tsv'}", "--corpus",
          f"en={tmp_path / 'en.tsv'}", "--questions", str(questions), "--out", str(out),
          "--top_k", "2"]
  assert cli_main.main(argv) == 0
  rows = json.loads(out.read_text(encoding="utf-8"))
  assert [r["pids"] for r in rows] == [["j1", "j2"], ["p4", "p2"]]
  assert rows[0]["ctxs"] == [JA_PASSAGES[0].text, JA_PASSAGES[1].text]
  predictions = xor_retrieve.read_retrieve_predictions(str(out), with_passage_ids=True)
  assert [(p.qid, p.lang) for p in predictions] == [("1", "ja"), ("2", "en")]
  # The file refuses to be replaced, and a language without a corpus is named.
  assert cli_main.main(argv) == 2
  assert "exists" in capsys.readouterr().err
  argv_missing = ["bm25", "--corpus", f"en={tmp_path / 'en.tsv'}", "--questions",
                  str(questions), "--out", str(tmp_path / "other.json")]
  assert cli_main.main(argv_missing) == 2
  assert "no BM25 corpus for language 'ja'" in capsys.readouterr().err


def test_one_index_serves_every_question_and_missing_language_raises():
  index = bm25.Bm25Index.build(EN_PASSAGES, "en")
  qs = [Question("1", "fi", "cat", ()), Question("2", "ja", "birds", ())]
  hits = bm25.retrieve_questions({None: index}, qs, 5, "q.jsonl")
  assert [[p.pid for p, _ in h] for h in hits] == [["p1", "p2", "p4"], ["p3"]]
  with pytest.raises(DataFormatError, match="q.jsonl.*'2'.*'ja'"):
    bm25.retrieve_questions({"fi": index}, qs, 5, "q.jsonl")
