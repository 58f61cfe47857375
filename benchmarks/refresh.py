"""Passage-refresh benchmark: encoding and per-host search throughput on CPU, projected to v4-32.

    python benchmarks/refresh.py                       # about 6 minutes on 2 cores
    python benchmarks/refresh.py --n 2000000 --encode_passages 256

Measures, on this machine, the refresh's own code paths:
  * encoding: ``index.encode_corpus`` with ``model_encoders.passage_encode_fn`` of a
    ``UnifiedModel`` (tiny and mT5-small presets; the vocabulary is cut to --vocab_size, which
    changes only the embedding-table size), passages of --passage_len tokens, shards written;
  * search: ``index.host_search.HostShardSearcher`` (the refresh's per-host exact search) over
    N random passages x d=1024 stored as bfloat16 and float16, top-(K+1);
  * a dense float32 matmul, as this CPU's attainable FLOP/s.
Then prints the per-host memory of the 18M- and 43M-passage corpora on a v4-32 (4 hosts x 4
chips) and the projected refresh time there; every assumption is printed with the figures.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402

# TPU v4: bf16 peak per chip and HBM bandwidth per chip (public figures).
V4_PEAK_FLOPS = 275e12
V4_HBM_BYTES_PER_S = 1.2e12
V4_32_CHIPS, V4_32_HOSTS = 16, 4
# XLA TPU computes a float32 Precision.HIGHEST dot as 6 bf16 MXU passes.
HIGHEST_PASSES = 6
CORPORA = {"English w100 (18M)": 18_000_000, "multilingual w100 (43M)": 43_000_000}


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--n", type=int, default=1_000_000, help="corpus rows for the search")
  p.add_argument("--dim", type=int, default=1024)
  p.add_argument("--num_queries", type=int, default=256)
  p.add_argument("--k", type=int, default=101, help="K + 1 (TrainFeed.k = 100)")
  p.add_argument("--chunk_rows", type=int, default=16384)
  p.add_argument("--passage_len", type=int, default=200)
  p.add_argument("--encode_passages", type=int, default=128, help="passages per encode run")
  p.add_argument("--encode_batch", type=int, default=32)
  p.add_argument("--vocab_size", type=int, default=32128)
  p.add_argument("--questions", type=int, default=64_000,
                 help="questions per refresh (mlqa_pt.gin: 64 per step x 1000 steps)")
  p.add_argument("--mfu", type=float, default=0.4,
                 help="assumed model FLOP utilisation of the v4-32 encoding")
  p.add_argument("--search_efficiency", type=float, default=None,
                 help="fraction of peak the v4 search reaches (default: as measured on this "
                      "CPU relative to its dense matmul)")
  return p.parse_args(argv)


def _median_seconds(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return sorted(times)[len(times) // 2]


# -- FLOP counts ----------------------------------------------------------------------------


def lower_encoder_flops_per_passage(cfg, layers: int, length: int) -> float:
  """Forward FLOPs of ``layers`` mT5 encoder layers on one passage of ``length`` tokens, plus
  the retrieval head's d -> d projection: 2 x multiply-adds of the attention projections
  (4 d x h dkv), the gated FFN (3 d x dff) and the attention itself (QK^T and AV)."""
  inner = cfg.num_heads * cfg.d_kv
  per_token = 2 * (4 * cfg.d_model * inner + 3 * cfg.d_model * cfg.d_ff) + 4 * length * inner
  return layers * length * per_token + 2 * cfg.d_model * cfg.d_model


def search_flops(num_queries: int, num_rows: int, dim: int) -> float:
  return 2.0 * num_queries * num_rows * dim


# -- measurements ---------------------------------------------------------------------------


def measure_matmul_flops() -> float:
  """This CPU's attainable float32 FLOP/s (jitted [1024, 1024] x [1024, 8192], HIGHEST)."""
  a = jnp.ones((1024, 1024), jnp.float32)
  b = jnp.ones((1024, 8192), jnp.float32)
  f = jax.jit(lambda x, y: jnp.dot(x, y, precision=jax.lax.Precision.HIGHEST))
  f(a, b).block_until_ready()
  sec = _median_seconds(lambda: f(a, b).block_until_ready(), 5)
  return 2.0 * 1024 * 1024 * 8192 / sec


