"""Readers of every input format: real fixtures parse; malformed lines name file, line, field."""
import gzip
import json
import os
import unicodedata

import pytest

from clqa_jax.data import readers
from clqa_jax.data import text_normalize
from clqa_jax.data.errors import DataFormatError, SkipStats

ROOT = os.path.join(os.path.dirname(__file__), "fixtures", "data", "root")


def _write(tmp_path, name, text, binary=False):
  path = tmp_path / name
  if binary:
    path.write_bytes(text)
  else:
    path.write_text(text, encoding="utf-8")
  return str(path)


def _error(gen) -> DataFormatError:
  with pytest.raises(DataFormatError) as e:
    list(gen)
  return e.value


# -- DPR passage TSV ---------------------------------------------------------------------------


def test_passages_tsv_fixture_and_nfc_convention():
  en = list(readers.read_passages_tsv(os.path.join(ROOT, "passages", "psgs_w100.tsv")))
  assert [p.pid for p in en[:3]] == ["1", "2", "3"]
  assert en[8].title == "Jean Sibelius" and '"Finlandia"' in en[8].text  # csv-quoted text
  ml_path = os.path.join(ROOT, "passages", "all_w100.tsv")
  ml = list(readers.read_passages_tsv(ml_path))
  raw = list(readers.read_passages_tsv(ml_path, nfc_titles=False))
  # The fixture stores NFD titles; all_w100.tsv titles are NFC-normalised on read.
  assert any(r.title != p.title for r, p in zip(raw, ml))
  assert all(unicodedata.is_normalized("NFC", p.title) for p in ml)
  assert ml[-1].title == "తెలుగు"


def test_passages_tsv_malformed(tmp_path):
  path = _write(tmp_path, "p.tsv", "id\ttext\ttitle\n1\tgood text\tT\n2\tonly two\n3\t\tEmpty\n4\tok\tT4\n")
  e = _error(readers.read_passages_tsv(path))
  assert (e.path, e.line, e.field) == (path, 3, "<row>")
  stats = SkipStats()
  got = list(readers.read_passages_tsv(path, skip_errors=True, stats=stats))
  assert [p.pid for p in got] == ["1", "4"]
  assert (stats.read, stats.skipped, dict(stats.by_field)) == (2, 2, {"<row>": 1, "text": 1})
  bad_header = _write(tmp_path, "h.tsv", "pid\ttext\ttitle\n1\tx\ty\n")
  e = _error(readers.read_passages_tsv(bad_header, skip_errors=True))
  assert (e.line, e.field) == (1, "<header>")
  empty_id = _write(tmp_path, "i.tsv", "id\ttext\ttitle\n \tx\ty\n")
  assert _error(readers.read_passages_tsv(empty_id)).field == "id"


def test_passages_tsv_multiline_quoted_field_line_numbers(tmp_path):
  path = _write(tmp_path, "m.tsv", 'id\ttext\ttitle\n1\t"two\nlines"\tT\n2\tx\n')
  e = _error(readers.read_passages_tsv(path))
  assert e.line == 4  # physical line of the bad row, after the 2-line quoted field


# -- XOR-TyDi JSONL ----------------------------------------------------------------------------


def test_xor_fixture():
  dev = list(readers.read_xor_jsonl(os.path.join(ROOT, "xor", "xor_dev_retrieve_eng_span_v1_1.jsonl")))
  assert len(dev) == 7 and sorted({e.lang for e in dev}) == ["ar", "bn", "fi", "ja", "ko", "ru", "te"]
  assert dev[2].answers == ("King Sejong the Great", "Sejong")


