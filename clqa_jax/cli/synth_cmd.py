"""`clqa synth STAGE`: the synthetic-supervision pipelines (Apache Beam) and corpus generator.

  clqa synth all --gin_file synth/mini.gin --out /tmp/synth        every stage, in order
  clqa synth passages|anchors|parallel|teacher|qa|questions ...    one stage
  clqa synth linked_paragraphs ...   LEXA topic groups (first paragraphs of linked articles)
  clqa synth translate ...          SynthConfig.translate_input's records with translations of
                                    their translate_fields (dictionary | http | seq2seq backend)
  clqa synth entity_augment ...     the same records with their linked-article titles in another
                                    language (needs linked_paragraphs)
  clqa synth qagen|qa_filter ...     ZusammenQA: English QA pairs -> answer-type filter ->
                                     AUG-QA records (not part of `all`; needs passages)
  clqa synth generate --out DIR --synthetic_entities 1000          grow a corpus for benchmarks
Each stage is skipped when its MANIFEST.json is complete for the same inputs and config.

Model-backed choices (SynthConfig.encoder / retriever = "checkpoint", rewrite_backend =
"seq2seq") read SynthConfig.checkpoint, by default an exported checkpoint directory
(`clqa export`: manifest.json, model_config.json, params/, the SentencePiece model):
  clqa synth parallel --gin_file synth/mini.gin --out /tmp/synth
      --gin.SynthConfig.encoder='"checkpoint"' --gin.SynthConfig.checkpoint='"/ckpt/export"'
Another loader: --gin.SynthConfig.checkpoint_loader=@my_loader (path -> (config, params, vocab)).
"""
from __future__ import annotations

import argparse
import dataclasses
import os

from clqa_jax import gin_utils
from clqa_jax.cli import gin_flags
from clqa_jax.cli import outputs
from clqa_jax.cli.errors import UsageError

_STAGE_CHOICES = ("all", "passages", "anchors", "parallel", "teacher", "qa", "questions",
                  "linked_paragraphs", "translate", "entity_augment", "qagen", "qa_filter",
                  "generate")


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.description = __doc__
  parser.formatter_class = argparse.RawDescriptionHelpFormatter
  parser.add_argument("stage", choices=_STAGE_CHOICES, help="the stage to run, or all of them")
  parser.add_argument("--out", default=None, help="output root (SynthConfig.output_dir)")
  parser.add_argument("--corpus", default=None,
                      help="corpus directory (articles/, langlinks.tsv, xor/); default: the mini corpus")
  parser.add_argument("--runner", default=None, help="Beam runner (default FnApiRunner: in process)")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace complete stage outputs made from other inputs or config")
  parser.add_argument("--synthetic_entities", type=int, default=60, help="generate: synthetic entities")
  parser.add_argument("--seed", type=int, default=0, help="generate: random seed")
  gin_flags.add_gin_arguments(parser)


def run(args: argparse.Namespace) -> int:
  if args.stage == "generate":
    from clqa_jax.miniwiki import generate
    if not args.out:
      raise UsageError("generate needs --out")
    if args.synthetic_entities <= 0:
      raise UsageError(f"--synthetic_entities must be positive, got {args.synthetic_entities}")
    outputs.check_writable("--out", args.out)
    counts = generate.generate_corpus(args.out, args.synthetic_entities, args.seed)
    for k, v in counts.items():
      print(f"{k}\t{v}")
    return 0

  from clqa_jax.synth import config as config_lib
  from clqa_jax.synth import stages
  bindings = list(args.gin_bindings)
  gin_utils.parse_gin(args.gin_file, bindings)
  overrides = {}
  if args.out:
    overrides["output_dir"] = args.out
  if args.corpus:
    overrides["corpus_dir"] = args.corpus
  if args.runner:
    overrides["runner"] = args.runner
  if args.overwrite:
    overrides["overwrite"] = True
  base = config_lib.SynthConfig(output_dir=overrides.get("output_dir") or _gin_output_dir())
  cfg = dataclasses.replace(base, **overrides)
  outputs.check_writable("--out" if args.out else "SynthConfig.output_dir", cfg.output_dir)
  if args.corpus and not os.path.isdir(args.corpus) and "://" not in args.corpus:
    raise UsageError(f"--corpus {args.corpus}: no such directory")
  if args.stage == "all":
    results = stages.run_all(cfg)
  else:
    results = {args.stage: stages.RUNNERS[args.stage](cfg)}
  print(stages.summary(results))
  return 0


def _gin_output_dir() -> str:
  import gin
  try:
    out = gin.query_parameter("SynthConfig.output_dir")
  except ValueError:
    out = ""
  if not out:
    raise UsageError("give --out or bind SynthConfig.output_dir")
  return out
