#!/usr/bin/env bash
# Cloud TPU VM lifecycle for clqa-jax.
#
# Usage: launch/tpu.sh COMMAND [ARGS]
#
#   create   create the TPU VM (ACCELERATOR_TYPE, RUNTIME_VERSION, SPOT)
#   setup    ship this checkout (its git HEAD, committed files only) to every worker and run
#            launch/tpu_worker_setup.sh there: uv (pinned, from PyPI) installs Python 3.11
#            beside the image's python3.10, then REMOTE_DIR/.venv gets requirements.txt (less
#            torch/transformers), jax[tpu] with its libtpu, and clqa-jax
#   run FLAGS...
#            start `clqa train FLAGS...` in the background on every worker (the same program
#            on all hosts; JAX finds its peers); FLAGS must set --gin.MODEL_DIR=gs://...
#   logs     follow the training log of worker WORKER
#   stop     kill the process `run` started, on every worker
#   delete   delete the TPU VM
#
#   export TPU_NAME=clqa-v4-32 ZONE=us-central2-b ACCELERATOR_TYPE=v4-32
#   launch/tpu.sh create && launch/tpu.sh setup
#   launch/tpu.sh run --gin_file=experiments/xor_retrieve_clr_pt.gin \
#                     --gin_file=partitioning/fsdp.gin --gin.MODEL_DIR=gs://my-bucket/clqa/stage1
#
# Environment:
#   TPU_NAME          the TPU VM's name (required)
#   ZONE              its zone (required)
#   PROJECT           Google Cloud project (default: gcloud's configured one)
#   ACCELERATOR_TYPE  create: TPU type and size (v4-8)
#   RUNTIME_VERSION   create: VM image (tpu-ubuntu2204-base; v5e: v2-alpha-tpuv5-lite)
#   SPOT=1            create: spot capacity
#   REMOTE_DIR        checkout directory under each worker's home (clqa-jax)
#   PYTHON_VERSION    setup: the Python uv installs (default: the 3.11 pinned in
#                     launch/tpu_worker_setup.sh)
#   LOG               run/logs/stop: log file under each worker's home (clqa-train.log)
#   WORKER            logs: which worker to follow (0)
#   DRY_RUN=1         print the git and gcloud commands instead of running them
#
# Multi-host runs need MODEL_DIR on shared storage (gs://...), not a local path.
set -euo pipefail

ACCELERATOR_TYPE="${ACCELERATOR_TYPE:-v4-8}"
RUNTIME_VERSION="${RUNTIME_VERSION:-tpu-ubuntu2204-base}"
REMOTE_DIR="${REMOTE_DIR:-clqa-jax}"
LOG="${LOG:-clqa-train.log}"
WORKER="${WORKER:-0}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() { echo "tpu.sh: $*" >&2; exit 2; }

# The header comment above, to stdout for --help and to stderr after a usage error.
usage() {
  local status="${1:-0}"
  local text
  text="$(sed -n '2,/^[^#]/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//')"
  if [[ "${status}" == "0" ]]; then echo "${text}"; else echo "${text}" >&2; fi
  exit "${status}"
}

need_settings() {
  [[ -n "${TPU_NAME:-}" ]] || die "set TPU_NAME (the TPU VM's name), e.g. export TPU_NAME=clqa-v4-8"
  [[ -n "${ZONE:-}" ]] || die "set ZONE (a zone with ${ACCELERATOR_TYPE} capacity), e.g. export ZONE=us-central2-b"
}

# Runs (or with DRY_RUN=1 prints) one command, shell-quoted.
run_cmd() {
  if [[ "${DRY_RUN:-0}" == "1" ]]; then
    printf '%q ' "$@"; echo
  else
    "$@"
  fi
}

gcloud_tpu() {
  local project_flag=()
  [[ -n "${PROJECT:-}" ]] && project_flag=(--project "${PROJECT}")
  run_cmd gcloud compute tpus tpu-vm "$@" --zone "${ZONE}" "${project_flag[@]}"
}

