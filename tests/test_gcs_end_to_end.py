"""The pipeline with every path on gs:// (a local GCS emulator), against the same commands on
local paths: `clqa synth`, `clqa train` with checkpoints and a resume, `clqa export`,
`clqa index`, `clqa eval` and `clqa inspect` on a data root in the bucket. Each step runs
locally first, then on the bucket, and the outputs must match (byte-equal files, equal metrics).

The steps run in file order and share one bucket and one local root (module fixtures); a step
whose inputs a failed earlier step should have made fails too.
"""
import contextlib
import hashlib
import io
import json
import os
import re

import jax
import numpy as np
import pytest

from clqa_jax import fileio
from clqa_jax import gin_utils
from clqa_jax.checkpoints import training
from clqa_jax.cli import main as cli_main
from fixtures.integration import mini_data

# The mini experiment's tiny model on the demo's shapes, so compiled programs are shared with
# the other integration tests and between the local and the GCS run (compilation cache).
TRAIN_GIN = "experiments/mini_teacher_en.gin"
# The schedule's length is pinned to the first run's, so that resuming with more steps runs
# the same compiled step (the schedule's constants are part of the program).
TRAIN_BINDINGS = ("BATCH_SIZE = 8", "NUM_PASSAGES = 2", "SAVE_EVERY = 1",
                  "optimizer.linear_warmup_decay.total_steps = 2",
                  "MT5Config.scan_layers = True", "loop.train.log_every_steps = 1",
                  "training.CheckpointConfig.keep = 2", "training.CheckpointConfig.async_save = False")
# Files whose bytes record when or how long (TensorBoard events, orbax's save times, timings).
UNSTABLE = re.compile(r"(^|/)(events\.out\.tfevents\.[^/]*|_CHECKPOINT_METADATA)$")

# Command lines parse gin into the process-wide config (conftest.fresh_gin).
pytestmark = pytest.mark.usefixtures("fresh_gin")


class Roots:
  """The local root and the bucket root every step writes under (same relative layout)."""

  def __init__(self, local: str, bucket: str):
    self.local, self.bucket = local, bucket

  def both(self):
    return (("local", self.local), ("gcs", self.bucket))


@pytest.fixture(scope="module")
def roots(gcs_emulator, tmp_path_factory):
  import gcs_emulator as emu  # pylint: disable=g-import-not-at-top

  old_cache = mini_data.enable_compilation_cache()
  with pytest.MonkeyPatch.context() as mp, emu.clients_on_emulator(
      gcs_emulator, mp, str(tmp_path_factory.mktemp("gcloud-config"))):
    # A gs:// path written with local file calls lands in ./gs:/... (see _clqa).
    mp.chdir(tmp_path_factory.mktemp("cwd"))
    bucket = gcs_emulator.create_bucket()
    yield Roots(str(tmp_path_factory.mktemp("local")), f"gs://{bucket}")
  mini_data.restore_compilation_cache(old_cache)


@pytest.fixture(scope="module")
def data_roots(roots):
  """The mini data root (synth + vocab of this test session) copied under both roots."""
  src = mini_data.data_root()
  for _, root in roots.both():
    for rel in fileio.walk_files(src):
      if rel.split("/")[0] not in ("stores", "tfds"):
        fileio.copy(fileio.join(src, *rel.split("/")), fileio.join(root, "data", *rel.split("/")))
  return roots


def _clqa(*argv: str) -> str:
  """Runs one `clqa` command line in this process (on an empty gin config, as a new process
  would); returns what it printed."""
  out, err = io.StringIO(), io.StringIO()
  with gin_utils.scoped_config(), contextlib.redirect_stdout(out), \
      contextlib.redirect_stderr(err):
    code = cli_main.main(list(argv))
  assert code == 0, (f"clqa {' '.join(argv)} exited {code}:\n{out.getvalue()[-2000:]}\n"
                     f"{err.getvalue()[-3000:]}")
  strays = [os.path.join(d, f) for d, _, files in os.walk("gs:") for f in files]
  assert not strays, f"clqa {argv[0]} wrote gs:// paths to the local disk: {strays}"
  return out.getvalue()


def _relative_text(data: bytes, root: str) -> bytes:
  return data.replace(root.encode(), b"<ROOT>")


# JSON fields that record when or how fast something was written; every other field must be
# equal.
VOLATILE_FIELDS = {"created", "build_seconds", "timings_seconds", "mtime_ns"}


def _comparable(name: str, data: bytes):
  if name.endswith(".png"):
    # A chart's title names its run by path (local or gs://), rendered into the pixels.
    return data[:8]
  if not name.endswith(".json"):
    return data

  def strip(obj):
    if isinstance(obj, dict):
      return {k: strip(v) for k, v in obj.items() if k not in VOLATILE_FIELDS}
    if isinstance(obj, list):
      return [strip(v) for v in obj]
    return obj
  return strip(json.loads(data))


def assert_same_tree(roots: Roots, rel_dir: str, *, skip=UNSTABLE) -> list[str]:
  """The files below ROOT/rel_dir of both roots: the same names, the same bytes (each root's
  own path written as <ROOT>). Returns the compared names."""
  local, remote = (fileio.join(r, *rel_dir.split("/")) for _, r in roots.both())
  names = [n for n in fileio.walk_files(local) if not skip.search(n)]
  assert [n for n in fileio.walk_files(remote) if not skip.search(n)] == names
  assert names, f"nothing written below {rel_dir}"
  for name in names:
    parts = name.split("/")
    a = _relative_text(fileio.read_bytes(fileio.join(local, *parts)), roots.local)
    b = _relative_text(fileio.read_bytes(fileio.join(remote, *parts)), roots.bucket)
    assert _comparable(name, a) == _comparable(name, b), (
        f"{rel_dir}/{name} differs between the local and the GCS run")
  return names


