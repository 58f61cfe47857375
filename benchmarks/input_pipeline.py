"""Input-pipeline throughput: assembled FiD batches/s at K=100 (host side of a train step).

  .venv/bin/python benchmarks/input_pipeline.py [--passages 50000] [--questions 20000]
      [--batch_size 64] [--k 100] [--batches 50] [--step_steps 5]

Builds, in a temporary data root, a generated passage corpus (DPR TSV), a small SentencePiece
vocabulary, the PassageStore, stage-2 synthetic question shards for 7 languages and a
RetrievalStore with top-(K+1) results per question; then measures, in one run:
  1. PassageStore build rate (passages/s, tokenisation included);
  2. question batches/s from the SeqIO mixture (get_question_dataset);
  3. FiD assembly batches/s from ready question batches (stage 2: RetrievalStore lookups;
     stage 1: teacher pids);
  4. end-to-end batches/s (SeqIO mixture -> FiD features [B, K, 200]);
5. the stage-2 (mlqa) train step's batches/s at the tiny config on the same features
   (``train_step_batches_per_second``), and the pipeline/step ratio.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
import tempfile
import time

import numpy as np

LANGS = ("ar", "bn", "fi", "ja", "ko", "ru", "te")
_WORDS = {
    "en": "the city river capital country music poet mountain island history war science king".split(),
    "ar": "مدينة نهر عاصمة بلد تاريخ جبل شاعر ملك".split(),
    "bn": "শহর নদী রাজধানী দেশ ইতিহাস কবি রাজা".split(),
    "fi": "kaupunki joki pääkaupunki maa historia runoilija vuori kuningas".split(),
    "ja": "都市 川 首都 国 歴史 山 詩人 王".split(),
    "ko": "도시 강 수도 나라 역사 산 시인 왕".split(),
    "ru": "город река столица страна история гора поэт король".split(),
    "te": "నగరం నది రాజధాని దేశం చరిత్ర కవి రాజు".split(),
}


def _sentence(rng: random.Random, lang: str, n: int) -> str:
  return " ".join(rng.choice(_WORDS[lang]) for _ in range(n))


def make_data(root: str, num_passages: int, num_questions: int, k: int, seed: int = 0) -> dict:
  """Corpus TSV, vocabulary, stage-2 shards (all 7 languages) under ``root``."""
  from clqa_jax.data import spm_train

  rng = random.Random(seed)
  os.makedirs(f"{root}/passages", exist_ok=True)
  corpus = f"{root}/passages/psgs_w100.tsv"
  with open(corpus, "w", encoding="utf-8") as f:
    f.write("id\ttext\ttitle\n")
    for i in range(1, num_passages + 1):
      lang = "en" if i % 3 else rng.choice(LANGS)
      f.write(f"{i}\t{_sentence(rng, lang, 100)}\t{_sentence(rng, lang, 2)}\n")
  text = f"{root}/vocab_text.txt"
  with open(text, "w", encoding="utf-8") as f:
    for lang in _WORDS:
      for _ in range(300):
        f.write(_sentence(rng, lang, 12) + "\n")
  vocab = spm_train.train_sentencepiece([text], 1000, f"{root}/vocab/spm.model", hard_vocab_limit=False)
  os.makedirs(f"{root}/stage2", exist_ok=True)
  per_lang = num_questions // len(LANGS)
  for lang in LANGS:
    with open(f"{root}/stage2/xor_retrieve.{lang}.jsonl-00000-of-00001", "w", encoding="utf-8") as f:
      for n in range(per_lang):
        pid = rng.randint(1, num_passages)
        f.write(json.dumps({"id": f"{lang}-{pid}-{n}", "lang": lang, "question": _sentence(rng, lang, 8) + "?",
                            "answers": [_sentence(rng, "en", 2)], "source_pid": str(pid),
                            "answer_lang": "en", "cloze": "c", "rewrite_backend": "cloze"},
                           ensure_ascii=False) + "\n")
  return {"corpus": corpus, "vocab": vocab, "per_lang": per_lang}


def _compiled_memory_bytes(compiled) -> int | None:
  """XLA's buffer assignment for the compiled step (arguments + outputs + temporaries)."""
  try:
    m = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-except  (not every backend reports it)
    return None
  if m is None:
    return None
  return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
             - m.alias_size_in_bytes)


