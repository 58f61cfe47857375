"""benchmarks/methods.py kept working: the untrained start, BM25 and one learned method (2 steps)
on the mini corpus, the table with its "beats start" column, methods.json and the chart; a rerun
skips every finished method."""
import json
import os
import sys

import pytest

from fixtures.integration import mini_data

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))
import methods  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture(scope="module")
def root():
  old = mini_data.enable_compilation_cache()
  yield mini_data.data_root()
  mini_data.restore_compilation_cache(old)


def test_two_methods_side_by_side(root, tmp_path, capsys):
  out = tmp_path / "methods"
  out.mkdir()
  os.symlink(root, out / "data")  # the shared mini data root stands for OUT/data
  rows = methods.run(str(out), 2, ["bm25", "lexa"], jax_cache=None)
  assert [r["stage"] for r in rows] == ["untrained", "bm25", "lexa"]
  assert [r["beats start"] for r in rows] == ["-", "-", rows[2]["beats start"]]
  assert rows[2]["beats start"] in ("yes", "no")
  assert all(isinstance(r["distinct first"], int) and 1 <= r["distinct first"] <= 189
             for r in rows)
  assert all(r["reader"] is None for r in rows)  # no chosen method trains a reader
  table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("method")]
  assert table and table[0].split()[-2:] == ["beats", "start"]
  saved = json.loads((out / "methods.json").read_text())["rows"]
  assert saved == rows and (out / "methods.png").stat().st_size > 0
  for name in ("untrained", "bm25", "lexa"):
    assert json.loads((out / "methods" / f"{name}.json").read_text())["steps"] == 2
  assert methods.run(str(out), 2, ["bm25", "lexa"], jax_cache=None) == rows
  assert "[lexa] already complete: skipped" in capsys.readouterr().out
  with pytest.raises(ValueError, match="another --out"):
    methods.run(str(out), 3, ["lexa"], jax_cache=None)
