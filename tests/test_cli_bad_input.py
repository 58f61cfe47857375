"""Bad input to every ``clqa`` subcommand: one line on stderr naming the file, flag or field,
exit status 2, no traceback. Run in-process (``cli.main.main``): every row fails before any
model is built or any data is read past the bad part."""
import hashlib
import json
import os

import gin
import pytest

from clqa_jax.cli import errors as cli_errors
from clqa_jax.cli import main as cli_main


# The bytes put in place of an export's vocab/spm.model.
SWAPPED_VOCAB = b"another SentencePiece model\n"


def _export_with_swapped_vocabulary(directory: str) -> str:
  from clqa_jax.checkpoints import exported
  from fixtures.data.tiny_vocab import tiny_vocab_path
  from fixtures.export import tiny_run

  config = tiny_run.tiny_config()
  exported.write_exported(directory, config, tiny_run.tiny_params(config), tiny_vocab_path())
  with open(os.path.join(directory, exported.VOCAB_FILE), "wb") as f:
    f.write(SWAPPED_VOCAB)
  return directory


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  root = tmp_path_factory.mktemp("bad_input")

  def write(name, text):
    path = root / name
    path.write_text(text, encoding="utf-8")
    return str(path)

  f = {
      "gold": write("gold.jsonl", '{"id": "a", "lang": "ja", "question": "q", "answers": ["x"]}\n'),
      "dup": write("dup.jsonl", '{"id": "a", "lang": "ja", "question": "q", "answers": ["x"]}\n'
                                '{"id": "b", "lang": "ja", "question": "q", "answers": ["y"]}\n'
                                '{"id": "a", "lang": "ko", "question": "q", "answers": ["z"]}\n'),
      "badjson": write("badjson.jsonl", '{"id": "a", "lang": "ja", "question": "q", '
                                        '"answers": ["x"]}\n{"id": "b", oops\n'),
      "noanswers": write("noanswers.jsonl", '{"id": "a", "lang": "ja", "answers": []}\n'),
      "emptyq": write("emptyq.jsonl", '{"id": "a", "question": "  "}\n'),
      "nolangq": write("nolangq.jsonl", '{"id": "j", "question": "日本の首都は？"}\n'
                                        '{"id": "e", "question": "Who wrote it?"}\n'),
      "dupq": write("dupq.jsonl", '{"id": "a", "question": "q1"}\n{"id": "a", "question": "q2"}\n'),
      "mkqa_dotdot": write("mkqa_dotdot.jsonl", json.dumps(
          {"example_id": 1, "queries": {"en": "q", "../x": "q"},
           "answers": {"en": [{"type": "entity", "text": "a"}],
                       "../x": [{"type": "entity", "text": "a"}]}}) + "\n"),
      "mkqa_jp": write("mkqa_jp.jsonl", json.dumps(
          {"example_id": 1, "queries": {"en": "q"},
           "answers": {"en": [{"type": "entity", "text": "a"}],
                       "jp": [{"type": "entity", "text": "a"}]}}) + "\n"),
      "pred": write("pred.json", '{"a": "x"}'),
      "badpred": write("badpred.json", '{"a": '),
      "retrieve_pred": write("rpred.json", '[{"id": "a", "lang": "ja", "ctxs": ["x"]}]'),
      "txt": write("pred.txt", "x\n"),
      "afile": write("afile", "not a directory\n"),
      "badgin": write("bad.gin", "train.steps = = 3\n"),
      "tsv": write("psgs.tsv", "id\ttext\ttitle\n1\tsome text\tT\n"),
      "dir": str(root),
      "missing": str(root / "no_such_file"),
  }
  f["under_file"] = os.path.join(f["afile"], "sub")
  f["model_dir_gin"] = write("model_dir.gin", f"MODEL_DIR = '{root / 'afile' / 'run'}'\n")
  for lang in ("en", "ar", "bn", "fi", "ja", "ko", "ru", "te"):  # synth/mini.gin's langs
    os.makedirs(root / "empty_corpus" / "articles" / lang)
  os.makedirs(root / "empty_corpus" / "xor")
  f["empty_corpus"] = str(root / "empty_corpus")
  from clqa_jax import demo
  os.makedirs(root / "demo_done" / "steps")
  f["demo_done"] = str(root / "demo_done")
  write(os.path.join("demo_done", "steps", "teacher.json"), json.dumps(
      {"settings": demo.step_settings(demo.DemoConfig(out=f["demo_done"]), "teacher")}))
  for name in ("export", "index"):
    os.makedirs(root / name)
    f[name] = str(root / name)
  f["swapped_export"] = _export_with_swapped_vocabulary(str(root / "swapped_export"))
  return f


