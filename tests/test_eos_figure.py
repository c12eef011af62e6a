"""The edge-of-stability report logic on constructed sequences, and the quick reproduction."""
import json
import os

import numpy as np

from experiments import reproduce
from experiments.figures import eos


def test_first_crossing_skips_an_unstable_start():
  thr = 10.0
  assert eos._first_crossing(np.array([5, 8, 10.5, 9, 11.0]), thr) == 2
  assert eos._first_crossing(np.array([18, 12, 9, 9.5, 10.2, 10]), thr) == 4   # catapult first
  assert eos._first_crossing(np.array([18, 15, 12.0]), thr) == 0               # never below
  assert eos._first_crossing(np.array([5, 6, np.nan]), thr) is None


def test_eos_statistics_median_after_crossing():
  steps = np.arange(8)
  S = np.array([4, 6, 8, 10, 9.8, 10.4, 10.0, np.nan])
  st = eos.eos_statistics(steps, S, lr=0.2)
  assert st["first_crossing_step"] == 3
  assert st["n_steps_after"] == 3
  np.testing.assert_allclose(st["median_ratio"], 1.0)
  assert eos.eos_statistics(steps, S, lr=0.1) is None        # 2/eta = 20: never reached


def test_quick_reproduction_writes_figure_and_report(tmp_path):
  report = reproduce.reproduce("eos_gd", str(tmp_path), quick=True, log=lambda *_: None)
  out = tmp_path / "eos_gd_quick"
  saved = json.loads((out / "report.json").read_text())
  assert saved["all_hold"] == all(c["holds"] for c in saved["claims"]) == report["all_hold"]
  assert os.path.getsize(out / "eos_gd.png") > 20_000
  names = [c["claim"] for c in saved["claims"]]
  assert any("median S*eta/2" in n for n in names)
  assert any("gradient flow" in n for n in names)
  for c in saved["claims"]:
    assert {"measured", "expected", "holds"} <= set(c)
