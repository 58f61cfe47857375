"""Synth stages read and write their files only through clqa_jax.fileio: sharded line sinks,
JSONL sources, stage publishing (no temporary left, no partial output after a failure, nothing
published from an input without records), and the progress each stage logs."""
import dataclasses
import json
import logging
import re

import apache_beam as beam
from apache_beam.testing import util as beam_testing
import pytest

from clqa_jax import fileio
from clqa_jax.synth import beam_io
from clqa_jax.synth import beam_util
from clqa_jax.synth import config as config_lib
from clqa_jax.synth import manifest
from clqa_jax.synth import stages


def _no_temporaries(root):
  left = [f for f in fileio.walk_files(root)
          if any(fileio.is_tmp_name(part) or part.startswith("beam-temp") for part in f.split("/"))]
  assert not left, left


def test_write_lines_writes_every_shard_with_header(tmp_path):
  lines = [f"line {i}" for i in range(20)]
  prefix = str(tmp_path / "out.txt")
  with beam.Pipeline() as p:
    pcoll = p | beam.Create(lines)
    pcoll | "Sharded" >> beam_io.WriteLines(prefix, 7, header="h")
    pcoll | "One" >> beam_io.WriteLines(str(tmp_path / "one.tsv"), sharded=False)
  shards = fileio.glob(prefix + "-*")
  assert [fileio.basename(s) for s in shards] == [f"out.txt-{i:05d}-of-00007" for i in range(7)]
  seen = []
  for i, shard in enumerate(shards):
    text = fileio.read_text(shard).split("\n")
    assert text[0] == "h" and text[-1] == ""
    assert all(beam_io.shard_of(l, 7) == i for l in text[1:-1])
    seen += text[1:-1]
  assert sorted(seen) == sorted(lines)
  assert fileio.read_text(str(tmp_path / "one.tsv")) == "".join(l + "\n" for l in lines)
  _no_temporaries(str(tmp_path))
  with pytest.raises(ValueError, match="unsharded"):
    beam_io.WriteLines(prefix, 2, sharded=False)


def test_read_jsonl_names_file_and_line(tmp_path):
  fileio.atomic_write(str(tmp_path / "a.jsonl-00000-of-00002"), '{"x": 1}\n\n{"x": 2}\n')
  fileio.atomic_write(str(tmp_path / "a.jsonl-00001-of-00002"), '{"x": 3}\n')
  with beam.Pipeline() as p:
    xs = beam_io.read_jsonl(p, str(tmp_path / "a.jsonl-*"), "A") | beam.Map(lambda r: r["x"])
    beam_testing.assert_that(xs, beam_testing.equal_to([1, 2, 3]))
  bad = str(tmp_path / "b.jsonl")
  fileio.atomic_write(bad, '{"x": 1}\n{"x": \n')
  with pytest.raises(ValueError, match=r"b\.jsonl:2: field '<json>'"):
    list(beam_io._jsonl_records(bad))  # pylint: disable=protected-access
  with pytest.raises(FileNotFoundError, match="no files match"):
    beam_io.read_jsonl(beam.Pipeline(), str(tmp_path / "missing-*"), "M")


@pytest.fixture(scope="module")
def passages_run(tmp_path_factory):
  """The passages stage on two languages, with every fileio.atomic_open call recorded."""
  out = str(tmp_path_factory.mktemp("stage_io"))
  written = []
  original = fileio.atomic_open

  def spy(path, *args, **kwargs):
    written.append(fileio.basename(path))
    return original(path, *args, **kwargs)

  mp = pytest.MonkeyPatch()
  mp.setattr(fileio, "atomic_open", spy)
  try:
    cfg = config_lib.SynthConfig(output_dir=out, langs=("en", "fi"), target_langs=("fi",))
    result = stages.run_passages(cfg)
  finally:
    mp.undo()
  return cfg, result, written


def test_stage_outputs_and_manifest_go_through_fileio(passages_run):
  cfg, result, written = passages_run
  stage_dir = fileio.join(cfg.output_dir, "passages")
  assert fileio.listdir(cfg.output_dir) == ["passages"]
  files = fileio.walk_files(stage_dir)
  assert files == sorted(result["files"] + [manifest.MANIFEST])
  assert result["files"] == ["all_w100.tsv", "psgs_w100.tsv"]
  assert set(files) <= set(written)  # every file, the manifest included, written atomically
  assert manifest.read_manifest(stage_dir)["complete"]
  assert set(result["counts"]) == {"articles", "passages"}  # count side files folded in
  _no_temporaries(cfg.output_dir)


