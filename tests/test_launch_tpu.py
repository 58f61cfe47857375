"""launch/tpu.sh: the exact git/gcloud commands each subcommand runs (DRY_RUN=1 prints them), and
the worker setup it runs remotely, executed here on a PATH whose only Python is a python3 that
reports 3.10 (as on the TPU VM images) and that has no python3.11."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tarfile
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TPU_SH = os.path.join(REPO, "launch", "tpu.sh")
GCLOUD_TPU = ["gcloud", "compute", "tpus", "tpu-vm"]
SETUP_REMOTE = ("set -e; rm -rf clqa-jax && tar xzf clqa-jax.tar.gz && rm clqa-jax.tar.gz "
                "&& bash clqa-jax/launch/tpu_worker_setup.sh")


def _tpu_sh(*args, path=None, **env):
  full_env = {"PATH": path or os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
              "DRY_RUN": "1", **env}
  return subprocess.run(["bash", TPU_SH, *args], env=full_env, capture_output=True, text=True,
                        timeout=30)


def _printed_commands(r) -> list[list[str]]:
  assert r.returncode == 0, r.stderr
  return [shlex.split(line) for line in r.stdout.splitlines()]


SETTINGS = dict(TPU_NAME="clqa", ZONE="us-central2-b", PROJECT="proj")
WHERE = ["--zone", "us-central2-b", "--project", "proj"]


def test_create_command():
  [cmd] = _printed_commands(_tpu_sh("create", ACCELERATOR_TYPE="v4-32", SPOT="1", **SETTINGS))
  assert cmd == GCLOUD_TPU + ["create", "clqa", "--accelerator-type", "v4-32", "--version",
                              "tpu-ubuntu2204-base", "--spot"] + WHERE
  [cmd] = _printed_commands(_tpu_sh("create", TPU_NAME="clqa", ZONE="z",
                                    RUNTIME_VERSION="v2-alpha-tpuv5-lite"))
  assert cmd == GCLOUD_TPU + ["create", "clqa", "--accelerator-type", "v4-8", "--version",
                              "v2-alpha-tpuv5-lite", "--zone", "z"]


def test_setup_commands_ship_head_and_run_the_worker_setup_everywhere():
  archive, scp, ssh = _printed_commands(_tpu_sh("setup", **SETTINGS))
  tarball = archive[-2]
  assert re.fullmatch(r".*/clqa-jax-[^/]+/clqa-jax\.tar\.gz", tarball), tarball
  assert archive == ["git", "-C", REPO, "archive", "--format=tar.gz", "--prefix=clqa-jax/", "-o",
                     tarball, "HEAD"]
  assert scp == GCLOUD_TPU + ["scp", tarball, "clqa:clqa-jax.tar.gz", "--worker=all"] + WHERE
  assert ssh == GCLOUD_TPU + ["ssh", "clqa", "--worker=all", "--command", SETUP_REMOTE] + WHERE
  assert not os.path.exists(os.path.dirname(tarball))  # the staging directory is cleaned up

  *_, ssh = _printed_commands(_tpu_sh("setup", PYTHON_VERSION="3.11.7", REMOTE_DIR="cj",
                                      TPU_NAME="t", ZONE="z"))
  assert ssh[-3] == ("set -e; rm -rf cj && tar xzf clqa-jax.tar.gz && rm clqa-jax.tar.gz "
                     "&& PYTHON_VERSION=3.11.7 bash cj/launch/tpu_worker_setup.sh")


def test_run_logs_stop_delete_commands():
  [run] = _printed_commands(_tpu_sh("run", "--gin_file=experiments/xor_retrieve_clr_pt.gin",
                                    "--gin.MODEL_DIR=gs://b/run", **SETTINGS))
  assert run[:7] == GCLOUD_TPU + ["ssh", "clqa", "--worker=all"] and run[-4:] == WHERE
  assert run[7] == "--command" and run[8].startswith(
      "cd clqa-jax && TF_CPP_MIN_LOG_LEVEL=3 nohup .venv/bin/clqa train "
      "--gin_file=experiments/xor_retrieve_clr_pt.gin --gin.MODEL_DIR=gs://b/run > ~/clqa-train.log")
  [logs] = _printed_commands(_tpu_sh("logs", WORKER="3", **SETTINGS))
  assert logs == GCLOUD_TPU + ["ssh", "clqa", "--worker=3", "--command",
                               "tail -n 200 -F ~/clqa-train.log"] + WHERE
  [stop] = _printed_commands(_tpu_sh("stop", **SETTINGS))
  assert stop[:8] == GCLOUD_TPU + ["ssh", "clqa", "--worker=all", "--command"]
  assert "kill -TERM $(cat ~/clqa-train.log.pid)" in stop[8] and stop[-4:] == WHERE
  [delete] = _printed_commands(_tpu_sh("delete", **SETTINGS))
  assert delete == GCLOUD_TPU + ["delete", "clqa", "--quiet"] + WHERE


def test_dry_run_runs_no_gcloud(tmp_path):
  marker = tmp_path / "gcloud-ran"
  (tmp_path / "gcloud").write_text(f"#!/bin/sh\ntouch {marker}\n")
  (tmp_path / "gcloud").chmod(0o755)
  path = f"{tmp_path}{os.pathsep}{os.environ['PATH']}"
  for sub in ("create", "setup", "run", "logs", "stop", "delete"):
    flags = ["--gin.MODEL_DIR=gs://b/r"] if sub == "run" else []
    r = _tpu_sh(sub, *flags, path=path, **SETTINGS)
    assert r.returncode == 0 and r.stdout.startswith(("gcloud ", "git ")), (sub, r.stderr)
  assert not marker.exists()


def test_help_names_every_subcommand_and_setting():
  r = _tpu_sh("--help")
  assert r.returncode == 0 and r.stdout.startswith("Cloud TPU VM lifecycle")
  for word in ("create", "setup", "run FLAGS", "logs", "stop", "delete", "TPU_NAME", "ZONE",
               "PROJECT", "ACCELERATOR_TYPE", "RUNTIME_VERSION", "SPOT", "REMOTE_DIR",
               "PYTHON_VERSION", "LOG", "WORKER", "DRY_RUN"):
    assert re.search(rf"^\s+{re.escape(word)}\b", r.stdout, re.M), word
  assert "set -euo" not in r.stdout and not r.stdout.lstrip().startswith("#")
  r = _tpu_sh()
  assert r.returncode == 2 and r.stdout == "" and "Usage: launch/tpu.sh COMMAND" in r.stderr


def test_missing_settings_and_model_dir_are_errors():
  r = _tpu_sh("run", "--gin_file=x.gin")
  assert r.returncode == 2 and "set TPU_NAME" in r.stderr
  r = _tpu_sh("run", "--gin_file=x.gin", TPU_NAME="t", ZONE="z")
  assert r.returncode == 2 and "--gin.MODEL_DIR=" in r.stderr
  r = _tpu_sh("frobnicate", TPU_NAME="t", ZONE="z")
  assert r.returncode == 2 and "unknown command" in r.stderr


# --- the remote setup, run here against a stand-in for the image's python3 (3.10) -------------

# Records every call; answers like Ubuntu 22.04's python3 and, for `-m uv`, like uv: `venv` makes
# a .venv whose python is 3.11 and whose clqa runs.
FAKE_PYTHON3 = textwrap.dedent("""\
    #!/bin/bash
    echo "python3 $* [PIP_BREAK_SYSTEM_PACKAGES=${PIP_BREAK_SYSTEM_PACKAGES:-}]" >> "$CALLS"
    case "$*" in
      --version) echo "Python 3.10.12" ;;
      "-m pip --version") [[ -z "$NO_PIP" ]] || exit 1; echo "pip 22.0.2 (python 3.10)" ;;
      "-m pip install "*|"-m uv python install "*|"-m uv pip install "*) ;;
      "-m uv venv "*)
        mkdir -p .venv/bin
        printf '#!/bin/bash\\necho "Python 3.11.18"\\n' > .venv/bin/python
        printf '#!/bin/bash\\necho "clqa $*" >> "$CALLS"\\n' > .venv/bin/clqa
        chmod +x .venv/bin/python .venv/bin/clqa ;;
      *) echo "unexpected: python3 $*" >&2; exit 9 ;;
    esac
    """)
TOOLS = ("bash", "sh", "tar", "gzip", "sed", "grep", "rm", "mkdir", "chmod", "dirname",
         "hostname", "cat", "printf")


def _python310_only_worker(tmp_path, no_pip=False):
  """A worker home holding the shipped tarball, and an environment whose PATH has the tools the
  setup uses, the fake python3, and no other Python."""
  bin_dir, home = tmp_path / "bin", tmp_path / "home"
  bin_dir.mkdir()
  home.mkdir()
  for tool in TOOLS:
    found = shutil.which(tool)
    if found:
      os.symlink(found, bin_dir / tool)
  (bin_dir / "python3").write_text(FAKE_PYTHON3)
  (bin_dir / "python3").chmod(0o755)
  # What `git archive HEAD` ships, taken from the working tree.
  with tarfile.open(home / "clqa-jax.tar.gz", "w:gz") as tar:
    for name in ("launch", "requirements.txt", "pyproject.toml"):
      tar.add(os.path.join(REPO, name), arcname=f"clqa-jax/{name}")
  env = {"PATH": str(bin_dir), "HOME": str(home), "CALLS": str(tmp_path / "calls")}
  if no_pip:
    env["NO_PIP"] = "1"
  return home, env


def _run_remote_setup(tmp_path, no_pip=False):
  *_, ssh = _printed_commands(_tpu_sh("setup", TPU_NAME="t", ZONE="z"))
  remote_command = ssh[ssh.index("--command") + 1]
  home, env = _python310_only_worker(tmp_path, no_pip=no_pip)
  assert subprocess.run(["bash", "-c", "command -v python3.11"], env=env).returncode != 0
  r = subprocess.run(["bash", "-c", remote_command], cwd=home, env=env, capture_output=True,
                     text=True, timeout=30)
  calls = (tmp_path / "calls").read_text().splitlines() if (tmp_path / "calls").exists() else []
  return r, home / "clqa-jax", calls


def test_remote_setup_installs_python_311_with_uv_on_a_python310_image(tmp_path):
  r, checkout, calls = _run_remote_setup(tmp_path)
  assert r.returncode == 0, r.stderr
  assert r.stdout.endswith("clqa-jax ready (Python 3.11.18)\n"), r.stdout
  assert [c.rsplit(" [", 1)[0] for c in calls] == [
      "python3 -m pip --version",
      "python3 -m pip install --user --quiet --disable-pip-version-check uv==0.13.9",
      "python3 -m uv python install --no-bin 3.11.18",
      "python3 -m uv venv --quiet --managed-python --python 3.11.18 --seed .venv",
      "python3 -m uv pip install --quiet --python .venv/bin/python -r requirements-tpu.txt "
      "jax[tpu]==0.10.2 libtpu==0.0.42.1",
      "python3 -m uv pip install --quiet --python .venv/bin/python --no-deps -e .",
      "clqa --help",
  ]
  assert calls[1].endswith("[PIP_BREAK_SYSTEM_PACKAGES=1]")
  requirements = (checkout / "requirements.txt").read_text().splitlines()
  tpu_requirements = (checkout / "requirements-tpu.txt").read_text().splitlines()
  assert tpu_requirements == [l for l in requirements
                              if not l.startswith(("torch==", "transformers=="))]
  assert "jax==0.10.2" in tpu_requirements and len(tpu_requirements) < len(requirements)
  assert not (checkout.parent / "clqa-jax.tar.gz").exists()


def test_remote_setup_without_pip_says_what_to_install(tmp_path):
  r, _, calls = _run_remote_setup(tmp_path, no_pip=True)
  assert r.returncode == 1 and "python3 has no pip (sudo apt-get install python3-pip)" in r.stderr
  assert [c.rsplit(" [", 1)[0] for c in calls] == ["python3 -m pip --version"]