# (argv with {placeholders}, text the one error line must contain)
CASES = [
    # metrics
    ("metrics xor-full --data_file {missing} --pred_file {pred}", "--data_file"),
    ("metrics xor-full --data_file {gold} --pred_file {missing}", "--pred_file"),
    ("metrics xor-full --data_file {dir} --pred_file {pred}", "is a directory"),
    ("metrics xor-full --data_file {dup} --pred_file {pred}", "dup.jsonl:3: id: duplicate id"),
    ("metrics xor-full --data_file {badjson} --pred_file {pred}", "badjson.jsonl:2"),
    ("metrics xor-full --data_file {noanswers} --pred_file {pred}", "answers: empty"),
    ("metrics xor-full --data_file {gold} --pred_file {pred} --txt_file", "--txt_file"),
    ("metrics xor-full --data_file {gold} --pred_file {badpred}", "badpred.json"),
    ("metrics xor-full --data_file {gold} --pred_file {pred} --out {under_file}", "--out"),
    ("metrics xor-full --data_file {gold} --pred_file {pred} --out {afile}", "--overwrite"),
    ("metrics xor-retrieve --data_file {gold} --pred_file {retrieve_pred} --ks 0", "--ks"),
    ("metrics xor-retrieve --data_file {gold} --pred_file {retrieve_pred} --ks 2 -5", "--ks"),
    ("metrics xor-retrieve --data_file {gold} --pred_file {retrieve_pred} --num_workers 0",
     "--num_workers"),
    ("metrics xor-retrieve --data_file {dup} --pred_file {retrieve_pred}", "duplicate id"),
    ("metrics xor-retrieve --data_file {gold} --pred_file {retrieve_pred} --ks x", "--ks"),
    ("metrics xor-engspan --data_file {gold} --pred_file {missing}", "--pred_file"),
    ("metrics mkqa --data_file {gold} --pred_file {pred} --lang jp", "'jp'"),
    ("metrics mkqa-convert --data_file {gold} --output_dir {dir} --lang jp", "'jp'"),
    ("metrics mkqa-convert --data_file {gold} --output_dir {under_file}", "--output_dir"),
    ("metrics mkqa-convert --data_file {missing} --output_dir {dir}", "--data_file"),
    ("metrics mkqa-convert --data_file {mkqa_dotdot} --output_dir {dir}/m",
     "mkqa_dotdot.jsonl:1: queries: '../x' is not an MKQA language code"),
    ("metrics mkqa-convert --data_file {mkqa_jp} --output_dir {dir}/m",
     "mkqa_jp.jsonl:1: answers: 'jp' is not an MKQA language code"),
    ("metrics mkqa --data_file {mkqa_jp} --pred_file {pred} --lang en",
     "mkqa_jp.jsonl:1: answers: 'jp'"),
    ("metrics xor-full --pred_file {pred}", "--data_file"),
    ("metrics", "METRIC"),
    ("metrics no-such-metric", "no-such-metric"),
    # eval
    ("eval --export {export} --index {index} --data_file {gold} --out {dir} --langs jp", "'jp'"),
    ("eval --export {export} --index {index} --data_file {gold} --out {dir} --top_k 0",
     "--top_k"),
    ("eval --export {export} --index {index} --data_file {gold} --out {dir} --ks 0", "--ks"),
    ("eval --export {export} --index {index} --data_file {gold} --out {dir} --reader_k -1",
     "--reader_k"),
    ("eval --export {export} --index {index} --data_file {gold} --out {dir} --limit 0",
     "--limit"),
    ("eval --export {export} --index {index} --data_file {missing} --out {dir}", "--data_file"),
    ("eval --export {missing} --index {index} --data_file {gold} --out {dir}", "--export"),
    ("eval --export {export} --index {index} --data_file {gold} --out {under_file}", "--out"),
    ("eval --export {export} --index {index} --data_file {gold} --out {dir} --corpus {missing}",
     "--corpus"),
    ("eval --export {export} --index {index} --data_file {gold} --out {dir} --task mkqa "
     "--langs zh", "'zh'"),
    ("eval --export {export} --index {index} --data_file {gold} --out {dir} --search fast",
     "--search"),
    ("eval --index {index} --data_file {gold} --out {dir}", "--export"),
    ("eval --export {swapped_export} --index {index} --data_file {gold} --out {dir}",
     f"swapped_export/vocab/spm.model: sha256 is {hashlib.sha256(SWAPPED_VOCAB).hexdigest()}, "
     "but "),
    ("eval --export {export} --index {index} --data_file {gold} --out {dir} --gin.X",
     "needs a value"),
    # infer
    ("infer --export {export} --index {index} --question", "--question"),
    ("infer --export {export} --index {index} --question {empty}", "--question"),
    ("infer --export {export} --index {index} --question q --lang jp", "'jp'"),
    ("infer --export {export} --index {index} --question q --top_k 0", "--top_k"),
    ("infer --export {export} --index {index} --question q --reader_k 0", "--reader_k"),
    ("infer --export {export} --index {index} --question q --show -1", "--show"),
    ("infer --export {export} --index {index} --question q --batch_size 0", "--batch_size"),
    ("infer --export {export} --index {index} --questions_file {missing}", "--questions_file"),
    ("infer --export {export} --index {index} --questions_file {emptyq}",
     "emptyq.jsonl:1: question: empty"),
    ("infer --export {export} --index {index} --questions_file {dupq}",
     "dupq.jsonl:2: id: duplicate id"),
    ("infer --export {missing} --index {index} --question q", "--export"),
    ("infer --export {export} --index {missing} --question q", "--index"),
    ("infer --export {export} --index {index} --question q --out {under_file}", "--out"),
    ("infer --export {export} --index {index}", "--question"),
    ("infer --export {export} --index {index} --question Who_wrote_Kalevala?",
     "--question: lang: cannot tell the language of 'Who_wrote_Kalevala?': it is in Latin "
     "script, which en, fi, es, de, ... share; give --lang"),
    ("infer --export {export} --index {index} --question 東京都", "Japanese or Chinese"),
    ("infer --export {export} --index {index} --question What_is_Москва?", "mixes scripts"),
    ("infer --export {export} --index {index} --questions_file {nolangq}",
     "nolangq.jsonl: id e: lang: cannot tell the language of 'Who wrote it?'"),
    # index
    ("index --export {export} --corpus {missing} --out {dir}", "--corpus"),
    ("index --export {missing} --corpus {tsv} --out {dir}", "--export"),
    ("index --export {export} --corpus {tsv} --out {under_file}", "--out"),
    ("index --export {export} --corpus {tsv} --out {afile}", "not a directory"),
    ("index --export {export} --corpus {tsv} --out {dir} --batch_size 0", "--batch_size"),
    ("index --export {export} --corpus {tsv} --out {dir} --rows_per_shard 0",
     "--rows_per_shard"),
    ("index --export {export} --corpus {tsv} --out {dir} --passage_store {under_file}",
     "--passage_store"),
    ("index --export {export} --corpus {tsv} --out {dir} --searcher fast", "--searcher"),
    ("index --export {swapped_export} --corpus {tsv} --out {dir}/index_out",
     "swapped_export/manifest.json field 'vocab_sha256' records "),
    # import
    ("import hf_mt5 --src {missing} --out {dir}/imported", "--src"),
    ("import hf_mt5 --src {dir} --out {dir}/imported --retriever_layer 3", "--retriever_layer"),
    ("import class --src {dir} --out {dir}/imported --retriever_layer -1", "--retriever_layer"),
    ("import hf_mt5 --src {dir} --out {under_file}", "--out"),
    ("import hf_mt5 --src {dir} --out {dir}/imported --vocab {missing}", "--vocab"),
    ("import onnx --src {dir} --out {dir}/imported", "onnx"),
    # export
    ("export --checkpoint_dir {missing} --out {dir}/exported", "--checkpoint_dir"),
    ("export --checkpoint_dir {dir} --out {dir}/exported --step last", "--step"),
    ("export --checkpoint_dir {dir} --out {under_file}", "--out"),
    ("export --checkpoint_dir {dir} --out {dir}/exported --vocab {missing}", "--vocab"),
    ("export --checkpoint_dir {dir} --out {dir}/exported --model_config {missing}",
     "--model_config"),
    ("export --checkpoint_dir {dir} --out {dir}/exported --format onnx", "--format"),
    ("export --checkpoint_dir {swapped_export} --out {dir}/exported", "vocab/spm.model: sha256"),
    # vocab
    ("vocab train --input {missing} --out {dir}/v.model", "--input"),
    ("vocab train --input {txt} --out {dir}/v.model --vocab_size 0", "--vocab_size"),
    ("vocab train --input {txt} --out {afile}", "--force"),
    ("vocab train --input {txt} --out {under_file}/v.model", "--out"),
    ("vocab", "action"),
    # train
    ("train", "--gin_file"),
    ("train --gin_file {missing}.gin", "no_such_file.gin"),
    ("train --gin_file {badgin}", "bad.gin"),
    ("train --gin_file experiments/mini_clr_pt.gin --gin.no_such_configurable.x=1",
     "no_such_configurable"),
    ("train --gin_file experiments/mini_clr_pt.gin", "%gin.REQUIRED"),
    ("train --gin_file {model_dir_gin}", "MODEL_DIR"),
    ("train --gin_file experiments/mini_clr_pt.gin --log_level LOUD", "--log_level"),
    # aot
    ("aot --topology v4-8", "--gin_file"),
    ("aot --gin_file experiments/mini_clr_pt.gin --topology v4-8 --headroom 1.5", "--headroom"),
    ("aot --gin_file experiments/mini_clr_pt.gin --topology v9-3", "v9-3"),
    ("aot --gin_file experiments/mini_clr_pt.gin --topology v4-8 --json {under_file}/r.json",
     "--json"),
    # inspect
    ("inspect clqa.mlqa_pt.xor_full --languages jp", "'jp'"),
    ("inspect clqa.mlqa_pt.xor_full --max_examples 0", "--max_examples"),
    ("inspect clqa.mlqa_pt.xor_full --passage_store {missing}", "--passage_store"),
    ("inspect clqa.mlqa_pt.xor_full --gin.no_such_thing.x=1", "no_such_thing"),
    ("inspect clqa.mlqa_pt.xor_full --gin_file {badgin}", "bad.gin"),
    ("inspect clqa.mlqa_pt.xor_full --gin.vocabulary_path.path='unterminated", "unterminated"),
    ("inspect clqa.mlqa_pt.xor_full --gin.vocabulary_path.pathz=3", "pathz"),
    ("inspect clqa.mlqa_pt.xor_full --gin.vocabulary_path.path=%NO_SUCH_MACRO",
     "NO_SUCH_MACRO"),
    # synth
    ("synth generate", "--out"),
    ("synth generate --out {under_file}", "--out"),
    ("synth generate --out {dir}/gen --synthetic_entities 0", "--synthetic_entities"),
    ("synth questions --gin_file synth/mini.gin --out {under_file}", "--out"),
    ("synth questions --gin_file synth/mini.gin --out {dir}/s --corpus {missing}", "--corpus"),
    ("synth translate --out {dir}/s", "translate"),
    ("synth passages --gin_file synth/mini.gin --out {dir}/s --corpus {empty_corpus}",
     "empty_corpus/articles: synth passages made no passages from it; check --corpus"),
    ('synth qa --gin_file synth/mini.gin --out {dir}/s '
     '--gin.HttpConfig.base_url="https://bob:pw@api.example.com/v1"',
     "HttpConfig.base_url: https://api.example.com/v1 is given with credentials"),
    ("synth questions --gin_file synth/mini.gin --out {dir}/s --corpus {empty_corpus}",
     "empty_corpus/xor: holds no XOR-TyDi questions"),
    # demo
    ("demo --out {under_file}", "--out"),
    ("demo --out {dir}/demo --steps 0", "--steps"),
    ("demo --out {demo_done} --steps 5",
     "demo_done/steps/teacher.json: teacher_steps 600 -> 5: this step finished with other "
     "settings; use a new --out, or remove"),
    # top level
    ("no-such-command", "no-such-command"),
]


