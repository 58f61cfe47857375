"""Package boundaries: library code never imports the CLI, nothing imports a top-level ``tasks``
module, and an installed wheel has its gin files and registers its tasks without a checkout."""
import ast
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, "clqa_jax")


def _python_files(root: str) -> list[str]:
  """Every .py file under ``root``, following the package's links (clqa_jax/tasks)."""
  return sorted(os.path.join(d, f) for d, _, files in os.walk(root, followlinks=True)
                for f in files if f.endswith(".py"))


def _module_name(path: str) -> str:
  parts = os.path.relpath(path, REPO)[:-len(".py")].split(os.sep)
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: str) -> list[tuple[int, str]]:
  """(line, absolute module name) of every import in the file; ``from a import b`` counts as
  both ``a`` and ``a.b`` (b may be a submodule)."""
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), path)
  package = _module_name(path)
  if not path.endswith("__init__.py"):
    package = package.rpartition(".")[0]
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found += [(node.lineno, alias.name) for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
        base = ".".join(anchor + ([node.module] if node.module else []))
      found.append((node.lineno, base))
      found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
  return found


def test_library_modules_do_not_import_the_cli():
  cli = os.path.join(PACKAGE, "cli") + os.sep
  library = [p for p in _python_files(PACKAGE) if not p.startswith(cli)]
  assert any(p.endswith(os.path.join("trainer", "loop.py")) for p in library)
  assert any(p.endswith(os.path.join("tasks", "__init__.py")) for p in library)
  offending = [f"{os.path.relpath(p, REPO)}:{line}: imports {name}"
               for p in library for line, name in _imported_modules(p)
               if name == "clqa_jax.cli" or name.startswith("clqa_jax.cli.")]
  assert not offending, "\n".join(offending)


def test_nothing_imports_a_top_level_tasks_module():
  files = [p for d in ("clqa_jax", "tests", "benchmarks", "launch")
           for p in _python_files(os.path.join(REPO, d))]
  offending = [f"{os.path.relpath(p, REPO)}:{line}: imports {name} (use clqa_jax.tasks)"
               for p in files for line, name in _imported_modules(p)
               if name == "tasks" or name.startswith("tasks.")]
  assert not offending, "\n".join(offending)


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