def test_synth_writes_to_the_bucket(roots):
  for _, root in roots.both():
    corpus = fileio.join(root, "corpus")
    _clqa("synth", "generate", "--out", corpus, "--synthetic_entities", "12")
    _clqa("synth", "questions", "--gin_file", "synth/mini.gin", "--out",
          fileio.join(root, "synth"), "--corpus", corpus)
  assert_same_tree(roots, "corpus")
  assert "MANIFEST.json" in fileio.listdir(fileio.join(roots.bucket, "synth", "xor"))
  assert_same_tree(roots, "synth", skip=re.compile(UNSTABLE.pattern + r"|MANIFEST\.json$"))
  manifests = [fileio.read_json(fileio.join(r, "synth", "xor", "MANIFEST.json"))
               for _, r in roots.both()]
  assert all(m["complete"] for m in manifests)
  assert manifests[0]["counts"] == manifests[1]["counts"]


def _train(root: str, steps: int) -> str:
  return _clqa("train", "--gin_file", TRAIN_GIN, "--log_level", "WARNING",
               f"--gin.MODEL_DIR='{fileio.join(root, 'run')}'",
               f"--gin.data_root.path='{fileio.join(root, 'data')}'",
               f"--gin.TRAIN_STEPS={steps}", *(f"--gin.{b.replace(' ', '')}" for b in TRAIN_BINDINGS))


def test_train_then_resume(data_roots):
  roots = data_roots
  for _, root in roots.both():
    assert "completed at step 2" in _train(root, 2)
    assert training.Checkpointer(training.run_checkpoints_dir(
        fileio.join(root, "run"))).all_steps() == [1, 2]
    assert "completed at step 3" in _train(root, 3)   # resumes from step 2
    assert training.Checkpointer(training.run_checkpoints_dir(
        fileio.join(root, "run"))).all_steps() == [2, 3]
  for name in ("config.gin", "model_config.json", "model-info.txt"):
    a, b = (_relative_text(fileio.read_bytes(fileio.join(r, "run", name)), r)
            for _, r in roots.both())
    assert a == b, name
  assert fileio.glob(fileio.join(roots.bucket, "run", "summaries", "events.out.tfevents.*"))


def test_export(data_roots):
  roots = data_roots
  for _, root in roots.both():
    _clqa("export", "--checkpoint_dir", fileio.join(root, "run"), "--out",
          fileio.join(root, "export"))
  # orbax names its data files at random: the params are compared as arrays instead.
  names = assert_same_tree(roots, "export",
                           skip=re.compile(UNSTABLE.pattern + r"|^params/|^manifest\.json$"))
  assert "config.gin" in names
  # config.gin names each root, so its recorded sha256 differs; the rest of the manifest not.
  from clqa_jax.checkpoints import exported  # pylint: disable=g-import-not-at-top
  manifests = []
  for _, r in roots.both():
    manifest = json.loads(_relative_text(fileio.read_bytes(fileio.join(r, "export",
                                                                       "manifest.json")), r))
    gin_sha256 = manifest[exported.CHECKSUMS].pop("config.gin")
    assert gin_sha256 == hashlib.sha256(fileio.read_bytes(fileio.join(r, "export",
                                                                      "config.gin"))).hexdigest()
    manifests.append(_comparable("manifest.json", json.dumps(manifest).encode()))
  assert manifests[0] == manifests[1]
  (_, local_params, *_), (_, remote_params, *_) = (
      exported.load_exported(fileio.join(r, "export")) for _, r in roots.both())
  flat = [jax.tree_util.tree_leaves_with_path(p) for p in (local_params, remote_params)]
  assert [k for k, _ in flat[0]] == [k for k, _ in flat[1]] and flat[0]
  for (key, a), (_, b) in zip(*flat):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=str(key))


def test_index(data_roots):
  roots = data_roots
  for _, root in roots.both():
    _clqa("index", "--export", fileio.join(root, "export"), "--corpus",
          fileio.join(root, "data", "passages", "psgs_w100.tsv"), "--out",
          fileio.join(root, "index"), "--batch_size", "32", "--rows_per_shard", "64",
          "--log_level", "WARNING")
  names = assert_same_tree(roots, "index")
  assert fileio.exists(fileio.join(roots.bucket, "index", "index.json"))
  assert any(n.startswith("embeddings/") for n in names)


def test_eval(data_roots):
  roots = data_roots
  for _, root in roots.both():
    _clqa("eval", "--export", fileio.join(root, "export"), "--index",
          fileio.join(root, "index"), "--data_file",
          fileio.join(root, "data", "xor", "xor_dev_retrieve_eng_span.jsonl"),
          "--out", fileio.join(root, "eval"), "--task", "xor-retrieve", "--top_k", "10",
          "--reader_k", "2", "--max_answer_length", "4", "--langs", "ja", "fi",
          "--log_level", "WARNING")
  metrics = [_comparable("metrics.json", _relative_text(
      fileio.read_bytes(fileio.join(r, "eval", "metrics.json")), r)) for _, r in roots.both()]
  assert metrics[0] == metrics[1] and metrics[0]
  assert_same_tree(roots, "eval")


def test_inspect_a_data_root_in_the_bucket(data_roots):
  roots = data_roots
  printed = []
  for _, root in roots.both():
    text = _clqa("inspect", "clqa.clr_pt", "--max_examples", "20", "--num_samples", "1",
                 f"--gin.data_root.path='{fileio.join(root, 'data')}'")
    printed.append(text.replace(root, "<ROOT>"))
  assert printed[0] == printed[1]
  assert "clqa.clr_pt" in printed[1]
