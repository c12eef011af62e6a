"""The direction of imports (docs/architecture.md): dynamics imports neither analysis nor
experiments, analysis never imports experiments, and no figure imports dynamics (what a figure
needs of a run comes through analysis.trajectory)."""
import ast
import glob
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _imports(path):
  with open(path) as f:
    tree = ast.parse(f.read())
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      yield from (a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      yield node.module


def _files(pattern):
  return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern),
                                                            recursive=True))


@pytest.mark.parametrize("pattern, forbidden", [
    ("dynamics/**/*.py", ("analysis", "experiments")),
    ("analysis/**/*.py", ("experiments",)),
    ("experiments/figures/*.py", ("dynamics", "experiments.runner")),
])
def test_imports_follow_the_data_flow(pattern, forbidden):
  bad = [f"{path} imports {name}" for path in _files(pattern)
         for name in _imports(os.path.join(ROOT, path))
         if any(name == f or name.startswith(f + ".") for f in forbidden)]
  assert not bad, bad
  assert _files(pattern)
