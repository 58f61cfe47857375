"""English questions for the demo's stand-in teacher (experiments/mini_teacher_en.gin).

The paper's stage-1 teacher, ReAtt, was trained on NQ's natural English questions; it scores
questions as well as the cloze queries stage 1 distils through. A stand-in trained from scratch
on the English clozes alone does not: on the mini corpus it ranks a gold article in the top 5
for 7.4% of the English wording of the dev questions (37.0% with the questions below added to
its training, 150 steps each).

This writes the teacher's training queries in the stage-1 record format: every stage-1 record,
and for each whose English cloze the corpus has a train-split question for, a copy whose
``question_en`` is that English question (id ``<record id>-question``). The questions are the
stage-2 rewrite backend's (`rewrite.MiniwikiBackend`: the corpus's own templates, train split
only), so no dev question is ever a training question.

  <root>/teacher_en/clr_pt.jsonl-00000-of-00001   (task clqa.teacher_en)
"""
from __future__ import annotations

import dataclasses
import json
from typing import Iterable, Iterator

from clqa_jax import fileio
from clqa_jax.data import readers
from clqa_jax.data.records import Stage1Record
from clqa_jax.miniwiki import generate
from clqa_jax.miniwiki import rewrite

OUTPUT = "teacher_en/clr_pt.jsonl-00000-of-00001"
QUESTION_ID_SUFFIX = "-question"


def with_english_questions(records: Iterable[Stage1Record], backend: rewrite.MiniwikiBackend
                           ) -> Iterator[Stage1Record]:
  """Each record, then its copy with the English question of its cloze when the corpus has one."""
  for record in records:
    yield record
    hit = backend.questions.get(("en", record.question_en.strip()))
    if hit is not None:
      yield dataclasses.replace(record, id=record.id + QUESTION_ID_SUFFIX,
                                question_en=generate.question_text(hit[0], "en", hit[1]))


def write_teacher_queries(root: str, backend: rewrite.MiniwikiBackend | None = None
                          ) -> dict[str, int]:
  """Writes ``<root>/teacher_en/...`` from ``<root>/stage1`` (atomically, every call: it is a
  function of stage 1, rewritten in under a second, so it never outlives a changed stage 1).
  Returns {"clozes": records read, "questions": English questions added}."""
  path = fileio.join(root, OUTPUT)
  backend = backend or rewrite.MiniwikiBackend()
  shards = readers.expand_shards(fileio.join(root, "stage1", "clr_pt.*.jsonl-*-of-*"))
  if not shards:
    raise FileNotFoundError(f"no stage-1 records under {fileio.join(root, 'stage1')} (run "
                            "`clqa synth all --gin_file synth/mini.gin` first)")
  counts = {"clozes": 0, "questions": 0}
  with fileio.atomic_open(path, "w") as out:
    for shard in shards:
      for record in with_english_questions(readers.read_stage1_jsonl(shard), backend):
        counts["questions" if record.id.endswith(QUESTION_ID_SUFFIX) else "clozes"] += 1
        out.write(json.dumps(dataclasses.asdict(record), ensure_ascii=False) + "\n")
  return counts