def _argv(template: str, files) -> list[str]:
  values = dict(files, empty="")
  return [part.format(**values) for part in template.split(" ")]


@pytest.mark.parametrize("template,expected", CASES, ids=[c[0][:60] for c in CASES])
def test_bad_input_is_one_line_and_exit_2(template, expected, files, capsys, monkeypatch):
  monkeypatch.delenv(cli_errors.DEBUG_ENV, raising=False)
  gin.clear_config()
  try:
    try:
      rc = cli_main.main(_argv(template, files))
    except SystemExit as e:  # argparse usage errors exit through parser.error
      rc = e.code
  finally:
    gin.clear_config()
  captured = capsys.readouterr()
  lines = [line for line in captured.err.splitlines() if line.strip()]
  assert rc == 2, captured
  assert "Traceback" not in captured.err + captured.out
  assert len(lines) == 1, captured.err
  assert lines[0].startswith("clqa"), lines[0]
  assert "error: " in lines[0]
  assert expected in lines[0], lines[0]


def test_debug_shows_the_traceback(files, capsys):
  argv = _argv("metrics xor-full --data_file {dup} --pred_file {pred}", files)
  assert cli_main.main(["--debug"] + argv) == 2
  assert "Traceback" in capsys.readouterr().err
  assert cli_main.main(argv + ["--debug"]) == 2
  assert "Traceback" in capsys.readouterr().err


