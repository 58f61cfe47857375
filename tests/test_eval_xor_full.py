"""XOR-Full F1 / EM / BLEU and XOR-EnglishSpan with the official scripts' rules."""
import math
import os
import random
import sys
import warnings

import pytest
from nltk.translate import bleu as nltk_bleu

from clqa_jax.eval import bleu
from clqa_jax.eval import inputs
from clqa_jax.eval import normalize
from clqa_jax.eval import segment
from clqa_jax.eval import xor_engspan
from clqa_jax.eval import xor_full

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "eval")
TINY = math.sqrt(sys.float_info.min)  # two missing n-gram orders: (min * min) ** 0.25


def test_xor_normalization_punctuation_counters_whitespace_no_articles():
  assert normalize.normalize_xor_answer("  The 2019年, 20歳 (3人)! 5년 ") == "the 2019 20 3 5"
  # Only ASCII punctuation goes: the Japanese comma and middle dot stay.
  assert normalize.normalize_xor_answer("東京、大阪・京都") == "東京、大阪・京都"


def test_squad_normalization_removes_articles_but_not_counters():
  assert normalize.normalize_squad_answer("The  2019年, an Apple!") == "2019年 apple"


def test_article_kept_in_xor_full_removed_in_engspan():
  gold, pred = ["The Beatles"], "Beatles"
  scores = xor_full.score_answer("en", gold, pred)
  assert scores["F1"] == pytest.approx(2 / 3) and scores["EM"] == 0
  squad = normalize.normalize_squad_answer
  assert normalize.max_f1(pred, gold, squad) == 1.0
  assert normalize.max_exact_match(pred, gold, squad)


def test_char_bleu_hand_values():
  # p1..p4 = 5/6, 3/5, 2/4, 1/3, equal lengths (BP 1): (1/12) ** 0.25.
  assert bleu.char_bleu(["abcdef"], "abcdxf") == pytest.approx((1 / 12) ** 0.25, rel=1e-15)
  # All precisions 1, hypothesis 4 chars vs reference 5: BP = exp(1 - 5/4).
  assert bleu.char_bleu(["abcde"], "abcd") == pytest.approx(math.exp(-0.25), rel=1e-15)
  # Closest reference length wins (7 vs 13 for a 5-char hypothesis): BP = exp(1 - 7/5).
  assert bleu.char_bleu(["Elias Lönnrot", "Lönnrot"], "Elias") == pytest.approx(
      math.exp(-0.4), rel=1e-15)
  # No 4-gram match: NLTK's method0 puts float_info.min there, so the score is tiny, not 0.
  value = bleu.char_bleu(["abcd"], "abce")
  assert value == pytest.approx((0.75 * (2 / 3) * 0.5 * sys.float_info.min) ** 0.25, rel=1e-12)
  assert 0 < value < 1e-70
  # No unigram match at all: the integer 0.
  assert bleu.char_bleu(["abc"], "xyz") == 0 and isinstance(bleu.char_bleu(["abc"], "xyz"), int)
  assert bleu.char_bleu(["abc"], "") == 0


def test_char_bleu_equals_nltk_bit_for_bit():
  rng = random.Random(0)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for _ in range(400):
      refs = ["".join(rng.choice("abcd \n") for _ in range(rng.randint(0, 12)))
              for _ in range(rng.randint(1, 3))]
      hyp = "".join(rng.choice("abcde ") for _ in range(rng.randint(0, 12)))
      ours, theirs = bleu.char_bleu(refs, hyp), nltk_bleu(refs, hyp)
      assert ours == theirs and type(ours) is type(theirs), (refs, hyp)


def test_mecab_wakati_reproduces_raw_mecab_output():
  # UniDic-lite segmentation; MeCab -Owakati puts a space after every token, then "\n".
  assert segment.mecab_wakati("東京都は日本の首都です。") == "東京 都 は 日本 の 首都 です 。 \n"
  assert segment.mecab_wakati("ハリー・ポッター") == "ハリー ・ ポッター \n"
  assert segment.mecab_wakati("") == "\n"


# Whitespace characters MeCab emits as tokens (U+3000, U+00A0, U+2003, U+2002, U+2009) and the
# tab, which it skips like the ASCII space.
MECAB_WHITESPACE = ("\u3000", "\u00a0", "\u2003", "\u2002", "\u2009", "\t")


def _raw_mecab_wakati():
  """``MeCab.Tagger("-Owakati").parse``, independently: libmecab's C ``mecab_sparse_tostr`` (the
  call mecab-python3's ``Tagger.parse`` makes), from the library fugashi bundles, on UniDic-lite."""
  import ctypes
  import glob

  import fugashi
  import unidic_lite

  libs = glob.glob(os.path.join(os.path.dirname(fugashi.__file__), os.pardir, "fugashi.libs",
                                "libmecab*"))
  assert libs, "fugashi's bundled libmecab not found"
  lib = ctypes.CDLL(libs[0])
  lib.mecab_new2.restype = ctypes.c_void_p
  lib.mecab_new2.argtypes = [ctypes.c_char_p]
  lib.mecab_sparse_tostr.restype = ctypes.c_char_p
  lib.mecab_sparse_tostr.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
  dicdir = unidic_lite.DICDIR
  rc = os.path.join(dicdir, "mecabrc")
  tagger = lib.mecab_new2(f"-Owakati -r {rc} -d {dicdir}".encode())
  assert tagger, "mecab_new2 failed"
  return lambda text: lib.mecab_sparse_tostr(tagger, text.encode("utf-8")).decode("utf-8")


