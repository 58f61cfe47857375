"""Translation backends (dictionary, OpenAI-compatible HTTP, local seq2seq) and the `translate`
stage of `clqa synth`: per-language translations of named fields, failures counted."""
import json
import os

import pytest

from fixtures.synth import openai_server

from clqa_jax.synth import config as config_lib
from clqa_jax.synth import dofns
from clqa_jax.synth import http_backend
from clqa_jax.synth import manifest
from clqa_jax.synth import query_translation
from clqa_jax.synth import stages
from clqa_jax.synth import translation

DICTS = {"fi": {"capital": ["pääkaupunki"], "South Korea": ["Etelä-Korea"], "Korea": ["Korea"],
                "of": ["of"]},
         "ja": {"capital": ["首都"], "South Korea": ["大韓民国"], "river": ["川", "河"]}}


def test_dictionary_translator_longest_phrase_pivot_and_unknown_words():
  t = translation.DictionaryTranslator(DICTS)
  assert t.translate(["What is the capital of South Korea?", "A river"], "en", "ja") == [
      "What is the 首都 of 大韓民国?", "A 川"]
  assert t.translate(["Etelä-Korea pääkaupunki"], "fi", "en") == ["South Korea capital"]
  assert t.translate(["Etelä-Korea pääkaupunki."], "fi", "ja") == ["大韓民国 首都."]
  assert t.translate(["x"], "ja", "ja") == ["x"]
  with pytest.raises(ValueError, match="no en-ko dictionary"):
    t.translate(["x"], "en", "ko")


def test_dictionary_translator_reads_muse_files(tmp_path):
  (tmp_path / "en-fi.txt").write_text("capital\tpääkaupunki\nriver joki\n", encoding="utf-8")
  t = translation.DictionaryTranslator.from_directory(str(tmp_path), ("en", "fi"))
  assert t.translate(["river capital"], "en", "fi") == ["joki pääkaupunki"]
  with pytest.raises(FileNotFoundError, match="en-ja.txt"):
    translation.DictionaryTranslator.from_directory(str(tmp_path), ("fi", "ja"))


def test_http_translator_prompt_first_line_and_cache(tmp_path):
  with openai_server.serve() as srv:
    def make():
      return translation.HttpTranslator(http_backend.HttpBackend(
          srv.url, "m", cache_dir=str(tmp_path / "cache"), backoff_s=0.01))
    got = make().translate(["Hello", "FAIL me"], "en", "fi")
    assert got == ["Hello (Finnish)", ""]
    msgs = srv.requests[0]["body"]["messages"]
    assert msgs == translation.chat_messages(msgs[1]["content"], "en", "fi")
    assert "into Finnish" in msgs[0]["content"]
    n = len(srv.requests)
    assert make().translate(["Hello"], "en", "fi") == ["Hello (Finnish)"]
    assert len(srv.requests) == n  # served from the cache


def test_seq2seq_translator_batches_t5_prompts():
  seen = []

  def generate(prompts):
    seen.append(list(prompts))
    return [p.upper() + "\nmore" for p in prompts]
  t = translation.Seq2SeqTranslator(generate, batch_size=2)
  assert t.translate(["a", "b", "c"], "en", "ja") == [
      "TRANSLATE ENGLISH TO JAPANESE: " + x for x in "ABC"]
  assert [len(b) for b in seen] == [2, 1]
  assert seen[0][0] == "translate English to Japanese: a"


class Tagging:
  name = "tagging"

  def translate(self, texts, source_lang, target_lang):
    return [f"{source_lang}>{target_lang}:{t}" if "FAIL" not in t else "" for t in texts]


def test_translate_records_fields_languages_and_failures():
  records = [{"lang": "fi", "question": "q1", "answers": ["a", "FAIL"], "answer_lang": "en"},
             {"lang": "en", "question": "FAIL", "answers": []}]
  out, failures = translation.translate_records(records, ("question", "answers"),
                                                ("en", "fi", "ja"), Tagging())
  assert out[0]["translations"] == {
      "en": {"question": "fi>en:q1", "answers": ["a", "FAIL"]},
      "ja": {"question": "fi>ja:q1", "answers": ["en>ja:a", ""]}}
  assert out[1]["translations"] == {"fi": {"question": "", "answers": []},
                                    "ja": {"question": "", "answers": []}}
  # Answers already in the target language (en) are copied, not sent.
  assert sorted(failures) == ["answers.ja", "question.fi", "question.ja"]
  assert out[0]["question"] == "q1" and "translations" not in records[0]