def test_debug_environment_variable(files, capsys, monkeypatch):
  monkeypatch.setenv(cli_errors.DEBUG_ENV, "1")
  assert cli_main.main(_argv("metrics xor-full --data_file {dup} --pred_file {pred}",
                             files)) == 2
  assert "Traceback" in capsys.readouterr().err


def test_version(capsys):
  import clqa_jax
  assert cli_main.main(["--version"]) == 0
  assert capsys.readouterr().out.strip() == f"clqa {clqa_jax.__version__}"


def test_read_only_output_directory(tmp_path, capsys):
  if os.geteuid() == 0:
    pytest.skip("root writes to read-only directories")
  locked = tmp_path / "locked"
  locked.mkdir()
  locked.chmod(0o500)
  try:
    gold = tmp_path / "g.jsonl"
    gold.write_text(json.dumps({"id": "a", "lang": "ja", "answers": ["x"]}) + "\n")
    assert cli_main.main(["metrics", "mkqa-convert", "--data_file", str(gold), "--output_dir",
                          str(locked / "out")]) == 2
    assert "not writable" in capsys.readouterr().err
  finally:
    locked.chmod(0o700)


def test_a_bad_corpus_line_inside_beam_is_reported_unwrapped(tmp_path, capsys):
  corpus, out = str(tmp_path / "corpus"), str(tmp_path / "out")
  assert cli_main.main(["synth", "generate", "--out", corpus, "--synthetic_entities", "8"]) == 0
  articles = os.path.join(corpus, "articles", "ja", "AA", "wiki_00")
  with open(articles, encoding="utf-8") as f:
    lines = f.read().splitlines()
  lines[1] = '{"id": "x", broken'
  with open(articles, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  capsys.readouterr()
  gin.clear_config()
  try:
    rc = cli_main.main(["synth", "passages", "--gin_file", "synth/mini.gin", "--out", out,
                        "--corpus", corpus])
  finally:
    gin.clear_config()
  captured = capsys.readouterr()
  assert rc == 2
  assert "Traceback" not in captured.err + captured.out
  error_lines = [l for l in captured.err.splitlines() if l.startswith("clqa synth")]
  assert error_lines == [f"clqa synth: error: {articles}:2: <json>: not valid JSON "
                         "(Expecting property name enclosed in double quotes)"]


def test_libraries_log_warnings_only_unless_debug(files, capsys):
  import logging
  argv = _argv("metrics xor-full --data_file {gold} --pred_file {pred}", files)
  assert cli_main.main(argv) == 0
  assert logging.getLogger("clqa_jax").level == logging.INFO
  for name in ("absl", "orbax", "jax", "tensorstore"):
    assert logging.getLogger(name).level == logging.WARNING, name
  assert cli_main.main(argv + ["--log_level", "DEBUG"]) == 0
  assert logging.getLogger("orbax").level == logging.DEBUG
  assert cli_main.main(argv + ["--log_level", "error"]) == 0
  assert logging.getLogger("clqa_jax").level == logging.ERROR


def _raised(error: BaseException) -> BaseException:
  try:
    raise error
  except BaseException as e:  # pylint: disable=broad-except
    return e


def test_environment_errors_are_one_line_and_bugs_keep_their_traceback(tmp_path, capsys):
  import errno
  full = _raised(OSError(errno.ENOSPC, "No space left on device", "/data/run/ckpt"))
  assert cli_errors.describe_user_error(full) == (
      "/data/run/ckpt: No space left on device; free some space or write elsewhere")
  denied = _raised(PermissionError(errno.EACCES, "Permission denied", "/ro/out"))
  assert cli_errors.describe_user_error(denied).startswith("/ro/out: Permission denied; ")
  # Beam could not rebuild a DataFormatError (its constructor takes four arguments) and
  # re-raised a RuntimeError carrying its text and the step.
  wrapped = _raised(RuntimeError("clqa_jax.data.errors.DataFormatError: c.jsonl:3: id: empty "
                                 "[while running 'ReadCorpus/Parse']"))
  assert cli_errors.describe_user_error(wrapped) == "c.jsonl:3: id: empty"
  # The original, found through __context__ under a wrapper.
  from clqa_jax.data.errors import DataFormatError
  try:
    try:
      raise DataFormatError("q.jsonl", 7, "lang", "missing")
    except DataFormatError:
      raise RuntimeError("worker failed")  # pylint: disable=raise-missing-from
  except RuntimeError as e:
    assert cli_errors.describe_user_error(e) == "q.jsonl:7: lang: missing"
  # A bug is not a user error: main re-raises it with its traceback.
  assert cli_errors.describe_user_error(_raised(KeyError("x"))) is None
  assert cli_errors.describe_user_error(_raised(ValueError("from a library"))) is None

  def buggy(args):
    return {}["missing"]

  with pytest.raises(KeyError):
    cli_errors.run_reporting_errors("metrics", buggy, None)
  assert cli_errors.run_reporting_errors(
      "train", lambda args: (_ for _ in ()).throw(full), None) == 2
  assert capsys.readouterr().err == ("clqa train: error: /data/run/ckpt: No space left on "
                                     "device; free some space or write elsewhere\n")


def test_an_input_error_inside_tf_data_is_unwrapped():
  tf = pytest.importorskip("tensorflow")
  from clqa_jax.data.errors import DataFormatError

  def parse(x):
    raise DataFormatError("c.jsonl", 3, "id", "empty")

  ds = tf.data.Dataset.range(2).map(lambda x: tf.py_function(parse, [x], tf.int64))
  with pytest.raises(Exception) as e:
    list(ds)
  assert cli_errors.describe_user_error(e.value) == "c.jsonl:3: id: empty"


def test_an_orbax_shape_mismatch_outside_the_checkpointer_is_one_line(tmp_path):
  import jax
  import jax.numpy as jnp
  import orbax.checkpoint as ocp
  path = str(tmp_path / "params")
  with ocp.StandardCheckpointer() as saver:
    saver.save(path, {"kernel": jnp.ones((4, 8))})
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  with ocp.StandardCheckpointer() as restorer, pytest.raises(ValueError) as e:
    restorer.restore(path, {"kernel": jax.ShapeDtypeStruct((4, 16), jnp.float32,
                                                           sharding=sharding)})
  message = cli_errors.describe_user_error(e.value)
  assert message.startswith("checkpoint restore: Requested shape: (4, 16) is not compatible "
                            "with the stored shape: (4, 8)")
  assert "original model config" in message
