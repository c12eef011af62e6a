"""The front door stays true: every figure of the reproduce registry has a README row naming an
existing notebook (or the reason for none) and a gallery entry, the gallery and docs/results.md
are exactly what `reproduce --summary` writes from the committed reports, and the README stays a
short guide."""
import os
import re

import pytest

from experiments import reproduce, results

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "README.md")) as _f:
  README = _f.read()
FIGURES = reproduce._registry()


def _row(name):
  rows = [line for line in README.splitlines() if line.startswith(f"| `{name}` |")]
  assert len(rows) == 1, f"README needs one table row for figure {name!r}"
  return [cell.strip() for cell in rows[0].strip("|").split("|")]


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_every_figure_has_a_row_with_a_notebook_or_a_reason(name):
  cells = _row(name)
  assert len(cells) == 5, cells          # figure, what it shows, config, notebook, CPU time
  notebook = cells[3]
  if notebook.startswith("none"):
    assert len(notebook) > len("none: ") + 10, f"{name}: say why there is no notebook"
  else:
    for nb in re.findall(r"`([^`]+\.ipynb)`", notebook) or [notebook]:
      assert os.path.exists(os.path.join(ROOT, "colab", nb)), (name, nb)


def test_gallery_and_results_are_what_summary_writes():
  names = sorted(FIGURES)
  start = README.index(results.GALLERY_BEGIN)
  end = README.index(results.GALLERY_END) + len(results.GALLERY_END)
  assert README[start:end] == results.gallery(names)
  for name in names:                     # each figure: a thumbnail, or listed as not yet drawn
    assert f"docs/figures/{name}.png" in README[start:end] or f"`{name}`" in README[start:end]
  with open(os.path.join(ROOT, "docs", "results.md")) as f:
    committed = f.read()
  descriptions = {n: FIGURES[n].description for n in names}
  assert committed == results.render(results.load_reports(names), descriptions)


def test_gallery_images_are_small():
  folder = os.path.join(ROOT, "docs", "figures")
  for png in os.listdir(folder) if os.path.isdir(folder) else []:
    assert os.path.getsize(os.path.join(folder, png)) <= results.MAX_BYTES, png


def test_readme_is_a_short_guide():
  assert len(README.splitlines()) <= 250
  for heading in ("## Gallery", "## Figures, configs, commands, notebooks", "## Using the launcher",
                  "## The run directory", "## Adding things", "## Package layout", "## Tests"):
    assert heading in README, heading
