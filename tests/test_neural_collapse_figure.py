"""The unconstrained-features-model figure on its quick settings: GD reaches the closed-form
optimum and collapses, and the perturbed model moves away from collapse as beta grows."""
import numpy as np
import pytest

from analysis import neural_collapse as nc
from analysis import trajectory
from figure_report import check_report


@pytest.mark.xdist_group("neural_collapse_runs")      # the notebook reuses these runs
def test_ufm_figure_reaches_the_closed_form_and_holds_its_claims(reproduce_root):
  from experiments import reproduce
  report = reproduce.reproduce("ufm", str(reproduce_root), quick=True, log=lambda *_: None)
  check_report(reproduce_root, "ufm", report, ("closed-form minimum", "grows with beta"))
  assert report["all_hold"], [c for c in report["claims"] if not c["holds"]]
  # the run directory is an ordinary one: recompute the end's objective and NC1 from it
  traj = trajectory.load(str(reproduce_root / "ufm_quick" / "cross_entropy"))
  r = nc.ufm_objective(traj)
  assert abs(r["objective"][-1] / r["optimum"]["objective"] - 1) < 1e-6
  post = nc.from_trajectory(traj, traj.kept_steps[-1])
  assert post["nc1"] < 1e-12
  np.testing.assert_allclose(post["nc1"], traj.metrics["neural_collapse/nc1"][0, -1],
                             rtol=1e-6, atol=1e-30)
