"""Stage-2 (mlqa) train step: our unified formulation (both query encodings) vs the official
single-sequence one.

    python benchmarks/train_step.py                      # small config, K in {8, 32}
    python benchmarks/train_step.py --d_model 512 --layers 8 --passage_length 200 --k 8 32

Ours runs the lower encoder half once per passage and joins [q; p] above layer R. With
``UnifiedConfig.query_encoding='per_pair'`` (the default, as the official code) the query's
lower half runs once per pair (one dropout sample per pair), with 'shared' once per question.
The official formulation (CLASS's PyTorch code) sends every (question, passage) pair through
the whole encoder as one [q; p] sequence with the "independent" mask below R, so the query is
re-encoded K times and the lower-half attention spans Lq + Lp. All steps are the same pure
step (MlqaObjective, AdamW + clipping, dropout on); only the model forward differs. They are
first checked to give the same loss (dropout off), then timed.

Printed per K: questions/s, peak memory (XLA's buffer assignment for the compiled step:
arguments + outputs + temporaries, the same figure on any backend), and the ratios to the
official formulation and shared/per_pair. Steps of the formulations alternate in rounds
(median step time), so background load affects all alike.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from clqa_jax.losses import objectives
from clqa_jax.models import MT5Config, UnifiedConfig, UnifiedModel
from clqa_jax.trainer import optimizer as opt_lib
from clqa_jax.trainer import train_step
from clqa_jax.trainer.synthetic_data import synthetic_batch
from clqa_jax.trainer.train_state import TrainState

# The official formulation is the tests' reference implementation.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from official_formulation import OfficialModel  # pylint: disable=wrong-import-position


def _memory_bytes(compiled) -> int | None:
  try:
    m = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-except
    return None
  if m is None:
    return None
  return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
             - m.alias_size_in_bytes)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--k", type=int, nargs="+", default=[8, 32])
  p.add_argument("--batch_size", type=int, default=2)
  p.add_argument("--d_model", type=int, default=128)
  p.add_argument("--layers", type=int, default=4, help="encoder and decoder layers each")
  p.add_argument("--heads", type=int, default=4)
  p.add_argument("--vocab", type=int, default=1024)
  p.add_argument("--query_length", type=int, default=16)
  p.add_argument("--passage_length", type=int, default=64)
  p.add_argument("--target_length", type=int, default=8)
  p.add_argument("--steps", type=int, default=4, help="timed steps per round")
  p.add_argument("--rounds", type=int, default=3, help="alternating rounds per K")
  args = p.parse_args()

  mt5 = MT5Config(vocab_size=args.vocab, d_model=args.d_model, d_kv=args.d_model // args.heads,
                  d_ff=2 * args.d_model, num_heads=args.heads, num_encoder_layers=args.layers,
                  num_decoder_layers=args.layers)
  impls = {"per_pair": UnifiedModel.from_config(UnifiedConfig(mt5=mt5)),
           "shared": UnifiedModel.from_config(UnifiedConfig(mt5=mt5, query_encoding="shared"))}
  impls["official"] = OfficialModel(impls["per_pair"].module)
  model = impls["per_pair"].module
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()} | d_model {args.d_model}, "
        f"{args.layers}+{args.layers} layers, vocab {args.vocab}, B={args.batch_size}, "
        f"Lq/Lp/T = {args.query_length}/{args.passage_length}/{args.target_length}, "
        f"retriever layer {model.config.resolved_retriever_layer}")
  sched = opt_lib.linear_warmup_decay(5e-5, 1000)
  tx = opt_lib.adamw_with_clipping(sched)
  objective = objectives.MlqaObjective()
  rows = []
  for k in args.k:
    batches = [synthetic_batch(s, args.batch_size, k, args.query_length, args.passage_length,
                               args.target_length, args.vocab, stage1=False,
                               pad_last_passage=False)  # the reference has no padding passages
               for s in range(args.steps + 1)]
    params = model.init({"params": jax.random.PRNGKey(0)}, batches[0]["query_tokens"],
                         batches[0]["passage_tokens"], batches[0]["decoder_input_tokens"])["params"]
    # Same loss (dropout off) before timing anything.
    losses = {}
    for name, impl in impls.items():
      losses[name] = float(jax.jit(lambda p, b, impl=impl: objective.loss(
          p, b, model=impl, rng=None, num_questions=args.batch_size,
          enable_dropout=False)[0])(params, batches[0]))
    for name in impls:
      assert abs(losses[name] - losses["official"]) <= 1e-4 * max(1.0, abs(losses[name])), (
          losses)
    compiled, states = {}, {}
    for name, impl in impls.items():
      step = jax.jit(train_step.make_train_step(model=impl, objective=objective, optimizer=tx,
                                                learning_rate_fn=sched),
                     donate_argnums=(0,))
      state = TrainState.create(jax.tree.map(jnp.copy, params), tx, seed=0)
      t0 = time.perf_counter()
      compiled[name] = step.lower(state, batches[0], None).compile()
      compile_s = time.perf_counter() - t0
      state, m = compiled[name](state, batches[0], None)   # warm-up
      jax.block_until_ready(m)
      states[name] = state
      rows.append(dict(k=k, impl=name, mem=_memory_bytes(compiled[name]), compile_s=compile_s,
                       step_s=[]))
    # Alternate the formulations in rounds so that background load affects all alike.
    for _ in range(args.rounds):
      for name in impls:
        row = next(r for r in rows if r["k"] == k and r["impl"] == name)
        for b in batches[1:]:
          t0 = time.perf_counter()
          states[name], m = compiled[name](states[name], b, None)
          jax.block_until_ready(m)
          row["step_s"].append(time.perf_counter() - t0)
    for name in impls:
      row = next(r for r in rows if r["k"] == k and r["impl"] == name)
      row["qps"] = args.batch_size / float(np.median(row["step_s"]))
      print(f"K={k:3d} {name:8s}: {row['qps']:8.2f} questions/s, median step "
            f"{1e3 * np.median(row['step_s']):8.1f} ms over {len(row['step_s'])} steps, peak "
            f"memory {row['mem'] / 2**20 if row['mem'] else float('nan'):8.1f} MiB (compiled), "
            f"compile {row['compile_s']:.1f} s", flush=True)
    print(f"K={k:3d} no-dropout loss: " + ", ".join(f"{n} {v:.6f}" for n, v in losses.items()))

  def row_of(k, name):
    return next(r for r in rows if r["k"] == k and r["impl"] == name)

  print("\nK    impl       q/s  vs official  mem MiB  mem vs official")
  for k in args.k:
    off = row_of(k, "official")
    for name in impls:
      r = row_of(k, name)
      mem_ratio = r["mem"] / off["mem"] if r["mem"] and off["mem"] else float("nan")
      print(f"{k:<4d} {name:9s} {r['qps']:8.2f} {r['qps'] / off['qps']:10.2f}x "
            f"{(r['mem'] or 0) / 2**20:8.1f} {mem_ratio:10.2f}")
    shared, per_pair = row_of(k, "shared"), row_of(k, "per_pair")
    print(f"K={k}: shared/per_pair speed {shared['qps'] / per_pair['qps']:.2f}x")


if __name__ == "__main__":
  main()
