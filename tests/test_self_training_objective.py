"""The capstone's self-training objective (peer-methods 1.3 a, O4): L_sim over the batch's gold
passages, hard negatives and in-batch negatives, against a numpy loop over the same passages,
with a corpus row shared by several questions counted once per question."""
import jax
import numpy as np

from clqa_jax.losses import objectives

RNG = np.random.default_rng(11)


def np_multi_positive(scores_BN, rows_BK, labels_BK):
  """-sum_{p in P+} log e^s(q,p) / sum_{p' in P+ u P-} e^s(q,p'), P- = own hard negatives and
  the distinct rows of other questions not already among the question's own passages."""
  b, k = rows_BK.shape
  rows = rows_BK.reshape(-1)
  out = []
  for i in range(b):
    own = set(int(r) for r in rows_BK[i] if r >= 0)
    columns, seen = [], set()
    for n, r in enumerate(rows):
      if r < 0:
        continue
      if n // k == i:
        columns.append(n)
      elif r not in own and r not in seen:
        columns.append(n)
      seen.add(int(r))
    z = np.log(np.sum(np.exp(scores_BN[i, columns].astype(np.float64))))
    positives = [i * k + j for j in range(k) if rows_BK[i, j] >= 0 and labels_BK[i, j] > 0]
    out.append(sum(z - scores_BN[i, n] for n in positives))
  return np.array(out)


def test_candidates_dedup_shared_rows_and_skip_padding():
  rows = np.array([[5, 1, 2], [5, 3, -1], [1, 3, 4]], np.int32)
  labels = np.array([[1, 0, 0], [1, 0, 0], [1, 1, 0]], np.float32)
  positive, candidate = objectives.inbatch_candidates(rows, labels)
  positive, candidate = np.asarray(positive), np.asarray(candidate)
  # Question 0: own 5, 1, 2; others' 5 (own row), 3, 1 (own row), 3 (repeat), 4.
  np.testing.assert_array_equal(candidate[0], [1, 1, 1, 0, 1, 0, 0, 0, 1])
  # Question 1: own 5, 3 (padding out); others' 1, 2, then 1 and 3 again, 4.
  np.testing.assert_array_equal(candidate[1], [0, 1, 1, 1, 1, 0, 0, 0, 1])
  np.testing.assert_array_equal(positive[2], [0, 0, 0, 0, 0, 0, 1, 1, 0])
  assert positive.sum() == 4 and not (positive & ~candidate).any()


def test_multi_positive_objective_matches_numpy_on_the_retrieval_vectors():
  from fixtures.trainer.tiny import tiny_model

  model = tiny_model()
  b, k, lq, lp = 3, 3, 5, 7
  params = model.get_initial_variables(jax.random.PRNGKey(0), {
      "query_tokens": (1, lq), "passage_tokens": (1, 1, lp),
      "decoder_input_tokens": (1, 2)})["params"]
  rows = np.array([[5, 1, 2], [5, 3, -1], [1, 3, 4]], np.int32)
  tokens_of_row = RNG.integers(2, 128, (6, lp)).astype(np.int32)
  batch = {"query_tokens": RNG.integers(2, 128, (b, lq)).astype(np.int32),
           "passage_tokens": np.where(rows[..., None] >= 0, tokens_of_row[rows], 0),
           "passage_rows": rows,
           # two positives for question 2, none for a question would give 0
           objectives.POSITIVE_LABELS: np.array([[1, 0, 0], [1, 0, 0], [1, 1, 0]], np.float32)}
  obj = objectives.objective_by_name("multi_positive")
  loss, metrics = obj.loss(params, batch, model=model, rng=None, num_questions=2 * b,
                           enable_dropout=False)
  q = np.asarray(model.embed_queries(params, batch["query_tokens"]), np.float64)
  p = np.asarray(model.embed_passages(params, batch["passage_tokens"].reshape(b * k, lp)),
                 np.float64)
  want = np_multi_positive(q @ p.T, rows, batch[objectives.POSITIVE_LABELS])
  assert want.shape == (3,) and np.all(want > 0)
  np.testing.assert_allclose(loss, want.sum() / (2 * b), rtol=1e-4)
  assert set(metrics) == {"loss", "loss/multi_positive"}
  # Without labels the objective names the missing feature.
  missing = {k: v for k, v in batch.items() if k != objectives.POSITIVE_LABELS}
  try:
    obj.loss(params, missing, model=model, rng=None, num_questions=b, enable_dropout=False)
  except KeyError as e:
    assert objectives.POSITIVE_LABELS in str(e)
  else:
    raise AssertionError("a batch without positive labels was accepted")
