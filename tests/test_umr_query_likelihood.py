"""UMR's query-likelihood teacher (peer-methods 4.2), oracle O1: s_LM equals the mean token
log-likelihood of "Question: q" + EOS given the prompt, computed by Hugging Face
MT5ForConditionalGeneration on the same tiny random weights (fp32, within 1e-4)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from clqa_jax.index import rerank  # noqa: E402
from clqa_jax.losses import query_likelihood as ql  # noqa: E402
from fixtures.data.tiny_vocab import tiny_vocab_path  # noqa: E402
from fixtures.umr.teacher import write_tiny_teacher  # noqa: E402

ITEMS = [
    ql.ScoringItem("Who founded Helsinki?", "fi", "Helsinki", "Helsinki is the capital of Finland."),
    ql.ScoringItem("Какая столица?", "ru", "Moscow", "Moscow is a city " * 3),
    ql.ScoringItem("q", "xx", "", "A passage long enough to be truncated. " * 200),
]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
  return write_tiny_teacher(str(tmp_path_factory.mktemp("qlm_teacher")), tiny_vocab_path())


def test_prompt_and_target_are_the_sources():
  assert ql.prompt_text("T", "body", "ja") == (
      "Passage:  T body. Please write a question based on this passage in Japanese.")
  assert ql.prompt_text("T", "body", "sw").endswith("in sw.")  # unlisted: the ISO code
  assert ql.target_text("why?") == "Question: why?"


def test_tokenize_truncates_with_eos(teacher_dir):
  teacher = rerank.load_teacher(teacher_dir, batch_size=2)
  x, y = teacher.tokenize(ITEMS)
  assert x.shape == (3, 512) and y.shape == (3, 128)
  assert x[2, -1] == 1 and (x[2] > 0).all()            # truncated to 511 pieces + EOS
  n = int((x[0] > 0).sum())
  assert x[0, n - 1] == 1 and n < 512
  assert teacher.sp.decode(y[0][y[0] > 1].tolist()) == "Question: Who founded Helsinki?"


def test_scores_match_hugging_face_mean_token_log_likelihood(teacher_dir):
  teacher = rerank.load_teacher(teacher_dir, batch_size=2)
  scores = teacher.score(ITEMS)   # two batches, the second padded
  assert teacher.calls == 2
  x, y = teacher.tokenize(ITEMS)
  hf = transformers.MT5ForConditionalGeneration.from_pretrained(teacher_dir).eval()
  want = []
  with torch.no_grad():
    for i in range(len(ITEMS)):
      xi = torch.tensor(x[i:i + 1][:, x[i] > 0]).long()
      yi = torch.tensor(y[i:i + 1][:, y[i] > 0]).long()
      # HF's labels loss: mean CE over every label token, decoder started from pad (id 0).
      want.append(-hf(input_ids=xi, labels=yi).loss.item())
  np.testing.assert_allclose(scores, np.array(want), atol=1e-4)
  assert np.ptp(scores) > 1e-3  # the pairs score differently
