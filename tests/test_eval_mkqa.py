"""MKQA conversion to XOR format and per-language evaluation."""
import json
import os

import pytest

from clqa_jax.data.errors import DataFormatError
from clqa_jax.data.records import Question
from clqa_jax.eval import mkqa
from clqa_jax.eval import segment

RAW = os.path.join(os.path.dirname(__file__), "fixtures", "eval", "mkqa_raw.jsonl")
PREDICTIONS = {"en": {"101": "Darwin", "102": "God", "103": "1989"},
               "ja": {"101": "ダーウィン"},
               "zh_cn": {"101": "达尔文", "103": "1989年11月9日"}}


def test_convert_text_plus_aliases_and_drop_unanswerable():
  converted = mkqa.convert_mkqa(mkqa.read_mkqa(RAW), ["en", "ja", "zh_cn"])
  assert converted["en"] == [
      Question("101", "en", "who wrote the origin of species",
               ("Charles Darwin", "Darwin", "Charles Robert Darwin"), ("entity",)),
      Question("103", "en", "when did the berlin wall fall",
               ("9 November 1989", "November 9, 1989"), ("date",))]
  assert [q.answers for q in converted["ja"]] == [("チャールズ・ダーウィン", "ダーウィン"),
                                                  ("1989年11月9日",)]
  assert [q.qid for q in converted["zh_cn"]] == ["101", "103"]


def test_kept_unanswerable_questions_are_never_scored():
  converted = mkqa.convert_mkqa(mkqa.read_mkqa(RAW), ["en"], keep_unanswerable=True)
  assert mkqa.xor_record(converted["en"][1]) == {
      "id": "102", "question": "what is the meaning of life", "answers": ["No Answer"],
      "lang": "en", "type": "unanswerable"}
  result = mkqa.evaluate_mkqa(converted, {"en": PREDICTIONS["en"]})
  assert result.counts == {"en": 2} and result.info["skipped_unanswerable"] == 1
  # The official converter's "NoAns" marker is skipped too.
  converted["en"][1] = Question("102", "en", "q", ("NoAns",), ("unanswerable",))
  assert mkqa.evaluate_mkqa(converted, {"en": PREDICTIONS["en"]}).counts == {"en": 2}


def test_evaluation_per_language_and_macro():
  converted = mkqa.convert_mkqa(mkqa.read_mkqa(RAW), ["en", "ja", "zh_cn"])
  result = mkqa.evaluate_mkqa(converted, PREDICTIONS)
  # en: Darwin (EM) and "1989" vs "9 November 1989" (F1 0.5); ja: EM and a missing one;
  # zh_cn: no spaces -> "达尔文" vs "查尔斯·达尔文" scores 0, the date matches after 年 removal.
  assert result.scores["en"]["F1"] == pytest.approx(75.0) and result.scores["en"]["EM"] == 50.0
  assert result.scores["ja"]["F1"] == pytest.approx(50.0) and result.scores["ja"]["EM"] == 50.0
  assert result.scores["zh_cn"]["F1"] == pytest.approx(50.0)
  assert result.macro["F1"] == pytest.approx(175 / 3)
  assert result.info["missing_predictions_scored_0"] == 1


def test_mia_segmentation_gives_partial_credit_in_chinese():
  converted = mkqa.convert_mkqa(mkqa.read_mkqa(RAW), ["en", "ja", "zh_cn"])
  result = mkqa.evaluate_mkqa(converted, PREDICTIONS, mia_segmentation=True)
  # 查 尔 斯 · 达 尔 文 vs 达 尔 文: P 1, R 3/7 -> F1 0.6; the date still matches.
  assert segment.char_segment("查尔斯·达尔文") == "查 尔 斯 · 达 尔 文"
  assert result.scores["zh_cn"]["F1"] == pytest.approx(80.0)
  assert result.scores["en"]["F1"] == pytest.approx(75.0)  # other languages unchanged
  assert result.macro["F1"] == pytest.approx(205 / 3)


def test_char_segment_keeps_graphemes_and_latin_words():
  assert segment.char_segment("北京 Beijing 2008年") == "北 京 Beijing 2008 年"
  assert segment.char_segment("ភ្នំពេញ") == "ភ្នំ ពេ ញ"  # coeng stacks, vowel signs attach


