"""The language of a question read from its script (``clqa infer`` without --lang)."""
import pytest

from clqa_jax.cli import question_language
from clqa_jax.cli import validate


@pytest.mark.parametrize("text,lang", [
    ("日本の首都はどこですか？", "ja"),
    ("iPhoneの発売日は？", "ja"),                  # a Latin name inside Japanese
    ("コーヒー", "ja"),                            # katakana with the prolonged sound mark
    ("佐々木さんは誰？", "ja"),                    # the iteration mark is kanji
    ("대한민국의 수도는 어디입니까?", "ko"),
    ("大韓民國의 首都는?", "ko"),                  # hanja with hangul
    ("ما هي عاصمة مصر؟", "ar"),
    ("מהי בירת ישראל?", "he"),
    ("বাংলাদেশের রাজধানী কী?", "bn"),
    ("భారతదేశ రాజధాని ఏది?", "te"),
    ("เมืองหลวงของไทยคืออะไร", "th"),
    ("រាជធានីនៃកម្ពុជា", "km"),
    ("Что такое iPhone?", "ru"),
])
def test_a_script_of_one_known_language_decides(text, lang):
  assert question_language.detect(text) == lang
  assert lang in validate.KNOWN_LANGUAGES


@pytest.mark.parametrize("text,why", [
    ("What is the capital of Finland?", "Latin script"),
    ("Mikä on Suomen pääkaupunki?", "Latin script"),
    ("¿Cuál es la capital de España?", "Latin script"),
    ("東京都", "Japanese or Chinese"),
    ("北京是中国的首都吗", "Japanese or Chinese"),
    ("What does Москва mean?", "mixes scripts"),       # the Latin words outnumber
    ("Кто написал Harry Potter", "mixes scripts"),     # a tie is not certain
    ("Москваの人口", "mixes scripts"),                 # two non-Latin scripts
    ("Τι είναι η Αθήνα;", "written in greek script"),   # no known language writes Greek
    ("1984?", "no letters"),
])
def test_anything_else_needs_lang_and_says_why(text, why):
  assert question_language.detect(text) is None
  assert why in question_language.why_undecided(text)