def test_query_translation_uses_the_translator_protocol():
  assert query_translation.TranslationBackend is translation.Translator
  pairs = [{"question": "capital", "question_lang": "en", "passage_lang": "en"}]
  out = query_translation.translate_questions(pairs, ["ja"], translation.DictionaryTranslator(DICTS))
  assert out[0]["question"] == "首都" and out[0]["question_lang"] == "ja"


def _write(path, records):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def _read(pattern_dir):
  out = []
  for name in sorted(os.listdir(pattern_dir)):
    if ".jsonl" in name:
      with open(os.path.join(pattern_dir, name), encoding="utf-8") as f:
        out += [json.loads(l) for l in f]
  return out


def test_translate_stage_with_the_corpus_title_dictionaries(tmp_path):
  out = str(tmp_path)
  _write(os.path.join(out, "aug", "aug_qa.en.jsonl-00000-of-00001"), [
      {"id": "1", "lang": "en", "question": "What is the capital of Finland?",
       "answers": ["Helsinki"], "passage": "Helsinki is the capital of Finland."},
      {"id": "2", "lang": "fi", "question": "Mikä on Suomi?", "answers": ["Suomi"],
       "passage": "x"}])
  cfg = config_lib.SynthConfig(output_dir=out, langs=("en", "fi", "ja"), target_langs=("fi", "ja"),
                               translate_input="aug/aug_qa.*.jsonl-*",
                               translate_fields=("question", "answers", "passage"))
  result = stages.run_translate(cfg)
  assert result["counts"]["records"] == {"en": 1, "fi": 1}
  assert result["counts"]["translations"] == {"en": 1, "fi": 1, "ja": 2}
  assert result["config"]["translate_backend"] == "dictionary"
  assert sorted(os.listdir(os.path.join(out, "translated")))[:2] == [
      "MANIFEST.json", "aug_qa.en.jsonl-00000-of-00001"]
  by_id = {r["id"]: r for r in _read(os.path.join(out, "translated"))}
  assert by_id["1"]["translations"]["ja"] == {
      "question": "What is the capital of フィンランド?", "answers": ["ヘルシンキ"],
      "passage": "ヘルシンキ is the capital of フィンランド."}
  assert by_id["2"]["translations"]["en"]["question"] == "Mikä on Finland?"
  assert "fi" not in by_id["2"]["translations"]
  assert stages.run_translate(cfg)["skipped"]


def test_translate_stage_counts_failures_and_records_the_engine(tmp_path):
  out = str(tmp_path)
  _write(os.path.join(out, "in", "q.jsonl"), [
      {"lang": "en", "question": "Hello"}, {"lang": "en", "question": "FAIL"}])
  with openai_server.serve() as srv:
    cfg = config_lib.SynthConfig(
        output_dir=out, langs=("en", "fi"), target_langs=("fi",), translate_input="in/q.jsonl",
        translate_backend="http", http=config_lib.HttpConfig(base_url=srv.url, model="nllb"))
    result = stages.run_translate(cfg)
  assert result["counts"]["dropped"] == {"question.fi": 1}
  assert result["config"]["http"]["model"] == "nllb"
  got = sorted(r["translations"]["fi"]["question"] for r in _read(os.path.join(out, "translated")))
  assert got == ["", "Hello (Finnish)"]
  assert os.path.isdir(os.path.join(out, "translation_cache"))


def test_translate_stage_errors(tmp_path):
  out = str(tmp_path)
  _write(os.path.join(out, "in", "empty.jsonl"), [])
  cfg = config_lib.SynthConfig(output_dir=out, langs=("en", "fi"), target_langs=("fi",),
                               translate_input="in/empty.jsonl")
  with pytest.raises(manifest.EmptyStageError, match="empty.jsonl"):
    stages.run_translate(cfg)
  _write(os.path.join(out, "in", "bad.jsonl"), [{"lang": "en", "title": "x"}])
  cfg = config_lib.SynthConfig(output_dir=out, langs=("en", "fi"), target_langs=("fi",),
                               translate_input="in/bad.jsonl")
  with pytest.raises(Exception, match=r"bad.jsonl:1: the record has no field 'question'"):
    stages.run_translate(cfg)
  with pytest.raises(ValueError, match="translate_backend"):
    config_lib.SynthConfig(output_dir=out, translate_backend="nllb")
  with pytest.raises(ValueError, match="seq2seq' needs SynthConfig.checkpoint"):
    dofns.make_translator(config_lib.SynthConfig(output_dir=out, translate_backend="seq2seq"))
