"""The import statements of the project's modules, read with ``ast`` (nothing is imported):
the one scanner behind the package-boundary tests."""
from __future__ import annotations

import ast
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, "clqa_jax")


def python_files(root: str) -> list[str]:
  """Every .py file under ``root``, following the package's links (clqa_jax/tasks)."""
  return sorted(os.path.join(d, f) for d, _, files in os.walk(root, followlinks=True)
                for f in files if f.endswith(".py"))


def module_name(path: str) -> str:
  parts = os.path.relpath(path, REPO)[:-len(".py")].split(os.sep)
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: str, *, module_level_only: bool = False) -> list[tuple[int, str]]:
  """(line, absolute module name) of every import in the file (inside functions too, unless
  ``module_level_only``: the imports that run when the module is imported); ``from a import
  b`` counts as both ``a`` and ``a.b`` (b may be a submodule)."""
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), path)
  package = module_name(path)
  if not path.endswith("__init__.py"):
    package = package.rpartition(".")[0]
  nodes = _module_level(tree) if module_level_only else ast.walk(tree)
  found = []
  for node in nodes:
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


def _module_level(tree: ast.Module):
  """Statements executed at import: the module body, descending into if/try/with blocks but
  not into functions, classes' methods or ``if TYPE_CHECKING:`` blocks."""
  stack = list(tree.body)
  while stack:
    node = stack.pop()
    yield node
    if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
      stack.extend(node.orelse)
      continue
    if isinstance(node, (ast.If, ast.Try, ast.With)):
      for field in ("body", "orelse", "finalbody", "handlers"):
        stack.extend(getattr(node, field, []) or [])
    elif isinstance(node, ast.ExceptHandler):
      stack.extend(node.body)


def module_graph(root: str = PACKAGE) -> dict[str, set[str]]:
  """module -> the project modules it imports at import time.

  ``from pkg import sub`` is an edge to ``pkg.sub`` alone when that is a module; edges to a
  module's own parent packages are left out (Python imports those first, always).
  """
  files = {module_name(p): p for p in python_files(root)}
  graph = {}
  for name, path in files.items():
    found = {m for _, m in imported_modules(path, module_level_only=True) if m in files}
    ancestors = {name.rsplit(".", i)[0] for i in range(1, name.count(".") + 1)}
    via_submodule = {m.rpartition(".")[0] for m in found}
    graph[name] = found - ancestors - via_submodule - {name}
  return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """The strongly connected components of more than one module (Tarjan)."""
  index: dict[str, int] = {}
  low: dict[str, int] = {}
  stack: list[str] = []
  on_stack: set[str] = set()
  found: list[list[str]] = []

  def visit(v: str) -> None:
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph.get(v, ())):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return found