def _fail(_):
  raise RuntimeError("stage failed on purpose")


def _failing_build(p, staging):
  lines = p | beam.Create(["a", "b"])
  lines | beam_io.WriteLines(fileio.join(staging, "part"))
  lines | beam.Map(_fail)


def test_failed_stage_leaves_no_partial_output(passages_run):
  cfg, _, _ = passages_run
  stage_dir = fileio.join(cfg.output_dir, "passages")
  before = {f: fileio.read_bytes(fileio.join(stage_dir, f)) for f in fileio.walk_files(stage_dir)}
  replacing = dataclasses.replace(cfg, overwrite=True)
  with pytest.raises(Exception, match="stage failed on purpose"):
    beam_util.run_stage(replacing, "passages", [], {"changed": True}, _failing_build)
  with pytest.raises(Exception, match="stage failed on purpose"):
    beam_util.run_stage(replacing, "fresh", [], {}, _failing_build)
  assert fileio.listdir(cfg.output_dir) == ["passages"]  # no "fresh", no staging directory
  after = {f: fileio.read_bytes(fileio.join(stage_dir, f)) for f in fileio.walk_files(stage_dir)}
  assert after == before
  assert json.loads(before[manifest.MANIFEST])["complete"]
  _no_temporaries(cfg.output_dir)


def test_a_corpus_without_articles_is_an_error_and_publishes_nothing(tmp_path):
  corpus = tmp_path / "corpus"
  for lang in ("en", "fi"):
    (corpus / "articles" / lang).mkdir(parents=True)
  (corpus / "articles" / "fi" / "wiki_00").write_text("\n")   # a file without articles
  cfg = config_lib.SynthConfig(output_dir=str(tmp_path / "out"), corpus_dir=str(corpus),
                               langs=("en", "fi"), target_langs=("fi",))
  with pytest.raises(manifest.EmptyStageError,
                     match=f"^{corpus / 'articles'}: synth passages made no passages"):
    stages.run_passages(cfg)
  assert not fileio.exists(fileio.join(cfg.output_dir, "passages"))
  _no_temporaries(cfg.output_dir)


def test_each_stage_logs_its_start_and_the_records_it_made(tmp_path, caplog):
  cfg = config_lib.SynthConfig(output_dir=str(tmp_path / "out"), langs=("en", "fi"),
                               target_langs=("fi",))
  with caplog.at_level(logging.INFO, logger="clqa_jax.synth"):
    result = stages.run_passages(cfg)
    stages.run_passages(cfg)
  lines = [r.getMessage() for r in caplog.records]
  passages = result["counts"]["passages"]
  assert lines[0].startswith("synth passages: running on FnApiRunner -> ")
  assert re.fullmatch(
      rf"synth passages: done in [0-9.]+s: articles \d+ \(en \d+, fi \d+\), "
      rf"passages {sum(passages.values())} \(en {passages['en']}, fi {passages['fi']}\)",
      lines[1]), lines[1]
  assert lines[2].startswith("synth passages: complete for these inputs and config, skipped")


_NO_NETWORK_STAGE = """
import socket, sys
looked_up = []
_getaddrinfo = socket.getaddrinfo
def getaddrinfo(host, *args, **kwargs):
  if host not in ("localhost", "127.0.0.1", "::1", None):
    looked_up.append(host)
  return _getaddrinfo(host, *args, **kwargs)
socket.getaddrinfo = getaddrinfo
from clqa_jax.synth import config as config_lib, stages
stages.run_passages(config_lib.SynthConfig(output_dir=sys.argv[1], langs=("en", "fi"),
                                           target_langs=("fi",)))
print("LOOKED_UP", sorted(set(looked_up)))
"""


def test_a_stage_runs_in_process_without_the_network(tmp_path):
  # Beam's DirectRunner first downloads its Prism runner binary from GitHub; the default runner
  # must not (a fresh process: Beam remembers a failed download for the rest of a process).
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top

  proc = subprocess.run([sys.executable, "-c", _NO_NETWORK_STAGE, str(tmp_path / "out")],
                        capture_output=True, text=True, timeout=600,
                        cwd=str(__import__("pathlib").Path(__file__).parents[1]))
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "LOOKED_UP []" in proc.stdout, proc.stdout + proc.stderr[-2000:]
