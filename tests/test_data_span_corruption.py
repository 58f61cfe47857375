"""T5 span corruption (data/preprocessors.py): the noise fraction and span count of T5's
definition, sentinels from the end of the vocabulary, and inputs + targets rebuilding the
original sequence exactly."""
import numpy as np
import seqio
import tensorflow as tf

from clqa_jax.data import preprocessors as pp

VOCAB = 1000


def _corrupt(sequences, seed=3, **kw):
  ds = tf.data.Dataset.from_generator(lambda: ({"targets": s} for s in sequences),
                                      output_signature={"targets": tf.TensorSpec([None], tf.int32)})
  with seqio.utils.map_seed_manager(seed):
    ds = pp.span_corruption(ds, vocab_size=VOCAB, eos_id=1, **kw)
  return [(x["inputs"], x["targets"]) for x in ds.as_numpy_iterator()]


def _spans(tokens):
  """Runs of sentinels' content: {sentinel: [tokens up to the next sentinel or EOS]}."""
  out, current = {}, None
  for t in tokens[:-1]:
    if t >= VOCAB - 100:
      current = int(t)
      out[current] = []
    else:
      out[current].append(int(t))
  return out


def _rebuild(inputs, targets):
  assert inputs[-1] == 1 and targets[-1] == 1
  fill = _spans(targets)
  out = []
  for t in inputs[:-1]:
    out += fill.pop(int(t)) if t >= VOCAB - 100 else [int(t)]
  assert not fill
  return out


def _sequences(n, length, seed=0):
  rng = np.random.default_rng(seed)
  return [rng.integers(2, VOCAB - 100, size=length).astype(np.int32) for _ in range(n)]


def test_inputs_and_targets_rebuild_the_original_exactly():
  seqs = _sequences(20, 57) + _sequences(5, 200, 1) + [np.array([5, 6], np.int32)]
  for seq, (inputs, targets) in zip(seqs, _corrupt(seqs)):
    assert _rebuild(inputs, targets) == seq.tolist()
    sentinels = [int(t) for t in inputs if t >= VOCAB - 100]
    assert sentinels == list(range(VOCAB - 1, VOCAB - 1 - len(sentinels), -1))   # from the end
    assert inputs[0] == seq[0]                                # the first token is never noise


def test_noise_fraction_and_mean_span_length():
  length = 200
  noise_lengths = []
  for seq, (inputs, targets) in zip(_sequences(50, length), _corrupt(_sequences(50, length))):
    spans = _spans(targets)
    noise = sum(len(v) for v in spans.values())
    assert noise == round(length * 0.15) == 30                      # exactly T5's count
    assert len(spans) == round(30 / 3) == 10 and all(spans.values())
    assert len(inputs) == length - noise + len(spans) + 1
    noise_lengths += [len(v) for v in spans.values()]
  assert np.mean(noise_lengths) == 3.0 and len(set(noise_lengths)) > 3   # random segmentation
  other = _corrupt([_sequences(1, 100)[0]], noise_density=0.3, mean_noise_span_length=5.0)
  assert sum(len(v) for v in _spans(other[0][1]).values()) == 30 and len(_spans(other[0][1])) == 6


def test_masks_are_seeded_per_example():
  seqs = _sequences(4, 120)
  a, b, c = _corrupt(seqs, seed=1), _corrupt(seqs, seed=1), _corrupt(seqs, seed=2)
  assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b))
  assert not all(np.array_equal(x[0], y[0]) for x, y in zip(a, c))
  assert len({tuple(x[0]) for x in _corrupt([seqs[0]] * 4)}) > 1   # per example
