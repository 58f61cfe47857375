"""Import direction: clqa_jax.checkpoints never imports clqa_jax.trainer, and clqa_jax.losses
never imports clqa_jax.checkpoints (imports inside functions included)."""
import ast
import os

import clqa_jax

PACKAGE_ROOT = os.path.dirname(os.path.abspath(clqa_jax.__file__))


def _imported_modules(path: str) -> list[tuple[int, str]]:
  """(line, module) of every import statement of a file, at any depth; relative imports are
  resolved against the file's package."""
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), filename=path)
  package = os.path.relpath(os.path.dirname(path), os.path.dirname(PACKAGE_ROOT))
  package = package.replace(os.sep, ".")
  out = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out += [(node.lineno, alias.name) for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
        base = f"{parent}.{base}" if base else parent
      out.append((node.lineno, base))
      out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
  return out


def _violations(subpackage: str, forbidden: str) -> list[str]:
  root = os.path.join(PACKAGE_ROOT, subpackage)
  bad = []
  for dirpath, _, files in os.walk(root):
    for name in sorted(files):
      if not name.endswith(".py"):
        continue
      path = os.path.join(dirpath, name)
      for line, module in _imported_modules(path):
        if module == forbidden or module.startswith(forbidden + "."):
          bad.append(f"{os.path.relpath(path, PACKAGE_ROOT)}:{line}: imports {module}")
  return bad


def test_the_scan_sees_imports_inside_functions(tmp_path):
  path = tmp_path / "m.py"
  path.write_text("def f():\n  from clqa_jax.trainer import loop\n")
  assert (2, "clqa_jax.trainer.loop") in _imported_modules(str(path))


def test_checkpoints_import_nothing_from_trainer():
  assert _violations("checkpoints", "clqa_jax.trainer") == []


def test_losses_import_nothing_from_checkpoints():
  assert _violations("losses", "clqa_jax.checkpoints") == []
