#!/usr/bin/env bash
# The stage-2 step benchmark on a GPU machine: our JAX step vs the official PyTorch formulation
# (benchmarks/gpu_stage2_step.py, each in its own process), mT5-base, K=100, B=2, bf16.
#
#   bash benchmarks/gpu_run.sh                 # results in $OUT (default benchmarks/out/gpu)
#   SIZE=tiny bash benchmarks/gpu_run.sh       # small shapes: a check of this script on a CPU
#
# .whl/ is not tracked: fill it where pip can reach PyPI with
#   pip download --no-deps --only-binary=:all: -d .whl gin-config==0.5.0
# Pure-python wheels the machine lacks (gin-config) are read from .whl/ and installed into
# $SITE (default /tmp/site). Environment: PYTHON (python3), BATCH_SIZE (2), STEPS (5),
# WARMUP (2), EXTRA_ARGS (more gpu_stage2_step.py flags; default "--passage_chunk_size 10": XLA's
# CPU buffer assignment of our base K=100 B=2 step is ~101 GiB without chunking, with remat
# "none" and "dots_with_no_batch_dims" alike; EXTRA_ARGS="" runs without).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
OUT=${OUT:-benchmarks/out/gpu}
SIZE=${SIZE:-base}
SITE=${SITE:-/tmp/site}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" \
    .whl/*.whl
fi
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-.9}
export TF_CPP_MIN_LOG_LEVEL=3

nvidia-smi -L || echo "nvidia-smi: not available"
"$PYTHON" -c "import jax; print('jax', jax.__version__, jax.devices())"
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

if [ "$SIZE" = tiny ]; then
  SHAPES="--size tiny --k 4 --query_length 8 --passage_length 16 --target_length 4"
else
  SHAPES="--size $SIZE"
fi
# shellcheck disable=SC2086  # SHAPES and EXTRA_ARGS are flag lists
"$PYTHON" benchmarks/gpu_stage2_step.py $SHAPES --batch_size "${BATCH_SIZE:-2}" \
  --warmup "${WARMUP:-2}" --steps "${STEPS:-5}" --json "$OUT/stage2_step.json" \
  ${EXTRA_ARGS---passage_chunk_size 10} 2>&1 | tee "$OUT/stage2_step.log"
echo "results: $OUT/stage2_step.json"