def test_xor_malformed(tmp_path):
  good = json.dumps({"id": "1", "lang": "ja", "question": "q", "answers": ["a"]})
  lines = [good,
           "{not json",
           json.dumps({"id": "2", "lang": "ja", "question": "q"}),
           json.dumps({"id": "3", "lang": "ja", "question": "q", "answers": "a"}),
           json.dumps({"id": "4", "lang": "ja", "question": "", "answers": ["a"]}),
           json.dumps({"id": "5", "lang": "ja", "question": "q", "answers": [None]}),
           "",
           json.dumps({"id": "6", "lang": "ja", "question": "q", "answers": ["a"]}),
           good]
  path = _write(tmp_path, "x.jsonl", "\n".join(lines) + "\n")
  e = _error(readers.read_xor_jsonl(path))
  assert (e.line, e.field) == (2, "<json>") and path in str(e)
  stats = SkipStats()
  got = list(readers.read_xor_jsonl(path, skip_errors=True, stats=stats))
  # A bare-string answer is one answer.
  assert [(q.qid, q.answers) for q in got] == [("1", ("a",)), ("3", ("a",)), ("6", ("a",))]
  # A repeated id is an error at its second line (scorers key answers by id).
  assert dict(stats.by_field) == {"<json>": 1, "answers": 1, "question": 1, "answers[0]": 1,
                                  "id": 1}
  assert "duplicate id '1' (first on line 1)" in stats.examples[-1]
  assert stats.examples[-1].startswith(f"{path}:9: id:")
  # Test files have no answers.
  test_file = _write(tmp_path, "t.jsonl", json.dumps({"id": "1", "lang": "ja", "question": "q"}) + "\n")
  assert list(readers.read_xor_jsonl(test_file, require_answers=False))[0].answers == ()


def test_not_utf8_is_pinned_to_its_line(tmp_path):
  def good(i):
    return json.dumps({"id": str(i), "lang": "ja", "question": "q", "answers": ["a"]}).encode()
  # A bad byte inside an otherwise valid record, far from the start (text-mode chunking).
  lines = ([good(i) for i in range(3000)] + [good(3000).replace(b'"q"', b'"\xff"')]
           + [good(i) for i in range(3001, 3006)])
  path = _write(tmp_path, "b.jsonl", b"\n".join(lines) + b"\n", binary=True)
  e = _error(readers.read_xor_jsonl(path))
  assert (e.line, e.field) == (3001, "<line>")
  stats = SkipStats()
  assert len(list(readers.read_xor_jsonl(path, skip_errors=True, stats=stats))) == 3005
  assert dict(stats.by_field) == {"<line>": 1}
  tsv = _write(tmp_path, "b.tsv", b"id\ttext\ttitle\n1\tok\tT\n2\tbad \xc3\x28\tT\n3\tok\tT\n", binary=True)
  e = _error(readers.read_passages_tsv(tsv))
  assert (e.line, e.field) == (3, "<line>")
  assert [p.pid for p in readers.read_passages_tsv(tsv, skip_errors=True)] == ["1", "3"]


# -- DPR NQ CSV --------------------------------------------------------------------------------


def test_nq_fixture_and_malformed(tmp_path):
  rows = list(readers.read_nq_csv(os.path.join(ROOT, "nq", "nq-train.qa.csv")))
  assert rows[1].qid == "1" and rows[1].answers == ("the Nile", "Nile") and rows[1].lang == "en"
  path = _write(tmp_path, "n.csv", 'q1\t["a"]\nq2\tnot a list\nq3\t[1, 2]\nq4\n\t["x"]\nq6\t[\'b\']\n')
  e = _error(readers.read_nq_csv(path))
  assert (e.line, e.field) == (2, "answers")
  stats = SkipStats()
  got = list(readers.read_nq_csv(path, skip_errors=True, stats=stats))
  # qid is the row index of the file, so skipped rows do not shift later qids.
  assert [(r.qid, r.answers) for r in got] == [("0", ("a",)), ("5", ("b",))]
  assert dict(stats.by_field) == {"answers": 2, "<row>": 1, "question": 1}


# -- MKQA --------------------------------------------------------------------------------------


def test_mkqa_fixture_gold_answers_and_gzip(tmp_path):
  src = os.path.join(ROOT, "mkqa", "mkqa.jsonl")
  gz = str(tmp_path / "mkqa.jsonl.gz")
  with open(src, "rb") as f, gzip.open(gz, "wb") as g:
    g.write(f.read())
  for path in (src, gz):
    ex = list(readers.read_mkqa_jsonl(path))
    assert ex[0].example_id == "563260143484355911"
    assert ex[0].gold_answers("en") == ("Helsinki", "Helsingfors")
    assert ex[1].gold_answers("ko") == ("3776.0 meter", "3776 m", "3,776 meters")
    assert ex[2].gold_answers("ja") == ("",) and not ex[2].is_answerable("ja")
    assert ex[2].to_question("ja").answers == ()
    assert ex[0].to_question("ja").question == "フィンランドの首都は"


