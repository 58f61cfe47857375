"""ZusammenQA QA generation (synth/qagen.py) and the `qagen` / `qa_filter` stages on the mini
corpus: splits, the valhalla prompts, the template and HTTP backends, positives, answer-free
negatives, the answer-type counts and AUG-QA records the stage-1 reader reads."""
import collections
import glob
import json

import pytest

from clqa_jax.data import readers
from clqa_jax.data import wikipedia
from clqa_jax.synth import answer_type_filter
from clqa_jax.synth import config as config_lib
from clqa_jax.synth import http_backend
from clqa_jax.synth import passages as passages_lib
from clqa_jax.synth import qagen
from clqa_jax.synth import stages

LANGS = ("en", "fi", "ja")


def _sentence(text, anchors=()):
  return qagen.Sentence(text, 0, len(text), tuple(anchors))


def test_ascii_text_is_nfkc_then_unidecode():
  assert qagen.ascii_text("ﬁnal Ö café “quoted” 東京") == 'final O cafe "quoted" Dong Jing '


def test_fewest_equal_splits_under_the_limit_first_three_kept():
  sents = [_sentence(" ".join(["w"] * 4)) for _ in range(10)]       # 40 words
  assert [len(s) for s in qagen.equal_splits(sents, 40, 3)] == [10]
  assert [len(s) for s in qagen.equal_splits(sents, 39, 3)] == [5, 5]
  assert [len(s) for s in qagen.equal_splits(sents, 12, 3)] == [3, 3, 2]   # 4 splits: 3,3,2,2
  assert [len(s) for s in qagen.equal_splits(sents, 12, 5)] == [3, 3, 2, 2]
  assert qagen.equal_splits([_sentence("a " * 50)], 10, 3) == [[_sentence("a " * 50)]]


def test_valhalla_prompts():
  sents = (_sentence("Paris is big."), _sentence("Monet was born in 1840."))
  assert (qagen.answer_prompt(sents, 1)
          == "extract answers: Paris is big. <hl> Monet was born in 1840. <hl>")
  assert (qagen.question_prompt(sents, 1, 18, 22)
          == "generate question: Paris is big. Monet was born in <hl> 1840 <hl>.")
  assert qagen.parse_answers(" Monet <sep> 1840 <sep> Monet <sep> </s>") == ["Monet", "1840"]


def test_template_backend_answers_and_wh_words():
  s = _sentence("Mika Waltari was born in Helsinki in 1908.",
                [("Mika Waltari", "Mika Waltari"), ("Helsinki", "Helsinki")])
  backend = qagen.TemplateQaBackend(frozenset({"Mika Waltari"}))
  item = qagen.AnswerItem((s,), 0)
  assert backend.extract_answers([item]) == [["Mika Waltari", "Helsinki", "1908"]]
  qs = backend.generate_questions([qagen.QuestionItem((s,), 0, 0, 12),
                                   qagen.QuestionItem((s,), 0, 25, 33),
                                   qagen.QuestionItem((s,), 0, 37, 41)])
  assert qs == ["Who was born in Helsinki in 1908?", "Mika Waltari was born in what in 1908?",
                "Mika Waltari was born in Helsinki in what year?"]
  pop = _sentence("Helsinki has a population of about 650000 people.")
  assert backend.generate_questions([qagen.QuestionItem((pop,), 0, 35, 41)]) == [
      "Helsinki has a population of about how many people?"]


def _article(text_with_links, title="Helsinki", article_id="7"):
  text, links = wikipedia.parse_links(text_with_links)
  return wikipedia.Article(article_id, "", title, text, tuple(links), "en")


def test_pairs_positive_passage_or_window():
  filler = " ".join(f"w{i}" for i in range(120)) + "."
  art = _article(f'{filler} Helsinki is the capital of <a href="Finland">Finland</a>.')
  pairs = list(qagen.generate_pairs(art, qagen.TemplateQaBackend(), words=100))
  assert [p["answer"] for p in pairs] == ["Finland"]
  pos = pairs[0]["positive"]
  # The answer lies in the article's second 100-word passage.
  assert pos["pid"] == passages_lib.pid_for("en", "7", 1) and "Finland" in pos["text"]
  assert pos["text"] == passages_lib.article_passages(art)[1]["text"]
  assert pairs[0]["id"] == f"{pos['pid']}-0"
  [win] = qagen.generate_pairs(art, qagen.TemplateQaBackend(), positive="window", words=100)
  words = win["positive"]["text"].split()
  assert len(words) == 100 and words[-1] == "Finland" and "-" not in win["positive"]["pid"]


def test_negatives_are_answer_free_seeded_and_exclude_the_positive():
  pool = [(f"p{i}", "", "Helsinki here" if i % 3 == 0 else f"text {i}") for i in range(30)]
  negs = qagen.draw_negatives(pool, "HELSINKI", "p1", 5, "q1/fi")
  assert len(negs) == 5 and all("helsinki" not in t.lower() and p != "p1" for p, _, t in negs)
  assert negs == qagen.draw_negatives(pool, "HELSINKI", "p1", 5, "q1/fi")
  assert negs != qagen.draw_negatives(pool, "HELSINKI", "p1", 5, "q1/ja")


