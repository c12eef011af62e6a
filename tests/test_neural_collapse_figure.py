"""The unconstrained-features-model figure on its quick settings: GD reaches the closed-form
optimum and collapses, and the perturbed model moves away from collapse as beta grows."""
import numpy as np
import pytest

from analysis import neural_collapse as nc
from figure_report import check_report, quick_run


@pytest.mark.xdist_group("neural_collapse_runs")      # the notebook reuses these runs
def test_ufm_figure_reaches_the_closed_form_and_holds_its_claims(reproduce_root):
  from experiments import reproduce
  report = reproduce.reproduce("ufm", str(reproduce_root), quick=True, log=lambda *_: None)
  check_report(reproduce_root, "ufm", report, ("closed-form minimum", "grows with beta"))
  assert report["all_hold"], [c for c in report["claims"] if not c["holds"]]
  # the run directory is an ordinary one: recompute the end's objective and NC1 from it
  traj = quick_run(reproduce_root, "ufm", "cross_entropy")
  r = nc.ufm_objective(traj)
  assert abs(r["objective"][-1] / r["optimum"]["objective"] - 1) < 1e-6
  post = nc.from_trajectory(traj, traj.kept_steps[-1])
  assert post["nc1"] < 1e-12
  np.testing.assert_allclose(post["nc1"], traj.metrics["neural_collapse/nc1"][0, -1],
                             rtol=1e-6, atol=1e-30)


@pytest.mark.xdist_group("neural_collapse_runs")
def test_terminal_phase_figure_holds_its_claims(reproduce_root):
  from experiments import reproduce
  report = reproduce.reproduce("neural_collapse", str(reproduce_root), quick=True,
                               log=lambda *_: None)
  check_report(reproduce_root, "neural_collapse", report,
               ("NC1 falls during the terminal phase", "NC4 approaches 0", "in-loop NC1"))
  assert report["all_hold"], [c for c in report["claims"] if not c["holds"]]
  # T0 read back from the run directory is a logged step with train accuracy 1 where the
  # step before it was not, and the training ran past 11 T0
  traj = quick_run(reproduce_root, "neural_collapse", "mse")
  t0 = nc.zero_error_step(traj)
  for i, s in enumerate(t0):
    row = list(traj.steps).index(s)
    assert traj.metrics["train_acc"][i, row] == 1.0 > traj.metrics["train_acc"][i, row - 1]
    assert traj.kept_steps[-1] >= 11 * s


@pytest.mark.xdist_group("neural_collapse_runs")
def test_depth_figure_fits_the_law_of_data_separation(reproduce_root):
  from experiments import reproduce
  report = reproduce.reproduce("neural_collapse_depth", str(reproduce_root), quick=True,
                               log=lambda *_: None)
  check_report(reproduce_root, "neural_collapse_depth", report,
               ("law of data separation", "away from a simplex ETF"))
  assert report["all_hold"], [c for c in report["claims"] if not c["holds"]]
  fit = next(c for c in report["claims"] if "law of data separation" in c["claim"])["measured"]
  # the stated fit against the per-layer NC1 the run directory gives
  traj = quick_run(reproduce_root, "neural_collapse_depth", "mse")
  nc1 = [[d["nc1"] for d in nc.per_layer(traj, traj.kept_steps[-1], i)] for i in range(2)]
  slope = np.polyfit(np.tile(np.arange(len(nc1[0])), 2), np.log10(nc1).ravel(), 1)[0]
  assert abs(slope - fit["slope"]) < 1e-4


def test_terminal_phase_figure_adds_mnist_when_its_files_are_there(tmp_path, monkeypatch):
  # no files: digits only; MNIST files under data/mnist of the working directory: its two runs
  # join, and their configs build (the data is read from those files, never downloaded)
  from dynamics import experiment
  from dynamics.data import files
  from experiments.figures import neural_collapse as fig
  monkeypatch.chdir(tmp_path)
  assert list(fig._terminal_runs(True)) == ["cross_entropy", "mse"]
  rs = np.random.RandomState(0)
  for prefix, n in (("train", 600), ("t10k", 100)):
    images = rs.randint(0, 256, (n, 28, 28)).astype(np.uint8)
    files.write_mnist_idx(str(tmp_path / "data" / "mnist"), images, np.arange(n) % 10, prefix)
  runs = fig._terminal_runs(True)
  assert list(runs) == ["cross_entropy", "mse", "mnist_cross_entropy", "mnist_mse"]
  assert runs["mnist_mse"].loss.name == "mse"
  exp = experiment.Experiment.from_config(runs["mnist_mse"])
  assert exp.batch()["x"].shape == (500, 784)