def test_language_list_and_prediction_layouts(tmp_path):
  assert len(mkqa.MKQA_LANGS) == 26 and len(set(mkqa.MKQA_LANGS)) == 26
  flat = tmp_path / "ja.json"
  flat.write_text(json.dumps(PREDICTIONS["ja"]))
  assert mkqa.read_mkqa_predictions(str(flat), ["ja"]) == {"ja": PREDICTIONS["ja"]}
  with pytest.raises(DataFormatError, match="one language"):
    mkqa.read_mkqa_predictions(str(flat), ["ja", "en"])
  nested = tmp_path / "all.json"
  nested.write_text(json.dumps(PREDICTIONS))
  assert mkqa.read_mkqa_predictions(str(nested), ["en", "ja"]) == PREDICTIONS
  assert mkqa.read_mkqa_predictions(str(tmp_path), ["ja", "en"]) == {"ja": PREDICTIONS["ja"]}


def test_bad_raw_file_names_line_and_field(tmp_path):
  path = tmp_path / "mkqa.jsonl"
  path.write_text('{"example_id": 1, "queries": {"en": "q"}, '
                  '"answers": {"en": [{"type": "entity", "text": 5}]}}\n')
  with pytest.raises(DataFormatError, match=r"mkqa.jsonl:1: answers.en\[0\].text: "):
    mkqa.read_mkqa(str(path))


def test_language_selection_defaults_to_predicted_languages():
  predicted = {"zh_cn": {}, "en": {}, "xx": {}}
  assert mkqa.select_languages(None, predicted) == ["zh_cn", "en", "xx"]
  assert mkqa.select_languages(["ja", "en", "ja"], predicted) == ["ja", "en"]


def _raw(tmp_path, records):
  path = tmp_path / "mkqa.jsonl"
  path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                  encoding="utf-8")
  return str(path)


def test_official_gold_semantics_in_conversion_and_scoring(tmp_path):
  records = [
      {"example_id": 1, "queries": {"en": "is water wet"},
       "answers": {"en": [{"type": "binary", "text": "yes"}]}},
      {"example_id": 2, "queries": {"en": "how many legs does a spider have"},
       "answers": {"en": [{"type": "number", "text": "8.0", "aliases": ["8", "eight", "8"]}]}},
      {"example_id": 3, "queries": {"en": "explain gravity"},
       "answers": {"en": [{"type": "long_answer", "text": None, "aliases": []}]}},
      {"example_id": 4, "queries": {"en": "when was the treaty signed"},
       "answers": {"en": [{"type": "date", "text": "1648", "aliases": []},
                          {"type": "unanswerable", "text": None}]}},
  ]
  converted = mkqa.convert_mkqa(mkqa.read_mkqa(_raw(tmp_path, records)), ["en"])
  # long_answer (null text) is unanswerable and dropped; aliases are deduplicated; a null text
  # beside a real answer keeps "" among the golds, as the official evaluator does.
  assert [(q.qid, q.answers) for q in converted["en"]] == [
      ("1", ("yes",)), ("2", ("8.0", "8", "eight")), ("4", ("1648", ""))]
  result = mkqa.evaluate_mkqa(converted, {"en": {"1": "Yes", "2": "eight", "4": ""}})
  assert result.scores["en"]["EM"] == pytest.approx(100.0)
  kept = mkqa.convert_mkqa(mkqa.read_mkqa(_raw(tmp_path, records)), ["en"],
                           keep_unanswerable=True)
  assert [q.answers for q in kept["en"]][2] == ("No Answer",)


@pytest.mark.parametrize("lang", ["../x", "en/..", "jp", ""])
def test_only_mkqa_language_codes_name_output_files(lang, tmp_path):
  with pytest.raises(ValueError, match="not MKQA language codes"):
    mkqa.write_converted({"en": [], lang: []}, str(tmp_path / "out"))
  assert not (tmp_path / "out").exists()
  assert not (tmp_path / "x").exists() and os.listdir(tmp_path) == []
