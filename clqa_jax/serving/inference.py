"""Batched, jitted, partitioned inference with the unified model: query vectors and answers.

Parameters are laid out by a ``Partitioner`` (gin: ``make_partitioner``; default data
parallel over every device); each call splits its inputs into fixed-size global batches (the
last one padded, so one compilation serves every batch), each process feeds its own rows, and
the (small) outputs come back replicated so every host holds all of them.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import tqdm
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from clqa_jax.models import decoding
from clqa_jax.models.model_api import UnifiedModel
from clqa_jax.models.unified import UnifiedConfig
from clqa_jax.partitioning.partitioner import Partitioner, PartitioningConfig

logger = logging.getLogger(__name__)


def _float32(embed):
  """(params, tokens) -> embed(params, tokens) in float32 (the vectors come back to the host)."""
  return lambda params, tokens: embed(params, tokens).astype(jnp.float32)


class ModelRunner:
  """The unified model on the devices: ``encode_queries``, ``encode_passages``, ``generate``."""

  def __init__(self, config: UnifiedConfig, params: Any, *,
               partitioner: Partitioner | None = None, query_batch_size: int = 64,
               reader_batch_size: int = 8, progress: bool = True):
    from clqa_jax.trainer import state_init

    self.config = config
    self.model = UnifiedModel.from_config(config)
    self.partitioner = partitioner or Partitioner.from_config(PartitioningConfig())
    dp = self.partitioner.data_parallel_size
    # Global batches must split evenly over the data-parallel devices.
    self.query_batch_size = -(-query_batch_size // dp) * dp
    self.reader_batch_size = -(-reader_batch_size // dp) * dp
    self.progress = progress and jax.process_index() == 0
    _, self.param_shardings = state_init.abstract_params_and_shardings(self.partitioner,
                                                                       self.model)
    self.params = jax.device_put(params, self.param_shardings)
    batch = self.partitioner.batch_spec()
    replicated = NamedSharding(self.partitioner.mesh, P())
    self._encode = {}
    for name, embed in (("queries", self.model.embed_queries),
                        ("passages", self.model.embed_passages)):
      self._encode[name] = self.partitioner.partition(
          _float32(embed), in_shardings=(self.param_shardings, batch), out_shardings=replicated)
    self._generate_fns: dict[int, Any] = {}
    self._replicated = replicated

  @classmethod
  def from_export(cls, export_dir: str, *, partitioner: Partitioner | None = None,
                  **kwargs: Any) -> "ModelRunner":
    """A runner whose parameters are restored straight into their shards (no host copy of
    the whole model: the path for models larger than one host's memory)."""
    from clqa_jax.checkpoints import exported
    from clqa_jax.trainer import state_init

    config = exported.read_model_config(export_dir)
    partitioner = partitioner or Partitioner.from_config(PartitioningConfig())
    _, shardings = state_init.abstract_params_and_shardings(partitioner,
                                                            UnifiedModel.from_config(config))
    config, params, _, _ = exported.load_exported(export_dir, shardings=shardings)
    return cls(config, params, partitioner=partitioner, **kwargs)

  def place_params(self, params: Any) -> None:
    """Runs on ``params`` from now on (laid out as the runner's shardings: no copy when they
    already are, e.g. a training run's current params under the run's partitioner); None
    drops the runner's reference to its parameters."""
    self.params = None if params is None else jax.device_put(params, self.param_shardings)

  def passage_encode_fn(self):
    """(params, passage_tokens [G, Lp]) -> [G, D], for ``index.encode.encode_corpus``."""
    from clqa_jax.index import model_encoders
    return model_encoders.passage_encode_fn(self.model, self.partitioner.rules)

  def _generate_fn(self, max_length: int):
    if max_length not in self._generate_fns:
      model = self.model

      def fn(params, query_tokens, passage_tokens):
        return model.predict_batch(
            params, {"query_tokens": query_tokens, "passage_tokens": passage_tokens},
            max_length=max_length)

      batch = self.partitioner.batch_spec()
      self._generate_fns[max_length] = self.partitioner.partition(
          fn, in_shardings=(self.param_shardings, batch, batch), out_shardings=self._replicated)
    return self._generate_fns[max_length]

  def _batched(self, fn, arrays: list[np.ndarray], batch_size: int, desc: str,
               unit: str) -> np.ndarray:
    """Runs fn(params, *batch) over fixed-size global batches; returns the stacked outputs."""
    n = arrays[0].shape[0]
    if n == 0:
      raise ValueError(f"{desc}: nothing to run on")
    layout = self.partitioner.data_layout(batch_size)
    lo = layout.shard_id * layout.per_process_batch_size
    hi = lo + layout.per_process_batch_size
    outputs = []
    bar = tqdm.tqdm(total=n, desc=desc, unit=unit, disable=not self.progress, smoothing=0.1)
    start = time.time()
    try:
      for b0 in range(0, n, batch_size):
        parts = []
        for a in arrays:
          chunk = a[b0:b0 + batch_size]
          if chunk.shape[0] < batch_size:
            pad = np.zeros((batch_size - chunk.shape[0],) + chunk.shape[1:], chunk.dtype)
            chunk = np.concatenate([chunk, pad])
          parts.append(chunk[lo:hi])
        batch = self.partitioner.host_local_batch_to_global(
            {str(i): p for i, p in enumerate(parts)})
        out = fn(self.params, *(batch[str(i)] for i in range(len(parts))))
        outputs.append(np.asarray(out.addressable_data(0)))
        bar.update(min(batch_size, n - b0))
    finally:
      bar.close()
    logger.info("%s: %d in %.1fs", desc, n, time.time() - start)
    return np.concatenate(outputs)[:n]

  def encode_queries(self, query_tokens: np.ndarray) -> np.ndarray:
    """query_tokens int32 [N, Lq] -> query vectors float32 [N, D]."""
    return self._batched(self._encode["queries"], [np.asarray(query_tokens, np.int32)],
                         self.query_batch_size, "encode questions", "q")

  def encode_passages(self, passage_tokens: np.ndarray) -> np.ndarray:
    """passage_tokens int32 [N, Lp] -> passage vectors float32 [N, D]."""
    return self._batched(self._encode["passages"],
                         [np.asarray(passage_tokens, np.int32)], self.query_batch_size,
                         "encode passages", "psg")

  def generate(self, query_tokens: np.ndarray, passage_tokens: np.ndarray,
               max_length: int = decoding.MAX_ANSWER_LENGTH) -> np.ndarray:
    """Greedy FiD answers: query_tokens [N, Lq], passage_tokens [N, K, Lp] -> tokens [N, T]."""
    return self._batched(self._generate_fn(max_length),
                         [np.asarray(query_tokens, np.int32),
                          np.asarray(passage_tokens, np.int32)],
                         self.reader_batch_size, "read (greedy)", "q")