def train_step_batches_per_second(batch: dict[str, np.ndarray], vocab_size: int,
                                  steps: int = 5, num_microbatches: int = 1,
                                  max_memory_gib: float | None = None) -> float | None:
  """Stage-2 (mlqa) train steps/s at the tiny config on this host's devices, on ``batch``.

  The trainer's pure step (``train_step.make_train_step``: MlqaObjective, AdamW with clipping,
  dropout on), jitted with the state donated as in benchmarks/train_step.py, on the assembled
  FiD features of ``batch`` [B, K, Lp]; the median of ``steps`` timed steps after a warm-up.
  ``vocab_size`` overrides the tiny preset's so that every token id of ``batch`` embeds.
  Returns None (after saying why) when the compiled step would need more than
  ``max_memory_gib``, so that a shared host is not exhausted.
  """
  import jax
  import jax.numpy as jnp

  from clqa_jax.data.fid_batch import FID_FEATURES
  from clqa_jax.losses import objectives
  from clqa_jax.models import MT5Config, UnifiedConfig, UnifiedRetrieverReader
  from clqa_jax.trainer import optimizer as opt_lib
  from clqa_jax.trainer import train_step
  from clqa_jax.trainer.train_state import TrainState

  features = {k: jnp.asarray(batch[k]) for k in FID_FEATURES}
  model = UnifiedRetrieverReader(UnifiedConfig(mt5=MT5Config.preset("tiny", vocab_size=vocab_size)))
  params = jax.jit(model.init)({"params": jax.random.PRNGKey(0)}, features["query_tokens"][:1],
                               features["passage_tokens"][:1, :1],
                               features["decoder_input_tokens"][:1])["params"]
  sched = opt_lib.linear_warmup_decay(5e-5, 1000)
  tx = opt_lib.adamw_with_clipping(sched)
  step = jax.jit(train_step.make_train_step(model=model, objective=objectives.MlqaObjective(),
                                            optimizer=tx, learning_rate_fn=sched,
                                            num_microbatches=num_microbatches),
                 donate_argnums=(0,))
  state = TrainState.create(params, tx, seed=0)
  t0 = time.perf_counter()
  compiled = step.lower(state, features, None).compile()
  memory = _compiled_memory_bytes(compiled)
  print(f"stage-2 train step compiled in {time.perf_counter() - t0:.1f}s (tiny config, vocab "
        f"{vocab_size}, {jax.device_count()} x {jax.devices()[0].device_kind}, "
        f"{memory / 2**30 if memory else float('nan'):.2f} GiB compiled memory)")
  if max_memory_gib is not None and memory and memory > max_memory_gib * 2**30:
    print(f"stage-2 train step: not run, it needs {memory / 2**30:.1f} GiB > --max_step_memory_gib "
          f"{max_memory_gib} (lower --batch_size, or raise the limit on a dedicated host)")
    return None
  state, metrics = compiled(state, features, None)   # warm-up
  jax.block_until_ready(metrics)
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    state, metrics = compiled(state, features, None)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t0)
  if not np.isfinite(float(metrics["loss"])):
    raise FloatingPointError(f"stage-2 train step loss is {float(metrics['loss'])}")
  return 1.0 / float(np.median(times))


