"""``clqa aot`` and multi-host data layout on real TPU topology descriptions (libtpu on CPU).

libtpu is installed by ``make install`` into ``.libtpu/`` (not a dependency of the package);
the checks run in one subprocess that can import it, so this process's JAX stays CPU-only.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from clqa_jax.trainer import aot

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBTPU = os.environ.get("CLQA_LIBTPU_DIR", os.path.join(REPO, ".libtpu"))


@pytest.fixture(scope="module")
def tpu_checks():
  assert os.path.isdir(os.path.join(LIBTPU, "libtpu")), (
      f"libtpu is not installed in {LIBTPU}: run `make libtpu` (make install does)")
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([LIBTPU, REPO, os.path.join(REPO, "tests")]),
             JAX_PLATFORMS="cpu", TPU_ACCELERATOR_TYPE="v4-8", TPU_SKIP_MDS_QUERY="1",
             # Compiling for a topology attaches no TPU; a `clqa aot` running beside the suite
             # holds libtpu's process lockfile, which would otherwise fail these checks.
             ALLOW_MULTIPLE_LIBTPU_LOAD="1")
  env.pop("XLA_FLAGS", None)
  proc = subprocess.run([sys.executable, os.path.join(REPO, "tests", "fixtures", "aot",
                                                      "tpu_checks.py")],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_each_host_feeds_contiguous_rows_on_real_topologies(tpu_checks):
  layouts = tpu_checks["layouts"]
  assert set(layouts) == {f"{t}/model={m}" for t in ("v4-32", "v4-64", "v5e-32", "v5p-32")
                          for m in (1, 2)}
  for name, layout in layouts.items():
    assert layout["hosts"] > 1 and layout["same_devices"], name
    assert layout["ours"], f"{name}: a host's batch rows are not contiguous"
  # The torus order alone splits hosts' rows (what the loader used to reject).
  assert not layouts["v4-32/model=1"]["topology_order"]


@pytest.mark.slow
def test_tiny_run_compiles_for_v4_8(tpu_checks):
  report = tpu_checks["report"]
  assert report["topology"] == "v4-8" and report["num_chips"] == 4
  assert report["mesh"].startswith("mesh(data=4, model=1) on 4 tpu devices")
  assert report["batch_shapes"]["passage_tokens"] == [8, 2, 64]  # mini_common.gin's length
  assert report["batch_shapes"]["query_tokens"] == [8, 32]
  assert report["fits"] and 0 < report["total_bytes"] < report["hbm_bytes"]
  assert report["step_flops_per_chip"] > 0
  # The step's FLOPs cover at least the model's matmuls (4 chips share the step).
  assert report["recompute_ratio"] >= 1.0


@pytest.mark.slow
def test_scanned_layers_compile_and_count_the_same_flops(tpu_checks):
  plain, scanned = tpu_checks["report"], tpu_checks["scanned_report"]
  assert scanned["fits"] and scanned["total_bytes"] > 0
  # The scan runs each layer once per trip: the same matmuls as the unrolled stack, although
  # XLA's own cost analysis sees the loop body once.
  assert scanned["step_flops_per_chip"] == pytest.approx(plain["step_flops_per_chip"])


def test_topology_names():
  assert aot.parse_topology("v4-32") == ("v4", "v4:2x2x4", 16)
  assert aot.parse_topology("v5p-32") == ("v5p", "v5p:2x2x4", 16)
  assert aot.parse_topology("v5e-32") == ("v5e", "v5e:4x8", 32)
  with pytest.raises(ValueError, match="v4-8, v4-16"):
    aot.parse_topology("v4-12")
  with pytest.raises(ValueError, match="generation"):
    aot.parse_topology("tpu32")


def _report(total_gib: float, **kw) -> aot.FitReport:
  fields = dict(topology="v4-32", chip="TPU v4", num_chips=16, mesh="m", rule_set="fsdp",
                batch_size=64, num_microbatches=1, batch_shapes={}, argument_bytes=0,
                output_bytes=0, temp_bytes=int(total_gib * aot.GiB), alias_bytes=0,
                hbm_bytes=aot.CHIPS["v4"].hbm_bytes, step_flops_per_chip=2.75e14,
                xla_flops_per_chip=1e14,
                model_flops_per_step=16 * 2.0e14, peak_flops_per_chip=2.75e14)
  fields.update(kw)
  return aot.FitReport(**fields)


def test_fit_decision_and_derived_figures():
  assert _report(30.0).fits and not _report(31.0).fits
  r = _report(10.0)
  assert r.ideal_step_seconds == pytest.approx(1.0)
  assert r.recompute_ratio == pytest.approx(2.75 / 2.0)
  assert "FITS" in r.format() and json.loads(r.to_json())["fits"]


def test_model_flops_count_the_matmuls_of_a_forward_and_backward():
  from clqa_jax.models import MT5Config, UnifiedConfig
  config = UnifiedConfig(MT5Config.preset("tiny", num_encoder_layers=2, num_decoder_layers=1),
                         retriever_layer=1)
  base = aot.model_flops_per_step(config, 1, 1, 4, 4, 2)
  # Doubling the batch doubles every term.
  assert aot.model_flops_per_step(config, 2, 1, 4, 4, 2) == pytest.approx(2 * base)
  # The LM head alone: 3 x 2 x T x d x V per question.
  m = config.mt5
  head = 3 * 2.0 * 2 * m.d_model * m.vocab_size
  bigger_vocab = UnifiedConfig(m.replace(vocab_size=2 * m.vocab_size), retriever_layer=1)
  assert aot.model_flops_per_step(bigger_vocab, 1, 1, 4, 4, 2) - base == pytest.approx(head)


def test_matmul_flops_count_scan_trips_and_remat_recompute():
  import jax
  import jax.numpy as jnp

  def loss(w, x):
    def layer(h, w_i):
      return jnp.tanh(h @ w_i), None
    h, _ = jax.lax.scan(jax.checkpoint(layer), x, w)
    return jnp.sum(h)

  w, x = jnp.zeros((6, 16, 16)), jnp.zeros((8, 16))
  forward = 6 * 2.0 * 8 * 16 * 16
  assert aot.jaxpr_matmul_flops(jax.make_jaxpr(loss)(w, x)) == forward
  # Backward: the rematerialised forward again plus two matmuls per layer.
  assert aot.jaxpr_matmul_flops(jax.make_jaxpr(jax.grad(loss))(w, x)) == 4 * forward

