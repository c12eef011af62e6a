"""The checks every quick figure reproduction's output must pass (shared by the figure tests)."""
import json
import os


def check_report(root, figure, report, claim_names, steps=None) -> dict:
  """ROOT/FIGURE_quick[_stepsN] holds report.json (the same verdict as `report`, every claim
  with measured / expected / holds, each of claim_names among them) and FIGURE.png; returns
  the saved report."""
  out = root / (f"{figure}_quick" + ("" if steps is None else f"_steps{steps}"))
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


def claim(report, text) -> dict:
  """The report's claim whose text contains `text`."""
  return next(c for c in report["claims"] if text in c["claim"])