def measure_encode(preset: str, args) -> tuple[float, float]:
  """(passages/s, lower-encoder FLOP/s) of the refresh's encoding of --encode_passages."""
  from jax.sharding import Mesh  # pylint: disable=g-import-not-at-top

  from clqa_jax.index import encode as encode_lib  # pylint: disable=g-import-not-at-top
  from clqa_jax.index import model_encoders  # pylint: disable=g-import-not-at-top
  from clqa_jax.models import MT5Config, UnifiedConfig  # pylint: disable=g-import-not-at-top
  from clqa_jax.models.model_api import UnifiedModel  # pylint: disable=g-import-not-at-top

  cfg = MT5Config.preset(preset, vocab_size=min(args.vocab_size,
                                                MT5Config.preset(preset).vocab_size),
                         dropout_rate=0.0)
  model = UnifiedModel.from_config(UnifiedConfig(cfg))
  q = jnp.zeros((1, 8), jnp.int32)
  params = model.module.init(jax.random.PRNGKey(0), q, jnp.zeros((1, 1, 8), jnp.int32),
                             q)["params"]
  rng = np.random.default_rng(0)
  n, length = args.encode_passages, args.passage_len
  tokens = rng.integers(2, cfg.vocab_size, size=(n, length)).astype(np.int32)
  mesh = Mesh(np.asarray(jax.local_devices()), ("data",))
  fn = model_encoders.passage_encode_fn(model)

  def run(count: int, directory: str) -> None:
    encode_lib.encode_corpus(fn, [(np.arange(count), tokens[:count])], directory,
                             params=params, fingerprint=preset,
                             global_batch_size=args.encode_batch, mesh=mesh, dtype="bfloat16",
                             rows_per_shard=max(count, 1), progress=False)

  with tempfile.TemporaryDirectory() as tmp:
    run(args.encode_batch, os.path.join(tmp, "warm"))  # compile
    t = time.perf_counter()
    run(n, os.path.join(tmp, "timed"))
    sec = time.perf_counter() - t
  layers = UnifiedConfig(cfg).resolved_retriever_layer
  flops = n * lower_encoder_flops_per_passage(cfg, layers, length)
  return n / sec, flops / sec


def random_corpus(n: int, dim: int, dtype, seed: int = 0) -> np.ndarray:
  """Unit-norm random rows [n, dim] in ``dtype``, generated by chunks (no float32 copy)."""
  rng = np.random.default_rng(seed)
  out = np.empty((n, dim), dtype)
  for lo in range(0, n, 65536):
    block = rng.standard_normal((min(65536, n - lo), dim), np.float32)
    out[lo:lo + block.shape[0]] = block / np.linalg.norm(block, axis=1, keepdims=True)
  return out


def measure_search(corpus: np.ndarray, args) -> float:
  """Queries/s of the per-host exact search over ``corpus`` (top --k)."""
  from clqa_jax.index import host_search  # pylint: disable=g-import-not-at-top

  searcher = host_search.HostShardSearcher(corpus, np.arange(corpus.shape[0]),
                                           chunk_rows=args.chunk_rows)
  queries = np.random.default_rng(1).standard_normal((args.num_queries, args.dim), np.float32)
  searcher.search(queries[:1], args.k)  # compiles; a full pass too (one padded query batch)
  sec = _median_seconds(lambda: searcher.search(queries, args.k), 1)
  return args.num_queries / sec


# -- report ---------------------------------------------------------------------------------