def test_mkqa_malformed(tmp_path):
  ok = {"example_id": 1, "query": "q", "queries": {"en": "q", "ja": "く"},
        "answers": {"en": [{"type": "entity", "text": "A", "aliases": ["B"]}],
                    "ja": [{"type": "entity", "text": "あ", "aliases": []}]}}
  bad_alias = json.loads(json.dumps(ok))
  bad_alias["answers"]["ja"][0]["aliases"] = "x"
  bad_text = json.loads(json.dumps(ok))
  bad_text["answers"]["en"][0]["text"] = 5
  missing_lang = json.loads(json.dumps(ok))
  del missing_lang["answers"]["ja"]
  empty_lang = json.loads(json.dumps(ok))
  empty_lang["answers"]["ja"] = []
  no_queries = {k: v for k, v in ok.items() if k != "queries"}
  traversal = json.loads(json.dumps(ok))
  traversal["queries"]["../x"] = traversal["answers"]["../x"] = "q"
  unknown_answer_lang = json.loads(json.dumps(ok))
  unknown_answer_lang["answers"]["en/.."] = []
  lines = [ok, bad_alias, bad_text, missing_lang, empty_lang, no_queries, traversal,
           unknown_answer_lang]
  path = _write(tmp_path, "m.jsonl", "\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n")
  e = _error(readers.read_mkqa_jsonl(path))
  assert (e.line, e.field) == (2, "answers.ja[0].aliases")
  stats = SkipStats()
  assert len(list(readers.read_mkqa_jsonl(path, skip_errors=True, stats=stats))) == 1
  assert dict(stats.by_field) == {"answers.ja[0].aliases": 1, "answers.en[0].text": 1,
                                  "answers": 2, "answers.ja": 1, "queries": 2}
  e = _error(readers.read_mkqa_jsonl(_write(tmp_path, "t.jsonl", json.dumps(traversal))))
  assert (e.line, e.field) == (1, "queries") and "'../x' is not an MKQA language code" in str(e)


# -- synthetic stage-1 / stage-2 ---------------------------------------------------------------


def _stage1(**over):
  rec = {"id": "fi-12-0", "lang": "fi", "question_en": "_X_ is a city.", "question": "_X_ on kaupunki.",
         "answers": ["Helsinki"], "source_pid": "12", "teacher_pids": ["12", "7"],
         "teacher_scores": [3.0, 2.5]}
  rec.update(over)
  return json.dumps(rec)


def test_stage1_fixture_and_malformed(tmp_path):
  files = readers.expand_shards(os.path.join(ROOT, "stage1", "clr_pt.*.jsonl-*-of-*"))
  recs = [r for f in files for r in readers.read_stage1_jsonl(f)]
  assert len(recs) == 6 and recs[0].teacher_pids[0] == recs[0].source_pid
  lines = [_stage1(), _stage1(id="ja-12-0"), _stage1(id="fi-13-0"), _stage1(teacher_scores=[1.0]),
           _stage1(teacher_pids=[str(i) for i in range(101)], teacher_scores=[0.0] * 101),
           _stage1(teacher_scores=["x", 1]), _stage1(question_en=3)]
  path = _write(tmp_path, "s1.jsonl", "\n".join(lines) + "\n")
  e = _error(readers.read_stage1_jsonl(path))
  assert (e.line, e.field) == (2, "id")
  stats = SkipStats()
  assert len(list(readers.read_stage1_jsonl(path, skip_errors=True, stats=stats))) == 2
  assert dict(stats.by_field) == {"id": 2, "teacher_scores": 1, "teacher_pids": 1, "teacher_scores[0]": 1}


