"""Package boundaries: library code never imports the CLI, checkpoints never import the trainer
nor losses the checkpoints, no module-level import cycles, nothing imports a top-level
``tasks`` module, and an installed wheel has its gin files and registers its tasks without a
checkout."""
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

from import_graph import PACKAGE, REPO, cycles, imported_modules, module_graph, python_files


def test_library_modules_do_not_import_the_cli():
  cli = os.path.join(PACKAGE, "cli") + os.sep
  library = [p for p in python_files(PACKAGE) if not p.startswith(cli)]
  assert any(p.endswith(os.path.join("trainer", "loop.py")) for p in library)
  assert any(p.endswith(os.path.join("tasks", "__init__.py")) for p in library)
  offending = [f"{os.path.relpath(p, REPO)}:{line}: imports {name}"
               for p in library for line, name in imported_modules(p)
               if name == "clqa_jax.cli" or name.startswith("clqa_jax.cli.")]
  assert not offending, "\n".join(offending)


def test_nothing_imports_a_top_level_tasks_module():
  files = [p for d in ("clqa_jax", "tests", "benchmarks", "launch")
           for p in python_files(os.path.join(REPO, d))]
  offending = [f"{os.path.relpath(p, REPO)}:{line}: imports {name} (use clqa_jax.tasks)"
               for p in files for line, name in imported_modules(p)
               if name == "tasks" or name.startswith("tasks.")]
  assert not offending, "\n".join(offending)


def _imports_of(subpackage: str, forbidden: str) -> list[str]:
  """Imports of ``forbidden`` anywhere in ``clqa_jax/<subpackage>`` (inside functions too)."""
  return [f"{os.path.relpath(p, REPO)}:{line}: imports {name}"
          for p in python_files(os.path.join(PACKAGE, subpackage))
          for line, name in imported_modules(p)
          if name == forbidden or name.startswith(forbidden + ".")]


def test_checkpoints_import_nothing_from_trainer():
  assert _imports_of("checkpoints", "clqa_jax.trainer") == []


def test_losses_import_nothing_from_checkpoints():
  assert _imports_of("losses", "clqa_jax.checkpoints") == []


def test_no_import_cycles():
  graph = module_graph()
  assert len(graph) > 100 and graph["clqa_jax.trainer.loop"]
  assert cycles(graph) == []


def test_the_scanners_see_what_they_must(tmp_path):
  path = tmp_path / "m.py"
  path.write_text("import os\ndef f():\n  from clqa_jax.trainer import loop\n")
  assert (3, "clqa_jax.trainer.loop") in imported_modules(str(path))
  assert (3, "clqa_jax.trainer.loop") not in imported_modules(str(path), module_level_only=True)
  assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# Runs with only the installed package on sys.path (argv: site directory).
_INSTALLED_CHECK = textwrap.dedent("""
    import os, sys
    site = os.path.realpath(sys.argv[1])
    import clqa_jax
    assert os.path.realpath(clqa_jax.__file__).startswith(site + os.sep), clqa_jax.__file__
    from clqa_jax import gin_utils
    import gin
    assert os.path.realpath(gin_utils.gin_config_dir()).startswith(site + os.sep)
    gin_utils.parse_gin(["experiments/mini_clr_pt.gin"], ["TRAIN_STEPS = 3"], finalize=False)
    assert gin.query_parameter("%TRAIN_STEPS") == 3
    assert gin.query_parameter("%NUM_PASSAGES") > 0   # bound by an included file
    import seqio
    from clqa_jax import tasks
    assert os.path.realpath(tasks.__file__).startswith(site + os.sep), tasks.__file__
    assert "clqa.xor_retrieve.ja" in seqio.TaskRegistry.names()
    assert "tasks" not in sys.modules
    print("installed package ok")
""")


@pytest.mark.slow
def test_wheel_install_has_gin_files_and_tasks_without_a_checkout(tmp_path):
  src = tmp_path / "src"
  src.mkdir()
  for name in ("pyproject.toml", "README.md"):
    shutil.copy(os.path.join(REPO, name), src / name)
  ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
  for name in ("clqa_jax", "gin", "tasks"):   # links inside clqa_jax stay links
    shutil.copytree(os.path.join(REPO, name), src / name, symlinks=True, ignore=ignore)
  pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
  subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "--no-index",
                        "-w", str(tmp_path / "dist"), str(src)], check=True, cwd=src)
  (wheel,) = (tmp_path / "dist").glob("clqa_jax-*.whl")
  names = zipfile.ZipFile(wheel).namelist()
  assert "clqa_jax/gin_configs/experiments/mini_clr_pt.gin" in names
  assert "clqa_jax/gin_configs/runs/clr_pt.gin" in names
  assert "clqa_jax/tasks/__init__.py" in names and "clqa_jax/gin_utils.py" in names
  assert not [n for n in names if n.startswith(("tasks/", "gin/"))], names
  site = tmp_path / "site"
  subprocess.run(pip + ["install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
                 check=True)
  # bin/ holds the `clqa` console script.
  assert sorted(p.name for p in site.iterdir() if not p.name.endswith(".dist-info")) == \
      ["bin", "clqa_jax"]
  (top_level,) = site.glob("clqa_jax-*.dist-info/top_level.txt")
  assert top_level.read_text().split() == ["clqa_jax"]
  assert not (site / "tasks").exists()
  assert (site / "clqa_jax" / "tasks" / "__init__.py").is_file()
  assert not (site / "clqa_jax" / "tasks").is_symlink()
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env["PYTHONPATH"] = str(site)
  # -P: the working directory is not put on sys.path either; only the installed package is.
  result = subprocess.run([sys.executable, "-P", "-c", _INSTALLED_CHECK, str(site)], cwd=elsewhere,
                          env=env, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-4000:]
  assert "installed package ok" in result.stdout