def project(args, cpu_matmul: float, search_qps: float, encode: dict) -> None:
  from clqa_jax.models import MT5Config  # pylint: disable=g-import-not-at-top

  d = args.dim
  bytes_per_row = 2 * d
  print("\nProjection to a v4-32 (4 hosts x 4 chips; 275 TFLOP/s bf16 and 1.2 TB/s HBM per "
        "chip):")
  print("  per-host memory of the corpus embeddings (bf16, d=1024, 1/4 of the rows per host):")
  for name, n in CORPORA.items():
    total = n * bytes_per_row
    print(f"    {name:<24} all {total / 1e9:6.1f} GB -> per host {total / V4_32_HOSTS / 1e9:5.1f}"
          f" GB ({total / V4_32_HOSTS / 2**30:5.1f} GiB), per chip "
          f"{total / V4_32_CHIPS / 2**30:4.1f} GiB of 32 GiB HBM")

  cpu_search_flops = search_qps * search_flops(1, args.n, d)
  efficiency = (args.search_efficiency if args.search_efficiency is not None
                else min(1.0, cpu_search_flops / cpu_matmul))
  large = MT5Config.preset("large")
  layers = large.num_encoder_layers // 2
  per_passage = lower_encoder_flops_per_passage(large, layers, args.passage_len)
  encode_rate = V4_32_CHIPS * V4_PEAK_FLOPS * args.mfu
  search_rate = V4_32_CHIPS * V4_PEAK_FLOPS / HIGHEST_PASSES * efficiency
  query_batches = -(-args.questions // 256)  # HostShardSearcher's query_batch_size
  print(f"  assumptions: encoding = mT5-large lower encoder ({layers} of "
        f"{large.num_encoder_layers} layers, d={large.d_model}, dff={large.d_ff}), "
        f"{args.passage_len} tokens: {per_passage / 1e9:.1f} GFLOP/passage at MFU "
        f"{args.mfu:.0%} of 16 x 275 TFLOP/s;")
  print(f"    search = {args.questions} questions (--questions) x N x d=1024 x 2 FLOP, float32 "
        f"HIGHEST dot = {HIGHEST_PASSES} bf16 passes, at the efficiency measured here "
        f"({efficiency:.0%}: search {cpu_search_flops / 1e9:.1f} GFLOP/s vs dense matmul "
        f"{cpu_matmul / 1e9:.1f} GFLOP/s on this CPU); at least one HBM read of each chip's "
        f"rows per 256-query batch; top-k and the host all-gather not counted;")
  print("    question encoding, shard writes and compilation not counted.")
  for name, n in CORPORA.items():
    t_enc = n * per_passage / encode_rate
    t_compute = search_flops(args.questions, n, d) / search_rate
    t_memory = query_batches * (n * bytes_per_row / V4_32_CHIPS) / V4_HBM_BYTES_PER_S
    t_search = max(t_compute, t_memory)
    print(f"    {name:<24} encode {t_enc / 60:6.1f} min + search {t_search / 60:5.1f} min "
          f"(compute {t_compute:6.0f}s, HBM {t_memory:5.0f}s) = {(t_enc + t_search) / 60:6.1f} "
          f"min per refresh")
  print("  measured here, for scale: " + ", ".join(
      f"{k} {v[0]:.1f} psg/s ({v[1] / 1e9:.1f} GFLOP/s)" for k, v in encode.items()))


def main(argv=None) -> int:
  args = parse_args(argv)
  t0 = time.perf_counter()
  print(f"machine: {os.cpu_count()} cores, {jax.device_count()} JAX CPU device(s), load "
        f"average {os.getloadavg()} (shared: other jobs may be running)", flush=True)
  cpu_matmul = measure_matmul_flops()
  print(f"dense float32 matmul: {cpu_matmul / 1e9:.1f} GFLOP/s", flush=True)

  encode = {}
  for preset in ("tiny", "small"):
    encode[preset] = measure_encode(preset, args)
    print(f"encode {preset:<5} (lower encoder, {args.passage_len} tokens, batch "
          f"{args.encode_batch}): {encode[preset][0]:8.1f} passages/s "
          f"({encode[preset][1] / 1e9:.1f} GFLOP/s)", flush=True)

  qps = {}
  for name, dtype in (("bfloat16", ml_dtypes.bfloat16), ("float16", np.float16)):
    corpus = random_corpus(args.n, args.dim, dtype)
    qps[name] = measure_search(corpus, args)
    del corpus
    gflops = qps[name] * search_flops(1, args.n, args.dim) / 1e9
    print(f"search {name}: N={args.n} x d={args.dim} ({args.n * args.dim * 2 / 2**30:.2f} GiB), "
          f"top-{args.k}: {qps[name]:8.1f} queries/s ({gflops:.1f} GFLOP/s)", flush=True)

  project(args, cpu_matmul, qps["bfloat16"], encode)
  print(f"\ntotal {time.perf_counter() - t0:.0f}s; load average at the end {os.getloadavg()}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