def test_stage2_fixture_and_malformed(tmp_path):
  recs = list(readers.read_stage2_jsonl(
      os.path.join(ROOT, "stage2", "xor_full.ja.jsonl-00000-of-00001")))
  assert recs[0].answers == ("東京",) and recs[0].answer_lang == "ja"
  base = {"id": "ja-2-0", "lang": "ja", "question": "q", "answers": ["a"], "source_pid": "2",
          "answer_lang": "en", "cloze": "c", "rewrite_backend": "http"}
  lines = [base, {**base, "answer_lang": "fi"}, {**base, "rewrite_backend": "gpt"},
           {**base, "answers": []}, {k: v for k, v in base.items() if k != "source_pid"}]
  path = _write(tmp_path, "s2.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n")
  e = _error(readers.read_stage2_jsonl(path))
  assert (e.line, e.field) == (2, "answer_lang")
  stats = SkipStats()
  assert len(list(readers.read_stage2_jsonl(path, skip_errors=True, stats=stats))) == 1
  assert dict(stats.by_field) == {"answer_lang": 1, "rewrite_backend": 1, "answers": 1, "source_pid": 1}


def test_expand_shards_requires_complete_sets(tmp_path):
  for i in (0, 2):
    (tmp_path / f"x.jsonl-{i:05d}-of-00003").write_text("")
  with pytest.raises(FileNotFoundError, match=r"shards \[1\] are missing"):
    readers.expand_shards(str(tmp_path / "x.jsonl-*-of-*"))
  (tmp_path / "x.jsonl-00001-of-00003").write_text("")
  assert len(readers.expand_shards(str(tmp_path / "x.jsonl-*-of-*"))) == 3


# -- normalisation -----------------------------------------------------------------------------


def test_normalize_matches_official_rules():
  cases = {
      "\u201cQuote\u201d \u2018single\u2019 don\u2019t": "\"Quote\" 'single' don't",
      "1990\u20131995 \u2014 x \u2212 y \uff0d z": "1990-1995 - x - y - z",
      "a\u2044b\u2215c": "a/b/c",
      "wait\u2026": "wait...",
      "x . . . y": "x ... y",
      "ctl\u0001\u001bchars\u000bvt\u0085nel": "ctlchars vt nel",
      "soft\u00adhyphen": "softhyphen",
      "6\u2032 5\u2033 \u2034 \u2057": "6' 5'' ''' ''''",
      "\u301c\uff5e\u02dc": "~~~",
      "`acute\u00b4": "'acute'",
      "日本の首都は？": "日本の首都は？",
  }
  for raw, want in cases.items():
    assert text_normalize.normalize(raw) == want, raw


# -- MKQA gold answers: the official evaluator's semantics -------------------------------------


def _mkqa_record(answers: dict, example_id=7):
  queries = {lang: f"q {lang}" for lang in answers}
  return {"example_id": example_id, "query": "q", "queries": queries, "answers": answers}


def test_mkqa_gold_answers_follow_the_official_evaluator(tmp_path):
  records = [
      # null text (unanswerable and long_answer): the official "" = No Answer.
      _mkqa_record({"en": [{"type": "unanswerable", "entity": None, "text": None, "aliases": []}],
                    "fi": [{"type": "long_answer", "text": None}]}, 1),
      # text then aliases, every answer of the language, duplicates once.
      _mkqa_record({"en": [{"type": "entity", "entity": "Q1", "text": "Paris",
                            "aliases": ["City of Light", "Paris"]},
                           {"type": "entity", "entity": "Q2", "text": "Île-de-France",
                            "aliases": ["City of Light"]}]}, 2),
      # binary answers are the strings "yes" / "no".
      _mkqa_record({"en": [{"type": "binary", "text": "yes"}]}, 3),
      # number and date types: their text and aliases as they are.
      _mkqa_record({"en": [{"type": "number", "text": "7.0", "aliases": ["7", "seven"]}],
                    "de": [{"type": "date", "text": "9 November 1989",
                            "aliases": ["9. November 1989"]}]}, 4),
      # a null text beside a real answer: answerable, and "" stays a gold (empty prediction).
      _mkqa_record({"en": [{"type": "short_phrase", "text": "a tie"},
                           {"type": "unanswerable", "text": None}]}, 5),
  ]
  path = _write(tmp_path, "m.jsonl", "\n".join(json.dumps(r, ensure_ascii=False)
                                                for r in records) + "\n")
  ex = {e.example_id: e for e in readers.read_mkqa_jsonl(path)}
  assert ex["1"].gold_answers("en") == ("",) and ex["1"].gold_answers("fi") == ("",)
  assert not ex["1"].is_answerable("en") and not ex["1"].is_answerable("fi")
  q = ex["1"].to_question("fi")
  assert (q.qid, q.lang, q.answers, q.answer_types) == ("1", "fi", (), ("long_answer",))
  assert ex["2"].gold_answers("en") == ("Paris", "City of Light", "Île-de-France")
  assert ex["2"].to_question("en").answer_types == ("entity", "entity")
  assert ex["3"].to_question("en").answers == ("yes",)
  assert ex["4"].to_question("en").answers == ("7.0", "7", "seven")
  assert ex["4"].to_question("de").answers == ("9 November 1989", "9. November 1989")
  assert ex["5"].is_answerable("en") and ex["5"].to_question("en").answers == ("a tie", "")


