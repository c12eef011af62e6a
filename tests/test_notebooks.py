"""Every notebook under colab/ runs top to bottom (on its quick settings), so none can rot."""
import glob
import os

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# notebooks that draw figures whose quick runs other tests train (tests/test_eos_figure.py,
# tests/analysis/test_central_flow.py): on that test's worker, after it (pytest-xdist
# --dist loadgroup), they reuse the runs
REUSES_FIGURE_RUNS = {"edge_of_stability.ipynb": "eos_runs",
                      "central_flows.ipynb": "central_flow_runs",
                      "neural_collapse.ipynb": "neural_collapse_runs",
                      "deep_linear.ipynb": "linear_runs",
                      "tensor_factorization.ipynb": "tensor_runs",
                      "two_layer_relu.ipynb": "relu_runs"}
# the grokking notebook trains its own runs: an 800-step horizon here. Its exploration (seed 2
# of the quick config, which groks at ~540 steps, with and without weight decay) groks within
# it; the figure's three seeds (540-1,840 of the config's 2,500 steps) do not all
GROKKING_SMOKE_STEPS = "800"


def _notebook(path):
  name = os.path.basename(path)
  group = REUSES_FIGURE_RUNS.get(name)
  return pytest.param(path, id=name, marks=[pytest.mark.xdist_group(group)] if group else [])


PATHS = sorted(glob.glob(os.path.join(ROOT, "colab", "*.ipynb")))
NOTEBOOKS = [_notebook(p) for p in PATHS]
# what only the setup cell may do: install the package (Colab); nothing else is downloaded
INSTALLS = ("subprocess", "pip install", "git clone", "urllib", "requests", "wget", "curl ")


def _code_cells(path):
  return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_notebooks_open_with_one_setup_cell_and_are_committed_without_outputs():
  # every notebook's first code cell is 00_quickstart's: install when `dynamics` is missing
  # (REPO_URL: a git URL or a local checkout), then print the accelerator
  setup = _code_cells(os.path.join(ROOT, "colab", "00_quickstart.ipynb"))[0].source
  assert "REPO_URL" in setup and "accelerator" in setup and "jax.devices()" in setup
  for path in PATHS:
    cells = _code_cells(path)
    name = os.path.basename(path)
    assert cells[0].source == setup, f"{name}: its first code cell is not the setup cell"
    later = [w for c in cells[1:] for w in INSTALLS if w in c.source]
    assert not later, f"{name}: only the setup cell may install or download ({later})"
    assert all(not c.outputs and c.execution_count is None for c in cells), (
        f"{name}: committed with outputs (clear them)")


@pytest.mark.parametrize("path", NOTEBOOKS)
def test_notebook_executes(path, monkeypatch, reproduce_root):
  monkeypatch.setenv("QUICKSTART_VARIANT", "quick")
  monkeypatch.setenv("NOTEBOOK_QUICK", "1")
  monkeypatch.setenv("NOTEBOOK_STEPS", GROKKING_SMOKE_STEPS)   # read by grokking.ipynb only
  monkeypatch.setenv("REPRODUCE_ROOT", str(reproduce_root))   # reuse the figure tests' runs
  monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  nb = nbformat.read(path, as_version=4)
  NotebookClient(nb, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": ROOT}}).execute()
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("output_type") == "error"]
  assert not errors
