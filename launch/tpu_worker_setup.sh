#!/usr/bin/env bash
# Prepares one Cloud TPU VM worker: a Python the pins support, .venv with requirements.txt (less
# the parity-test packages), jax[tpu] with its libtpu, and this project. `launch/tpu.sh setup`
# runs it on every worker from the unpacked checkout; it needs only python3 with pip and internet.
#
# Why uv: the TPU VM images (tpu-ubuntu2204-base, v2-alpha-tpuv5*, v2-alpha-tpuv6e) are Ubuntu
# 22.04 with python3.10 only, and the project needs 3.11. uv, pinned from PyPI into the user site
# of that python3, fetches a standalone CPython build into $HOME: no root, no apt, and the same
# interpreter on every worker and image. The apt routes are worse: deadsnakes needs sudo and a
# third-party PPA, apt races the dpkg lock that unattended-upgrades holds on a fresh VM, and
# jammy's own python3.11 is the 3.11.0 release.
#
# Settings (environment): PYTHON_VERSION (3.11.18, the 3.11 that uv 0.13.9 installs).
set -euo pipefail

UV_VERSION=0.13.9
PYTHON_VERSION="${PYTHON_VERSION:-3.11.18}"
# The build jax's [tpu] extra asks for (jax 0.10.2: libtpu==0.0.42.*), exact so workers match;
# the resolver rejects it if requirements.txt moves jax to a release that wants another.
LIBTPU_VERSION=0.0.42.1

cd "$(dirname "${BASH_SOURCE[0]}")/.."
die() { echo "$(hostname): launch/tpu_worker_setup.sh: $*" >&2; exit 1; }

jax_version="$(sed -n 's/^jax==\(.*\)$/\1/p' requirements.txt)"
[[ -n "${jax_version}" ]] || die "requirements.txt pins no jax==VERSION"
python3 -m pip --version >/dev/null 2>&1 || die "python3 has no pip (sudo apt-get install python3-pip)"

# PIP_BREAK_SYSTEM_PACKAGES lets --user installs through on images that mark the system Python
# externally managed (Ubuntu 24.04); older pips ignore it. uv touches nothing outside $HOME.
PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --user --quiet --disable-pip-version-check \
  "uv==${UV_VERSION}"
# `python3 -m uv` finds the user-site binary whether or not ~/.local/bin is on PATH.
uv() { python3 -m uv "$@"; }
# --no-bin: the interpreter serves .venv only; no python3.11 lands on the user's PATH.
uv python install --no-bin "${PYTHON_VERSION}"
uv venv --quiet --managed-python --python "${PYTHON_VERSION}" --seed .venv
# torch/transformers serve only the parity tests; skipping them keeps a CUDA torch off the VM.
grep -vE '^(torch|transformers)==' requirements.txt > requirements-tpu.txt
uv pip install --quiet --python .venv/bin/python -r requirements-tpu.txt \
  "jax[tpu]==${jax_version}" "libtpu==${LIBTPU_VERSION}"
uv pip install --quiet --python .venv/bin/python --no-deps -e .
.venv/bin/clqa --help >/dev/null
echo "$(hostname): clqa-jax ready ($(.venv/bin/python --version))"
