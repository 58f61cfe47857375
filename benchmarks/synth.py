"""Throughput of the synthetic-data Beam pipelines (FnApiRunner, in process) on generated corpora.

  .venv/bin/python benchmarks/synth.py [--sizes 1000,3000,10000] [--runner FnApiRunner]

For each target size (articles over all 8 languages) a corpus is generated, then the passages,
anchors and parallel stages run from scratch. Prints passages/s, mined pairs/s, and how the time
grows with the corpus against linear growth (time ratio / article ratio; 1.0 = linear, below 1.0
means the fixed start-up cost of a pipeline is still being amortised).
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

from clqa_jax.miniwiki import generate
from clqa_jax.miniwiki import kb
from clqa_jax.synth import config as config_lib
from clqa_jax.synth import stages

# Articles per entity: English always, each of the 7 other languages for about 3 in 4 entities.
_ARTICLES_PER_ENTITY = 1 + 7 * 0.75


def run_size(target_articles: int, root: str, runner: str) -> dict[str, float]:
  synthetic = max(0, round(target_articles / _ARTICLES_PER_ENTITY) - len(kb.REAL_ENTITIES))
  corpus = os.path.join(root, f"corpus_{target_articles}")
  counts = generate.generate_corpus(corpus, synthetic)
  articles = sum(v for k, v in counts.items() if k.startswith("articles."))
  cfg = config_lib.SynthConfig(output_dir=os.path.join(root, f"out_{target_articles}"),
                               corpus_dir=corpus, runner=runner)
  row = {"articles": articles}
  for stage in ("passages", "anchors", "parallel"):
    t0 = time.perf_counter()
    m = stages.RUNNERS[stage](cfg)
    row[f"{stage}_s"] = time.perf_counter() - t0
    if stage == "passages":
      row["passages"] = sum(m["counts"]["passages"].values())
    if stage == "parallel":
      row["pairs"] = sum(m["counts"]["pairs"].values())
  return row


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--sizes", default="1000,3000,10000")
  parser.add_argument("--runner", default="FnApiRunner")
  args = parser.parse_args()
  logging.getLogger("apache_beam").setLevel(logging.ERROR)
  sizes = [int(s) for s in args.sizes.split(",")]
  rows = []
  with tempfile.TemporaryDirectory() as root:
    for n in sizes:
      rows.append(run_size(n, root, args.runner))
      r = rows[-1]
      print(f"{r['articles']:>6} articles: passages {r['passages']:>6} in {r['passages_s']:6.1f}s "
            f"= {r['passages'] / r['passages_s']:8.1f} passages/s | anchors {r['anchors_s']:6.1f}s | "
            f"mined {r['pairs']:>6} pairs in {r['parallel_s']:6.1f}s = {r['pairs'] / r['parallel_s']:8.1f} pairs/s",
            flush=True)
  base = rows[0]
  print(f"\ngrowth against the {base['articles']}-article run (time ratio / article ratio; 1.0 = linear):")
  for r in rows[1:]:
    scale = r["articles"] / base["articles"]
    parts = []
    for stage in ("passages", "anchors", "parallel"):
      ratio = r[f"{stage}_s"] / base[f"{stage}_s"]
      parts.append(f"{stage} x{ratio:.2f} (vs linear {ratio / scale:.2f})")
    print(f"  {r['articles']} articles (x{scale:.1f}): " + ", ".join(parts))
  last = rows[-1]
  if len(rows) > 1:
    # Marginal throughput: the extra work over the extra time, free of the fixed start-up cost.
    dp = (last["passages"] - base["passages"]) / (last["passages_s"] - base["passages_s"])
    dq = (last["pairs"] - base["pairs"]) / (last["parallel_s"] - base["parallel_s"])
    print(f"marginal throughput {base['articles']}->{last['articles']} articles: "
          f"{dp:.1f} passages/s, {dq:.1f} mined pairs/s")


if __name__ == "__main__":
  main()