def _rate(n: int, seconds: float) -> float:
  return n / seconds if seconds > 0 else float("inf")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--passages", type=int, default=50_000)
  parser.add_argument("--questions", type=int, default=14_000)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--k", type=int, default=100)
  parser.add_argument("--batches", type=int, default=50)
  parser.add_argument("--step_steps", type=int, default=5,
                      help="timed stage-2 train steps (median); 0 skips the step")
  parser.add_argument("--max_step_memory_gib", type=float, default=3.0,
                      help="skip the step when its compiled memory exceeds this; 0: no limit")
  parser.add_argument("--workdir", default=None, help="keep the generated data here")
  args = parser.parse_args(argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  if args.workdir:
    return run(args, args.workdir)
  with tempfile.TemporaryDirectory(prefix="clqa_input_bench_") as root:
    return run(args, root)


def run(args: argparse.Namespace, root: str) -> int:
  t = time.perf_counter()
  data = make_data(root, args.passages, args.questions, args.k)
  print(f"generated {args.passages} passages, {data['per_lang'] * len(LANGS)} questions "
        f"in {time.perf_counter() - t:.1f}s under {root}")
  os.environ["CLQA_DATA_DIR"] = root
  os.environ["CLQA_VOCAB"] = data["vocab"]

  from clqa_jax import tasks
  from clqa_jax.data import fid_batch
  from clqa_jax.data import passage_store
  from clqa_jax.data import pipeline
  from clqa_jax.data import readers
  from clqa_jax.data.retrieval_store import RetrievalStore

  t = time.perf_counter()
  store = passage_store.PassageStore.build(data["corpus"], data["vocab"], f"{root}/store",
                                           progress=False, overwrite=True)
  build_s = time.perf_counter() - t
  print(f"PassageStore build: {len(store)} passages in {build_s:.1f}s = "
        f"{_rate(len(store), build_s):,.0f} passages/s (mean {store.manifest['lengths']['mean']:.0f} tokens)")

  # Retrieval results: K+1 random rows per question (the source row is excluded on write).
  qids, sources = [], []
  for lang in LANGS:
    for r in readers.read_stage2_jsonl(f"{root}/stage2/xor_retrieve.{lang}.jsonl-00000-of-00001"):
      qids.append(r.id)
      sources.append(r.source_pid)
  rng = np.random.default_rng(0)
  rows = rng.integers(0, len(store), size=(len(qids), args.k + 1), dtype=np.int32)
  rs = RetrievalStore(f"{root}/retrieval")
  t = time.perf_counter()
  rs.write(1 + len(rs.versions()), qids, rows, source_rows=store.rows(sources), k=args.k)
  print(f"RetrievalStore write: {len(qids)} x {args.k} in {time.perf_counter() - t:.2f}s")

  name = "clqa.mlqa_pt.xor_retrieve"
  it = pipeline.get_question_dataset(name, "train", args.batch_size, seed=0)
  batches = [next(it) for _ in range(3)]  # warm-up: graph building, file opening
  t = time.perf_counter()
  batches = list(itertools.islice(it, args.batches))
  q_s = time.perf_counter() - t
  print(f"question batches (B={args.batch_size}): {_rate(len(batches), q_s):8.1f} batches/s")

  assembler = fid_batch.FiDBatchAssembler(store, rs, k=args.k)
  assembler(batches[0])
  t = time.perf_counter()
  for b in batches:
    features = assembler(b)
  a_s = time.perf_counter() - t
  print(f"FiD assembly, stage 2 (K={args.k}): {_rate(len(batches), a_s):8.1f} batches/s "
        f"({features['passage_tokens'].nbytes / 2**20:.1f} MiB of passage tokens per batch)")

  teacher = fid_batch.FiDBatchAssembler(store, "teacher_pids", k=args.k)
  pids = np.array([[str(p) for p in row] for row in rng.integers(1, len(store) + 1, size=(args.batch_size, args.k))],
                  dtype=object)
  stage1_batches = [{**b, "teacher_pids": pids, "question_en": b["question"]} for b in batches]
  t = time.perf_counter()
  for b in stage1_batches:
    teacher(b)
  t_s = time.perf_counter() - t
  print(f"FiD assembly, stage 1 teacher pids (K={args.k}): {_rate(len(batches), t_s):8.1f} batches/s")

  t = time.perf_counter()
  n = 0
  for b in itertools.islice(it, args.batches):
    assembler(b)
    n += 1
  e_s = time.perf_counter() - t
  pipeline_rate = _rate(n, e_s)
  print(f"end to end (SeqIO mixture -> FiD [B,K,200]): {pipeline_rate:8.1f} batches/s")

  if args.step_steps <= 0:
    print("stage-2 train step: skipped (--step_steps 0)")
    return 0
  import sentencepiece as spm
  vocab_size = spm.SentencePieceProcessor(model_file=data["vocab"]).get_piece_size()
  step_rate = train_step_batches_per_second(features, vocab_size, steps=args.step_steps,
                                            max_memory_gib=args.max_step_memory_gib or None)
  if step_rate is None:
    return 1
  print(f"stage-2 train step (tiny, B={args.batch_size}, K={args.k}): {step_rate:8.2f} "
        f"batches/s")
  print(f"pipeline {pipeline_rate:.2f} batches/s / step {step_rate:.2f} batches/s = "
        f"{pipeline_rate / step_rate:.2f} (must stay > 1)")
  del tasks
  return 0


if __name__ == "__main__":
  sys.exit(main())
