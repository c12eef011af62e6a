"""The checks every quick figure reproduction's output must pass (shared by the figure tests)."""
import json
import os
import pathlib


def check_report(root, figure, report, claim_names, steps=None) -> dict:
  """ROOT/FIGURE_quick[_stepsN] holds report.json (the same verdict as `report`, every claim
  with measured / expected / holds, each of claim_names among them) and FIGURE.png; returns
  the saved report."""
  from experiments import reproduce
  out = pathlib.Path(reproduce.run_dir(figure, str(root), quick=True, steps=steps))
  saved = json.loads((out / "report.json").read_text())
  assert saved["all_hold"] == all(c["holds"] for c in saved["claims"]) == report["all_hold"]
  assert saved["steps"] == steps
  assert os.path.getsize(out / f"{figure}.png") > 20_000
  names = [c["claim"] for c in saved["claims"]]
  for name in claim_names:
    assert any(name in n for n in names), (name, names)
  for c in saved["claims"]:
    assert {"measured", "expected", "holds"} <= set(c)
  return saved


def reproduce_quick(root, figure) -> dict:
  """The figure's quick reproduction under ROOT; every claim must hold."""
  from experiments import reproduce
  report = reproduce.reproduce(figure, str(root), quick=True, log=lambda *_: None)
  assert report["all_hold"], [c for c in report["claims"] if not c["holds"]]
  return report


def quick_run(root, figure, label):
  """The trajectory of the figure's quick run `label` under ROOT (where reproduce keeps it)."""
  from analysis import trajectory
  from experiments import reproduce
  return trajectory.load(reproduce.run_dir(figure, str(root), quick=True, label=label))


def claim(report, text) -> dict:
  """The report's claim whose text contains `text`."""
  return next(c for c in report["claims"] if text in c["claim"])