# -- one error type, with path, line and field, from every reader -------------------------------


def test_every_reader_raises_data_format_error_with_path_line_field(tmp_path):
  from clqa_jax.data import wikipedia
  from clqa_jax.eval import inputs
  from clqa_jax.eval import mkqa
  from clqa_jax.serving import questions

  ok_xor = json.dumps({"id": "1", "lang": "ja", "question": "q", "answers": ["a"]})
  xor = _write(tmp_path, "x.jsonl", ok_xor + "\n" + json.dumps({"id": "2", "lang": "ja", "question": "q"}) + "\n")
  tsv = _write(tmp_path, "p.tsv", "id\ttext\ttitle\n1\tt\tT\n2\t\tT\n")
  nq = _write(tmp_path, "n.csv", 'q\t["a"]\nq\tnope\n')
  mk = _write(tmp_path, "m.jsonl", json.dumps(_mkqa_record({"en": [{"type": "entity", "text": 1}]})) + "\n")
  s1 = _write(tmp_path, "s1.jsonl", _stage1() + "\n" + _stage1(id="ja-12-0") + "\n")
  s2 = _write(tmp_path, "s2.jsonl", json.dumps({"id": "ja-2-0", "lang": "ja"}) + "\n")
  wiki = _write(tmp_path, "wiki_00", '{"id": "1", "title": "T", "text": "x"}\n{"id": "2", "text": "x"}\n')
  links = _write(tmp_path, "links.tsv", "en_title\tlang\ttitle\nA\tfi\t\n")
  cases = [
      (lambda: list(readers.read_xor_jsonl(xor)), xor, 2, "answers"),
      (lambda: inputs.read_gold(xor), xor, 2, "answers"),
      (lambda: questions.load_questions(xor, "xor-full"), xor, 2, "answers"),
      (lambda: list(readers.read_passages_tsv(tsv)), tsv, 3, "text"),
      (lambda: list(readers.read_nq_csv(nq)), nq, 2, "answers"),
      (lambda: list(readers.read_mkqa_jsonl(mk)), mk, 1, "answers.en[0].text"),
      (lambda: mkqa.read_mkqa(mk), mk, 1, "answers.en[0].text"),
      (lambda: questions.load_questions(mk, "mkqa"), mk, 1, "answers.en[0].text"),
      (lambda: list(readers.read_stage1_jsonl(s1)), s1, 2, "id"),
      (lambda: list(readers.read_stage2_jsonl(s2)), s2, 1, "source_pid"),
      (lambda: list(wikipedia.read_articles(wiki)), wiki, 2, "title"),
      (lambda: wikipedia.read_langlinks(links), links, 2, "title"),
  ]
  for read, path, line, field in cases:
    with pytest.raises(DataFormatError) as e:
      read()
    assert (e.value.path, e.value.line, e.value.field) == (path, line, field), read
    assert str(e.value).startswith(f"{path}:{line}: {field}: ")
  missing = str(tmp_path / "absent.jsonl")
  with pytest.raises(DataFormatError, match="cannot open") as e:
    list(readers.read_xor_jsonl(missing))
  assert (e.value.path, e.value.line, e.value.field) == (missing, None, None)
