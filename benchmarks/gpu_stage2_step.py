"""Stage-2 (MLQA-PT) training step at mT5-base size: our JAX step vs the official PyTorch one.

    python benchmarks/gpu_stage2_step.py                        # mT5-base, K=100, B=2, both
    python benchmarks/gpu_stage2_step.py --size tiny --k 4 --query_length 8 \
        --passage_length 16 --target_length 4                    # a CPU smoke run

Ours ("jax") is the project's own step, built as benchmarks/train_step.py builds it:
``MlqaObjective``, AdamW + clipping (``trainer.optimizer``), ``train_step.make_train_step``
(dropout on), ``TrainState``, with ``MT5Config.dtype`` activations (parameters float32) and the
remat policy of ``--remat``. The reference ("torch") is the official per-pair formulation in
plain PyTorch (benchmarks/torch_official.py): every [q; p] pair one sequence through the whole
encoder, the official gradient checkpointing, one question per forward/backward, torch AdamW
+ clipping; activations in the same dtype (parameters float32). Both train on the same
synthetic batches (synthetic_batch seeds 0..), already on the device.

Printed per implementation: median step time over --steps timed steps after --warmup steps,
tokens/s, model FLOPs per step (``aot.model_flops_per_step``, the same count for both),
MFU against --peak_tflops, and the peak device memory (jax: ``memory_stats()
['peak_bytes_in_use']``; torch: ``torch.cuda.max_memory_allocated()``). For jax also XLA's
``cost_analysis`` FLOPs of the compiled step (remat recomputation included). With --impl both
each implementation runs in its own process (clean device memory) and the ratios are printed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)

from clqa_jax.models import UnifiedConfig  # pylint: disable=wrong-import-position
from clqa_jax.models.config import MT5Config  # pylint: disable=wrong-import-position
from clqa_jax.trainer import aot  # pylint: disable=wrong-import-position
from clqa_jax.trainer.synthetic_data import synthetic_batch  # pylint: disable=wrong-import-position

FLOPS_SOURCE = ("clqa_jax.trainer.aot.model_flops_per_step: matmuls of forward + backward "
                "(3x forward) of the work the method needs (the lower encoder half once per "
                "query and once per passage, the upper half on the K [q; p] pairs, the FiD "
                "decoder and LM head); the official formulation's re-encoding of the query in "
                "every pair and remat recomputation are not counted")


def _batches(args, vocab_size: int) -> list[dict[str, np.ndarray]]:
  """The synthetic batches both implementations train on (no padding passages: the official
  formulation has none)."""
  return [synthetic_batch(seed, args.batch_size, args.k, args.query_length, args.passage_length,
                          args.target_length, vocab_size, stage1=False, pad_last_passage=False)
          for seed in range(args.num_batches)]


def _mt5_config(args) -> MT5Config:
  return MT5Config.preset(args.size, dtype=args.dtype, remat_policy=args.remat,
                          scan_layers=args.scan_layers)


def _setup(args, c: MT5Config, retriever_layer: int) -> dict:
  """What was run: the model's dimensions and the step's shapes."""
  return dict(
      size=args.size, d_model=c.d_model, d_ff=c.d_ff, num_heads=c.num_heads,
      num_encoder_layers=c.num_encoder_layers, num_decoder_layers=c.num_decoder_layers,
      vocab_size=c.vocab_size, retriever_layer=retriever_layer, batch_size=args.batch_size,
      k=args.k, query_length=args.query_length, passage_length=args.passage_length,
      target_length=args.target_length, dtype=args.dtype)


def _summary(args, config: UnifiedConfig, step_s: list[float]) -> dict:
  """Step time, throughput and MFU of the timed steps."""
  median = float(np.median(step_s))
  length = args.query_length + args.passage_length
  encoder_tokens = args.batch_size * args.k * length
  decoder_tokens = args.batch_size * args.target_length
  flops = aot.model_flops_per_step(config, args.batch_size, args.k, args.query_length,
                                   args.passage_length, args.target_length)
  return dict(
      warmup_steps=args.warmup, step_s=step_s, median_step_s=median,
      encoder_tokens_per_step=encoder_tokens,
      decoder_tokens_per_step=decoder_tokens,
      tokens_per_s=(encoder_tokens + decoder_tokens) / median,
      questions_per_s=args.batch_size / median, model_flops_per_step=flops,
      model_tflops_per_s=flops / median / 1e12, peak_tflops=args.peak_tflops,
      mfu=flops / median / (args.peak_tflops * 1e12), flops_source=FLOPS_SOURCE)


def run_jax(args) -> dict:
  """Our step: compile, warm up, time."""
  import flax.linen as nn
  import jax
  from clqa_jax.losses import objectives
  from clqa_jax.models import UnifiedModel
  from clqa_jax.trainer import optimizer as opt_lib
  from clqa_jax.trainer import train_step
  from clqa_jax.trainer.train_state import TrainState

  c = _mt5_config(args)
  config = UnifiedConfig(mt5=c, retriever_layer=args.retriever_layer,
                         passage_chunk_size=args.passage_chunk_size)
  model = UnifiedModel.from_config(config)
  sched = opt_lib.linear_warmup_decay(5e-5, 1000)
  tx = opt_lib.adamw_with_clipping(sched)
  step = jax.jit(train_step.make_train_step(model=model, objective=objectives.MlqaObjective(),
                                            optimizer=tx, learning_rate_fn=sched),
                 donate_argnums=(0,))
  # The parameters do not depend on the input shapes: initialise on small ones.
  shapes = dict(query_tokens=(1, 4), passage_tokens=(1, 2, 4), decoder_input_tokens=(1, 2))
  def init_state(rng):
    return TrainState.create(nn.unbox(model.get_initial_variables(rng, shapes)["params"]), tx,
                             seed=0)

  # --compile_only lowers on the state's shapes alone (no weights allocated).
  rng = jax.random.PRNGKey(0)
  state = jax.eval_shape(init_state, rng) if args.compile_only else jax.jit(init_state)(rng)
  batches = [jax.device_put(b) for b in _batches(args, c.vocab_size)]
  t0 = time.perf_counter()
  compiled = step.lower(state, batches[0], None).compile()
  compile_s = time.perf_counter() - t0
  xla_flops = None
  try:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    xla_flops = float(cost["flops"]) if cost and "flops" in cost else None
  except Exception as e:  # pylint: disable=broad-except
    print(f"[jax] cost_analysis unavailable: {e!r}", file=sys.stderr)
  compiled_bytes = None
  try:
    m = compiled.memory_analysis()
    compiled_bytes = int(m.argument_size_in_bytes + m.output_size_in_bytes
                         + m.temp_size_in_bytes - m.alias_size_in_bytes)
  except Exception as e:  # pylint: disable=broad-except
    print(f"[jax] memory_analysis unavailable: {e!r}", file=sys.stderr)
  device = jax.devices()[0]
  result = dict(impl="jax", device=f"{device.platform}:{device.device_kind}",
                jax_version=jax.__version__, remat=args.remat, scan_layers=args.scan_layers,
                passage_chunk_size=args.passage_chunk_size, compile_s=compile_s,
                xla_flops_per_step=xla_flops, compiled_memory_bytes=compiled_bytes,
                **_setup(args, c, config.resolved_retriever_layer))
  if args.compile_only:
    return result
  losses, step_s = [], []
  for i in range(args.warmup + args.steps):
    t0 = time.perf_counter()
    state, metrics = compiled(state, batches[i % len(batches)], None)
    jax.block_until_ready(metrics)
    if i >= args.warmup:
      step_s.append(time.perf_counter() - t0)
    losses.append(float(metrics["loss"]))
  stats = device.memory_stats() or {}
  result.update(_summary(args, config, step_s), losses=losses,
                peak_memory_bytes=stats.get("peak_bytes_in_use"))
  return result


def run_torch(args) -> dict:
  """The official formulation in PyTorch: warm up, time."""
  import torch
  sys.path.insert(0, os.path.join(REPO, "benchmarks"))
  import torch_official  # pylint: disable=import-outside-toplevel

  c = _mt5_config(args)
  r = c.num_encoder_layers // 2 if args.retriever_layer is None else args.retriever_layer
  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  torch.backends.cuda.matmul.allow_tf32 = True     # the official --tf32 (float32 parts)
  torch.backends.cudnn.allow_tf32 = True
  torch.manual_seed(0)
  checkpointed = {"official": torch_official.official_checkpointed_layers(r, c.num_encoder_layers),
                  "none": ()}[args.torch_checkpoint]
  official = torch_official.OfficialConfig(
      vocab_size=c.vocab_size, d_model=c.d_model, d_kv=c.d_kv, d_ff=c.d_ff,
      num_heads=c.num_heads, num_encoder_layers=c.num_encoder_layers,
      num_decoder_layers=c.num_decoder_layers, retriever_layer=r,
      relative_attention_num_buckets=c.relative_attention_num_buckets,
      relative_attention_max_distance=c.relative_attention_max_distance,
      dropout_rate=c.dropout_rate, layer_norm_epsilon=c.layer_norm_epsilon)
  with torch.device(device):
    model = torch_official.OfficialClassModel(official, getattr(torch, args.dtype), checkpointed)
  trainer = torch_official.OfficialTrainer(model, peak_learning_rate=5e-5, total_steps=1000,
                                           questions_per_chunk=args.torch_questions_per_chunk)
  batches = [{k: torch.from_numpy(v).to(device) for k, v in b.items()}
             for b in _batches(args, c.vocab_size)]
  # The collator's [q; p] sequences and masks, built once (data preparation, not the step).
  pairs = [torch_official.official_pairs(b["query_tokens"], b["passage_tokens"])
           for b in batches]
  if device.type == "cuda":
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
  losses, step_s = [], []
  for i in range(args.warmup + args.steps):
    j = i % len(batches)
    t0 = time.perf_counter()
    metrics = trainer.step(pairs[j], batches[j])       # returns host floats: synchronised
    if i >= args.warmup:
      step_s.append(time.perf_counter() - t0)
    losses.append(metrics["loss"])
  peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else None
  name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
  result = dict(impl="torch", device=f"{device.type}:{name}", torch_version=torch.__version__,
                torch_checkpoint=args.torch_checkpoint, checkpointed_layers=list(checkpointed),
                torch_questions_per_chunk=args.torch_questions_per_chunk)
  result.update(_setup(args, c, r),
                **_summary(args, UnifiedConfig(mt5=c, retriever_layer=r), step_s), losses=losses,
                peak_memory_bytes=peak)
  return result


def _print_result(res: dict) -> None:
  tag = f"[{res['impl']}]"

  def gib(b):
    return "n/a" if b is None else f"{b / 2**30:.2f} GiB"

  print(f"{tag} device {res['device']} | {res['size']}: d_model {res['d_model']}, "
        f"{res['num_encoder_layers']}+{res['num_decoder_layers']} layers, "
        f"R={res['retriever_layer']} | B={res['batch_size']} K={res['k']} "
        f"Lq/Lp/T={res['query_length']}/{res['passage_length']}/{res['target_length']} | "
        f"{res['dtype']}")
  if "compile_s" in res:
    print(f"{tag} compile {res['compile_s']:.1f} s, remat {res['remat']}, XLA cost_analysis "
          f"FLOPs/step {res['xla_flops_per_step'] or float('nan'):.3e}, compiled buffers "
          f"{gib(res['compiled_memory_bytes'])}")
  if "median_step_s" not in res:
    return
  print(f"{tag} step {1e3 * res['median_step_s']:.1f} ms (median of {len(res['step_s'])} after "
        f"{res['warmup_steps']} warm-up; min {1e3 * min(res['step_s']):.1f}, max "
        f"{1e3 * max(res['step_s']):.1f}) | {res['tokens_per_s']:,.0f} tokens/s "
        f"({res['encoder_tokens_per_step']:,} encoder + {res['decoder_tokens_per_step']:,} "
        f"decoder per step) | {res['questions_per_s']:.2f} questions/s")
  print(f"{tag} model FLOPs/step {res['model_flops_per_step']:.3e} -> "
        f"{res['model_tflops_per_s']:.1f} TFLOP/s, MFU {100 * res['mfu']:.1f}% of "
        f"{res['peak_tflops']:g} | peak memory {gib(res['peak_memory_bytes'])} | losses "
        + " ".join(f"{x:.4f}" for x in res["losses"]), flush=True)


def _run_both(args, argv: list[str]) -> dict:
  """Each implementation in its own process; a failure of one is recorded, not fatal."""
  results = {}
  for impl in ("jax", "torch"):
    with tempfile.TemporaryDirectory() as tmp:
      out = os.path.join(tmp, f"{impl}.json")
      cmd = [sys.executable, os.path.abspath(__file__), *argv, "--impl", impl, "--json", out]
      rc = subprocess.run(cmd, check=False).returncode
      if rc == 0 and os.path.exists(out):
        with open(out, encoding="utf-8") as f:
          results[impl] = json.load(f)
      else:
        results[impl] = {"impl": impl, "error": f"exit status {rc}"}
        print(f"[{impl}] FAILED with exit status {rc}", flush=True)
  ours, ref = results["jax"], results["torch"]
  if "median_step_s" in ours and "median_step_s" in ref:
    results["jax_speedup_over_torch"] = ref["median_step_s"] / ours["median_step_s"]
    print(f"jax vs torch: step time {1e3 * ours['median_step_s']:.1f} vs "
          f"{1e3 * ref['median_step_s']:.1f} ms -> {results['jax_speedup_over_torch']:.2f}x; "
          f"MFU {100 * ours['mfu']:.1f}% vs {100 * ref['mfu']:.1f}%")
    if ours.get("peak_memory_bytes") and ref.get("peak_memory_bytes"):
      results["jax_memory_over_torch"] = ours["peak_memory_bytes"] / ref["peak_memory_bytes"]
      print(f"jax vs torch: peak memory {ours['peak_memory_bytes'] / 2**30:.2f} vs "
            f"{ref['peak_memory_bytes'] / 2**30:.2f} GiB")
  return results


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--impl", choices=("both", "jax", "torch"), default="both")
  p.add_argument("--size", choices=("tiny", "base"), default="base",
                 help="MT5Config preset (tiny for a CPU check)")
  p.add_argument("--batch_size", type=int, default=2, help="questions per step")
  p.add_argument("--k", type=int, default=100, help="passages per question")
  p.add_argument("--query_length", type=int, default=50)
  p.add_argument("--passage_length", type=int, default=200)
  p.add_argument("--target_length", type=int, default=50)
  p.add_argument("--retriever_layer", type=int, default=None,
                 help="R (default num_encoder_layers // 2)")
  p.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16",
                 help="activation dtype of both (parameters are float32)")
  p.add_argument("--steps", type=int, default=5, help="timed steps")
  p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
  p.add_argument("--num_batches", type=int, default=2, help="distinct batches, cycled")
  p.add_argument("--peak_tflops", type=float, default=989.0,
                 help="device peak for MFU (989: H100 SXM bf16 dense)")
  p.add_argument("--remat", default="none", help="jax: MT5Config.remat_policy")
  p.add_argument("--scan_layers", action="store_true", help="jax: MT5Config.scan_layers")
  p.add_argument("--passage_chunk_size", type=int, default=None,
                 help="jax: UnifiedConfig.passage_chunk_size")
  p.add_argument("--compile_only", action="store_true",
                 help="jax: compile and report XLA's FLOPs and buffer sizes, no steps")
  p.add_argument("--torch_checkpoint", choices=("official", "none"), default="official",
                 help="torch: the official gradient checkpointing of encoder blocks, or none")
  p.add_argument("--torch_questions_per_chunk", type=int, default=1,
                 help="torch: questions per forward/backward (official: 1)")
  p.add_argument("--json", default=None, help="write the results to this file")
  argv = sys.argv[1:]
  args = p.parse_args(argv)
  if args.impl == "both":
    passthrough = []
    skip = False
    for a in argv:   # drop --impl/--json: each child gets its own
      if skip:
        skip = False
        continue
      if a in ("--impl", "--json"):
        skip = True
        continue
      if a.startswith(("--impl=", "--json=")):
        continue
      passthrough.append(a)
    results = _run_both(args, passthrough)
    failed = [impl for impl in ("jax", "torch") if "error" in results[impl]]
  else:
    result = run_jax(args) if args.impl == "jax" else run_torch(args)
    _print_result(result)
    results, failed = result, []
  if args.json:
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump(results, f, indent=2)
  if failed:
    sys.exit(1)


if __name__ == "__main__":
  main()
