"""The demo teacher's English queries (miniwiki/teacher_questions.py): every stage-1 record,
plus train-split English questions for the clozes the corpus has one for, never a dev one."""
import dataclasses
import json

from clqa_jax.data import readers
from clqa_jax.data.records import Stage1Record
from clqa_jax.miniwiki import generate
from clqa_jax.miniwiki import kb
from clqa_jax.miniwiki import rewrite
from clqa_jax.miniwiki import teacher_questions
from fixtures.integration import mini_data


def _english_questions(split: str) -> set[str]:
  entities = generate.build_entities(60, 0, kb.LANGS)
  by_key = {e.key: e for e in entities}
  return {generate.question_text(kind, "en", subject)
          for kind, subject, _, _ in generate._questions(entities, by_key,
                                                         generate.build_index(entities))
          if generate.question_split(kind, subject) == split}


def test_teacher_queries_are_the_clozes_plus_train_split_english_questions():
  root = mini_data.data_root()  # prepare_data wrote them
  path = f"{root}/{teacher_questions.OUTPUT}"
  records = list(readers.read_stage1_jsonl(path))
  clozes = [r for r in records if not r.id.endswith(teacher_questions.QUESTION_ID_SUFFIX)]
  questions = [r for r in records if r.id.endswith(teacher_questions.QUESTION_ID_SUFFIX)]
  stage1 = [r for shard in readers.expand_shards(f"{root}/stage1/clr_pt.*.jsonl-*-of-*")
            for r in readers.read_stage1_jsonl(shard)]
  assert clozes == stage1
  assert len(questions) > len(stage1) // 5
  by_id = {r.id: r for r in stage1}
  train, dev = _english_questions("train"), _english_questions("dev")
  for q in questions:
    original = by_id[q.id[:-len(teacher_questions.QUESTION_ID_SUFFIX)]]
    # Only the English query changes: same passages, answers and parallel query.
    assert q.question_en != original.question_en and "_X_" not in q.question_en
    assert (q.question, q.answers, q.source_pid, q.teacher_pids) == (
        original.question, original.answers, original.source_pid, original.teacher_pids)
    assert q.question_en in train and q.question_en not in dev
  # A second call writes the same records again.
  with open(path, "rb") as f:
    before = f.read()
  assert teacher_questions.write_teacher_queries(root) == {"clozes": len(stage1),
                                                           "questions": len(questions)}
  with open(path, "rb") as f:
    assert f.read() == before


def test_a_cloze_without_a_question_gets_no_copy():
  backend = rewrite.MiniwikiBackend()
  record = Stage1Record(id="fi-en_1_0-0", lang="fi", question_en="_X_ is a word.",
                                question="x", answers=("y",), source_pid="en_1_0",
                                teacher_pids=("en_2_0",), teacher_scores=())
  assert list(teacher_questions.with_english_questions([record], backend)) == [record]
  capital = next(text for (lang, text), (kind, _) in backend.questions.items()
                 if lang == "en" and kind == "capital")
  record = dataclasses.replace(record, question_en=capital)
  out = list(teacher_questions.with_english_questions([record], backend))
  assert len(out) == 2 and out[1].question_en.startswith("What is the capital of ")
  assert json.dumps(out[1].id).endswith('-question"')
