"""ModelRunner: batched, padded, partitioned outputs equal the model called directly."""
import jax
import numpy as np

from clqa_jax.data.records import Question
from clqa_jax.eval import questions as questions_lib
from clqa_jax.eval.inference import ModelRunner
from clqa_jax.models import UnifiedRetrieverReader
from clqa_jax.models import decoding
from fixtures.export import tiny_run


def test_batches_with_padding_match_direct_calls():
  config = tiny_run.tiny_config()
  params = tiny_run.tiny_params(config, seed=11)
  # 8 devices: batches of 8, so 11 questions make two batches, the second one padded.
  runner = ModelRunner(config, params, query_batch_size=8, reader_batch_size=8, progress=False)
  rng = np.random.default_rng(0)
  n, k, lq, lp = 11, 3, 7, 9
  queries = rng.integers(3, 800, (n, lq)).astype(np.int32)
  queries[:, 5:] = 0
  passages = rng.integers(3, 800, (n, k, lp)).astype(np.int32)
  passages[..., -1] = 1
  passages[2, 1] = 0                       # a padding passage
  model = UnifiedRetrieverReader(config)

  @jax.jit
  def direct(p, q, ps):
    enc = model.apply({"params": p}, q, ps, method="encode_for_reader")
    answers = decoding.generate(model, p, enc["memory"], enc["memory_mask"], max_length=5)
    return model.apply({"params": p}, q, method="encode_queries"), answers

  want_vectors, want_answers = direct(params, queries, passages)
  np.testing.assert_allclose(runner.encode_queries(queries), want_vectors, atol=1e-5)
  np.testing.assert_array_equal(runner.generate(queries, passages, 5), want_answers)


def test_query_tokens_and_answer_decoding():
  import sentencepiece as spm
  from fixtures.data.tiny_vocab import tiny_vocab_path

  sp = spm.SentencePieceProcessor(model_file=tiny_vocab_path())
  qs = [Question("1", "fi", " Mikä on \u201cSuomen\u201d pääkaupunki? ", ()),
        Question("2", "en", "What is \u201cit\u201d?", ())]
  want = 'question: Mikä on "Suomen" pääkaupunki?'
  assert questions_lib.query_text(qs[0].question, "fi") == want
  # English questions are not normalised (as the official code).
  assert questions_lib.query_text(qs[1].question, "en") == "question: What is \u201cit\u201d?"
  tokens = questions_lib.tokenize_queries(sp, qs, max_tokens=6)
  assert tokens.shape == (2, 6) and tokens.dtype == np.int32
  assert 1 not in tokens[0]                 # no EOS on queries
  full = sp.encode(questions_lib.query_text(qs[0].question, "fi"))
  assert tokens[0].tolist() == full[:6]
  answer = sp.encode("Helsinki")
  generated = np.array([answer + [1, 7, 7], [1] + [5] * (len(answer) + 2)])
  assert questions_lib.decode_answers(sp, generated) == ["Helsinki", ""]