# Runs a shell command on every worker of the TPU VM.
on_all_workers() {
  gcloud_tpu ssh "${TPU_NAME}" --worker=all --command "$1"
}

cmd_create() {
  local extra=()
  [[ "${SPOT:-0}" == "1" ]] && extra+=(--spot)
  gcloud_tpu create "${TPU_NAME}" --accelerator-type "${ACCELERATOR_TYPE}" \
    --version "${RUNTIME_VERSION}" "${extra[@]}"
}

cmd_setup() {
  command -v git >/dev/null || die "git is needed to package the checkout"
  TARBALL="$(mktemp -d -t clqa-jax-XXXXXX)/clqa-jax.tar.gz"
  trap 'rm -rf "$(dirname "${TARBALL}")"' EXIT
  local tarball="${TARBALL}"
  # Committed files only: what runs on the pod is exactly a revision.
  run_cmd git -C "${REPO_ROOT}" archive --format=tar.gz --prefix="${REMOTE_DIR}/" -o "${tarball}" HEAD
  gcloud_tpu scp "${tarball}" "${TPU_NAME}:clqa-jax.tar.gz" --worker=all
  local python_version=""
  [[ -n "${PYTHON_VERSION:-}" ]] && python_version="PYTHON_VERSION=$(printf '%q' "${PYTHON_VERSION}") "
  # The image's python3 (3.10) only installs uv; launch/tpu_worker_setup.sh says why.
  on_all_workers "set -e; rm -rf ${REMOTE_DIR} && tar xzf clqa-jax.tar.gz && rm clqa-jax.tar.gz \
&& ${python_version}bash ${REMOTE_DIR}/launch/tpu_worker_setup.sh"
}

cmd_run() {
  [[ $# -gt 0 ]] || die "give the clqa train flags, e.g. run --gin_file=experiments/xor_retrieve_clr_pt.gin --gin.MODEL_DIR=gs://bucket/run"
  local arg has_model_dir=0
  for arg in "$@"; do
    [[ "${arg}" == *MODEL_DIR* ]] && has_model_dir=1
  done
  [[ "${has_model_dir}" == "1" ]] || die "set the output directory: --gin.MODEL_DIR=gs://bucket/run"
  local quoted
  quoted="$(printf '%q ' "$@")"
  # nohup + background: the job outlives the ssh session; one log per worker.
  on_all_workers "cd ${REMOTE_DIR} && TF_CPP_MIN_LOG_LEVEL=3 nohup .venv/bin/clqa train ${quoted}\
> ~/${LOG} 2>&1 < /dev/null & echo \$! > ~/${LOG}.pid; \
echo \"\$(hostname): started clqa train (pid \$(cat ~/${LOG}.pid)), log ~/${LOG}\""
}

cmd_logs() {
  gcloud_tpu ssh "${TPU_NAME}" --worker="${WORKER}" --command "tail -n 200 -F ~/${LOG}"
}

cmd_stop() {
  # Only the process that `run` started (its pid was recorded next to the log).
  on_all_workers "if [ -f ~/${LOG}.pid ]; then kill -TERM \$(cat ~/${LOG}.pid) 2>/dev/null \
&& echo \"\$(hostname): stopped\"; rm -f ~/${LOG}.pid; else echo \"\$(hostname): nothing running\"; fi"
}

cmd_delete() {
  gcloud_tpu delete "${TPU_NAME}" --quiet
}

main() {
  [[ $# -ge 1 ]] || usage 2
  local sub="$1"; shift
  case "${sub}" in
    -h|--help|help) usage 0 ;;
    create|setup|run|logs|stop|delete) need_settings; "cmd_${sub}" "$@" ;;
    *) echo "tpu.sh: unknown command '${sub}'" >&2; usage 2 ;;
  esac
}

main "$@"
