"""Beam plumbing shared by the stages: options, corpus reading, per-language sharded writes,
counts gathered into the manifest, and the resumable stage runner (all files via fileio)."""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from clqa_jax import fileio
from clqa_jax.data import wikipedia
from clqa_jax.synth import beam_io
from clqa_jax.synth import config as config_lib
from clqa_jax.synth import manifest

logger = logging.getLogger(__name__)

# Part of every stage fingerprint: bump when a change of the code changes what a stage writes.
STAGE_VERSION = 2
_COUNTS_PREFIX = "_counts."


def pipeline_options(cfg: config_lib.SynthConfig) -> PipelineOptions:
  return PipelineOptions([f"--runner={cfg.runner}", *cfg.beam_options])


def article_inputs(cfg: config_lib.SynthConfig) -> list[tuple[str, str]]:
  """(lang, file) of every wikiextractor file of the configured languages."""
  out = []
  for lang in cfg.langs:
    out += [(lang, f) for f in wikipedia.article_files(fileio.join(cfg.corpus_dir, "articles", lang))]
  return out


def read_articles(p: beam.Pipeline, cfg: config_lib.SynthConfig) -> beam.PCollection:
  """Articles of all configured languages (files read in parallel, then redistributed)."""
  def read(lang_path):
    lang, path = lang_path
    yield from wikipedia.read_articles(path, lang)
  return (p | "ArticleFiles" >> beam.Create(article_inputs(cfg))
          | "ReadArticles" >> beam.FlatMap(read)
          | "ReshuffleArticles" >> beam.Reshuffle())


def write_by_lang(pcoll: beam.PCollection, staging: str, prefix: str, langs: tuple[str, ...],
                  num_shards: int, label: str) -> None:
  """Writes records to `<staging>/<prefix with {lang}>-SSSSS-of-NNNNN`, one file set per language."""
  index = {l: i for i, l in enumerate(langs)}
  parts = pcoll | f"{label}ByLang" >> beam.Partition(lambda r, n: index[r["lang"]], len(langs))
  for lang, part in zip(langs, parts):
    (part | f"{label}Json.{lang}" >> beam.Map(lambda r: json.dumps(r, ensure_ascii=False))
     | f"{label}Write.{lang}" >> beam_io.WriteLines(fileio.join(staging, prefix.format(lang=lang)),
                                                   num_shards))


def count(pcoll: beam.PCollection, key_fn: Callable[[Any], str], staging: str, name: str) -> None:
  """Counts elements per key into a side file that `run_stage` folds into the manifest."""
  (pcoll | f"CountKey.{name}" >> beam.Map(lambda r: (key_fn(r), 1))
   | f"CountSum.{name}" >> beam.CombinePerKey(sum)
   | f"CountJson.{name}" >> beam.Map(lambda kv: json.dumps({"key": kv[0], "n": kv[1]}, ensure_ascii=False))
   | f"CountWrite.{name}" >> beam_io.WriteLines(fileio.join(staging, _COUNTS_PREFIX + name),
                                                sharded=False))


def _collect_counts(staging: str) -> dict[str, dict[str, int]]:
  counts: dict[str, dict[str, int]] = {}
  for n in fileio.listdir(staging):
    if n.startswith(_COUNTS_PREFIX):
      path = fileio.join(staging, n)
      rows = [json.loads(l) for l in fileio.read_text(path).splitlines() if l.strip()]
      counts[n[len(_COUNTS_PREFIX):]] = {r["key"]: r["n"] for r in sorted(rows, key=lambda r: r["key"])}
      fileio.remove(path)
  return counts


def run_stage(cfg: config_lib.SynthConfig, stage: str, inputs: list[str], stage_config: dict[str, Any],
              build: Callable[[beam.Pipeline, str], None],
              expected: manifest.ExpectedRecords | None = None) -> dict[str, Any]:
  """Runs one stage unless its manifest says it is complete for the same config and inputs.

  `build(pipeline, staging_dir)` adds the stage's transforms; outputs land in the staging
  directory, which is published as `<output_dir>/<stage>` with its manifest only on success:
  not when `expected` records were not made (EmptyStageError).
  """
  final = fileio.join(cfg.output_dir, stage)
  fp = manifest.fingerprint({"stage": stage, "version": STAGE_VERSION, **stage_config}, inputs)
  if manifest.is_complete(final, fp, cfg.overwrite):
    logger.info("synth %s: complete for these inputs and config, skipped (%s)", stage, final)
    return {**manifest.read_manifest(final), "skipped": True}
  t0 = time.time()
  logger.info("synth %s: running on %s -> %s", stage, cfg.runner, final)
  with manifest.publish_stage(final) as staging:
    with beam.Pipeline(options=pipeline_options(cfg)) as p:
      build(p, staging)
    counts = _collect_counts(staging)
    if expected is not None:
      expected.check(stage, counts)
    result = manifest.write_manifest(staging, stage, counts, stage_config, fp,
                                     {"runner": cfg.runner, "seconds": round(time.time() - t0, 3)})
  logger.info("synth %s: done in %.1fs: %s", stage, time.time() - t0, records_done(counts))
  return {**result, "skipped": False}


def records_done(counts: dict[str, dict[str, int]]) -> str:
  """``passages 1234 (en 96, fi 80, ...), articles 60 (...)``: each count's total and its
  split (by language, or by reason for ``dropped``)."""
  parts = []
  for name, by_key in counts.items():
    split = ", ".join(f"{k} {n}" for k, n in by_key.items())
    parts.append(f"{name} {sum(by_key.values())}" + (f" ({split})" if split else ""))
  return ", ".join(parts) or "no records"