def test_mecab_wakati_keeps_whitespace_tokens_like_raw_mecab():
  raw = _raw_mecab_wakati()
  # Hand-checked: U+3000 is a token of its own, also at the ends; ASCII space and tab are not.
  assert raw("東京\u3000大阪") == "東京 \u3000 大阪 \n"
  assert segment.mecab_wakati("\u3000東京\u3000") == "\u3000 東京 \u3000 \n"
  assert segment.mecab_wakati("\t東京\t大阪 ") == "東京 大阪 \n"
  rng = random.Random(0)
  words = ["東京", "大阪", "ハリー", "ポッター", "2019年", "首都です。", "Tokyo", "a", "・", "、"]
  for ws in MECAB_WHITESPACE:
    for text in (ws, f"東京{ws}大阪", f"{ws}東京{ws}", f"東京{ws}{ws}大阪", f"東京{ws}"):
      assert segment.mecab_wakati(text) == raw(text), repr(text)
  for _ in range(300):
    text = "".join(rng.choice(words + list(MECAB_WHITESPACE) + [" "])
                   for _ in range(rng.randint(0, 8)))
    assert segment.mecab_wakati(text) == raw(text), repr(text)


def test_japanese_bleu_with_whitespace_tokens_equals_the_official_call():
  raw = _raw_mecab_wakati()
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for ws in MECAB_WHITESPACE:
      gold, pred = [f"ハリー{ws}ポッター", f"東京{ws}"], f"ハリー{ws}ポッター"
      official = nltk_bleu([raw(g) for g in gold], pred)
      assert xor_full.score_answer("ja", gold, pred)["BLEU"] == official, repr(ws)
  # The U+3000 token lengthens the reference "ハリー \u3000 ポッター \n" to 12 characters.
  assert len(segment.mecab_wakati("ハリー\u3000ポッター")) == 12


def test_japanese_scoring_segments_and_rewrites_the_prediction():
  # 東京 vs gold 東京都 -> [東京] vs [東京, 都]: F1 2/3.
  scores = xor_full.score_answer("ja", ["東京都"], "東京")
  assert scores["F1"] == pytest.approx(2 / 3) and scores["EM"] == 0
  # "・" -> " " in the prediction only: [ハリー, ポッター] vs [ハリー, ・, ポッター]: F1 0.8.
  assert xor_full.score_answer("ja", ["ハリー・ポッター"], "ハリー・ポッター")["F1"] == (
      pytest.approx(0.8))
  # "、" -> "," (then removed as ASCII punctuation); the gold keeps "、": F1 0.8.
  assert xor_full.score_answer("ja", ["東京、大阪"], "東京、大阪")["F1"] == pytest.approx(0.8)
  # 年 is a separate MeCab token and a counter character: 2019年 == 2019.
  assert xor_full.score_answer("ja", ["2019年"], "2019")["EM"] == 1


def test_japanese_bleu_uses_raw_mecab_references_and_the_raw_prediction():
  # refs ["東京 \n"] (4 chars), hyp "東京": p1 = p2 = 1, p3 = p4 = min, BP = exp(1 - 4/2).
  scores = xor_full.score_answer("ja", ["東京"], "東京")
  assert scores["F1"] == 1.0 and scores["EM"] == 1
  assert scores["BLEU"] == pytest.approx(math.exp(-1) * TINY, rel=1e-12)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    assert scores["BLEU"] == nltk_bleu([segment.mecab_wakati("東京")], "東京")


def test_xor_full_fixture_skip_missing_and_macro():
  gold = inputs.read_gold(os.path.join(FIXTURES, "xor_full_gold.jsonl"))
  preds = inputs.read_answer_predictions(os.path.join(FIXTURES, "xor_full_pred.json"))
  result = xor_full.evaluate_xor_full(gold, preds)
  # fi-3 ("No Answer") skipped; ja-2 has no prediction: counted with 0.
  assert result.counts == {"fi": 2, "ja": 2, "en": 1}
  assert result.info["skipped_unanswerable"] == 1
  assert result.info["missing_predictions_scored_0"] == 1
  fi, ja, en = result.scores["fi"], result.scores["ja"], result.scores["en"]
  assert fi["F1"] == pytest.approx((1 + 2 / 3) / 2 * 100)
  assert fi["EM"] == 50.0
  assert fi["BLEU"] == pytest.approx((1 + math.exp(-0.4)) / 2 * 100)
  assert ja["F1"] == pytest.approx(100 / 3) and ja["EM"] == 0
  assert ja["BLEU"] == pytest.approx(math.exp(-1.5) * TINY / 2 * 100, rel=1e-12)
  assert en["F1"] == pytest.approx(200 / 3) and en["EM"] == 0
  assert en["BLEU"] == pytest.approx(math.exp(1 - 11 / 7) * 100)
  assert result.macro["F1"] == pytest.approx(((1 + 2 / 3) / 2 + 1 / 3 + 2 / 3) / 3 * 100)
  assert result.macro["EM"] == pytest.approx(50 / 3)


def test_engspan_fixture_counts_every_question_and_only_xor_languages():
  gold = inputs.read_gold(os.path.join(FIXTURES, "xor_full_gold.jsonl"))
  preds = inputs.read_answer_predictions(os.path.join(FIXTURES, "xor_full_pred.json"))
  result = xor_engspan.evaluate_xor_engspan(gold, preds)
  # fi: 1, 2/3 and 0 ("No Answer" is a plain gold here); ja: 0 and missing; en ignored.
  assert result.counts == {"fi": 3, "ja": 2}
  assert result.scores["fi"]["F1"] == pytest.approx((1 + 2 / 3) / 3 * 100)
  assert result.scores["fi"]["EM"] == pytest.approx(100 / 3)
  assert result.scores["ja"] == {"F1": 0.0, "EM": 0.0}
  assert result.macro["F1"] == pytest.approx((1 + 2 / 3) / 3 * 100 / 2)
  assert result.info["ignored_other_languages"] == 1