def test_http_backend_sends_the_prompts_and_caches(tmp_path, monkeypatch):
  sent = []

  def post(self, path, payload):
    sent.append((path, payload))
    return {"choices": [{"index": i, "text": " Paris <sep> 1840 <sep>" if p.startswith("extract")
                         else "Question: When was Monet born?"}
                        for i, p in enumerate(payload["prompt"])]}

  monkeypatch.setattr(http_backend.HttpBackend, "_post", post)
  http = http_backend.HttpBackend("http://127.0.0.1:1/v1", "t5-qg", cache_dir=str(tmp_path),
                                  api="completions")
  backend = qagen.HttpQaBackend(http)
  sents = (_sentence("Paris is big."), _sentence("Monet was born in 1840."))
  assert backend.extract_answers([qagen.AnswerItem(sents, 1)]) == [["Paris", "1840"]]
  questions = backend.generate_questions([qagen.QuestionItem(sents, 1, 18, 22)])
  assert questions == ["When was Monet born?"]
  assert [p["prompt"] for _, p in sent] == [[qagen.answer_prompt(sents, 1)],
                                            [qagen.question_prompt(sents, 1, 18, 22)]]
  again = qagen.HttpQaBackend(http_backend.HttpBackend(
      "http://127.0.0.1:1/v1", "t5-qg", cache_dir=str(tmp_path), api="completions"))
  assert again.extract_answers([qagen.AnswerItem(sents, 1)]) == [["Paris", "1840"]]
  assert len(sent) == 2                                            # served from the cache


@pytest.mark.parametrize("positive", ["passage", "window"])
def test_qagen_and_qa_filter_stages_on_the_mini_corpus(tmp_path, positive):
  cfg = config_lib.SynthConfig(output_dir=str(tmp_path), langs=LANGS, target_langs=("fi", "ja"),
                               qagen_positive=positive, answer_filter_mode="code")
  stages.run_passages(cfg)
  gen = stages.RUNNERS["qagen"](cfg)
  pairs = [json.loads(l) for f in glob.glob(str(tmp_path / "qagen" / "pairs.jsonl-*"))
           for l in open(f)]
  assert len(pairs) == gen["counts"]["pairs"]["en"] > 50
  result = stages.RUNNERS["qa_filter"](cfg)
  types = result["counts"]["types"]
  expected = collections.Counter(answer_type_filter.kept_by(p["question"], p["answer"], "code")
                                 or answer_type_filter.DROPPED for p in pairs)
  assert types == dict(expected) and {"who", "number", "dropped"} <= set(types)
  corpus = {p.pid: p.text for p in readers.read_passages_tsv(
      str(tmp_path / "passages" / "psgs_w100.tsv"))}
  if positive == "window":
    windows = {p.pid: p.text for p in readers.read_passages_tsv(
        str(tmp_path / "aug_qa" / "positive_windows.tsv"))}
    assert not set(windows) & set(corpus)
    corpus.update(windows)
  by_lang = {}
  for lang in LANGS:
    [path] = glob.glob(str(tmp_path / "aug_qa" / f"aug_qa.{lang}.jsonl-*"))
    recs = list(readers.read_stage1_jsonl(path))                  # the stage-1 reader reads them
    raw = [json.loads(l) for l in open(path)]
    by_lang[lang] = {r.id.split("-", 1)[1]: r for r in recs}
    for r, obj in zip(recs, raw):
      assert r.lang == lang and r.question == r.question_en and obj["question_lang"] == "en"
      assert answer_type_filter.kept_by(r.question, r.answers[0], "code") == obj["answer_type"]
      assert r.teacher_pids[0] == r.source_pid and len(r.teacher_pids) == 6
      assert r.teacher_scores == (1.0,) + (0.0,) * 5
      assert r.answers[0].lower() in corpus[r.source_pid].lower()
      for pid in r.teacher_pids[1:]:
        assert r.answers[0].lower() not in corpus[pid].lower()
      assert obj["negative_texts"] == [corpus[p] for p in r.teacher_pids[1:]]
  assert set(by_lang["fi"]) == set(by_lang["ja"]) == set(by_lang["en"])
  assert len(by_lang["fi"]) == sum(n for t, n in types.items() if t != "dropped")
  key = next(iter(by_lang["fi"]))
  assert by_lang["fi"][key].teacher_pids[1:] != by_lang["ja"][key].teacher_pids[1:]


@pytest.mark.parametrize("field,value", [("qagen_backend", "gpt"), ("qagen_positive", "sentence"),
                                         ("answer_filter_mode", "strict")])
def test_synth_config_rejects_unknown_qagen_settings(tmp_path, field, value):
  with pytest.raises(ValueError, match=f"SynthConfig.{field} must be one of"):
    config_lib.SynthConfig(output_dir=str(tmp_path), **{field: value})


def test_synth_config_http_qagen_needs_a_model(tmp_path):
  with pytest.raises(ValueError, match="qagen_backend='http' needs HttpConfig.model"):
    config_lib.SynthConfig(output_dir=str(tmp_path), qagen_backend="http")
