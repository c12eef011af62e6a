"""The two-layer ReLU figures on their quick settings: each holds its claims, and one number of
each is recomputed here from the run directory with numpy."""
import os

import numpy as np
import pytest

from dynamics import runs
from experiments import reproduce

from figure_report import check_report, claim, quick_run, reproduce_quick


@pytest.mark.xdist_group("relu_runs")             # the notebook reuses these runs
def test_early_alignment_figure(reproduce_root):
  report = reproduce_quick(reproduce_root, "early_alignment")
  check_report(reproduce_root, "early_alignment", report,
               ("rises from its value at init", "while the norms are small",
                "does not grow with ln(1/eps)", "linear in ln(1/eps)", "log n / sqrt(mu)",
                "decays like 1/t", "low rank"))
  # drawn again from the finished runs: the run time is still what the runs spent training
  again = reproduce_quick(reproduce_root, "early_alignment")
  dirs = [os.path.join(reproduce.run_dir("early_alignment", str(reproduce_root), True), label)
          for label in report["settings"]]
  trained = sum(runs.train_seconds(d) for d in dirs)
  assert again["train_seconds"] == report["train_seconds"] == pytest.approx(trained, abs=0.1)
  assert again["seconds"] >= again["train_seconds"] > 0
  # the last kept first layer of the long run, from its checkpoint: stable rank by numpy
  traj = quick_run(reproduce_root, "early_alignment", "late")
  w = np.asarray(traj.params(traj.kept_steps[-1], 0)["w"], np.float64)
  sv = np.linalg.svd(w, compute_uv=False)
  measured = claim(report, "low rank")["measured"][0]
  assert np.sum(sv ** 2) / sv[0] ** 2 == pytest.approx(measured, abs=1e-4)
  # every neuron's direction at the end: along x_+ when v_j > 0, along x_- otherwise
  ds = traj.dataset()
  x, y = np.asarray(ds.x_train, np.float64), np.asarray(ds.y_train)
  v = np.asarray(traj.params(traj.kept_steps[-1], 0)["v"])[:, 0]
  cones = np.stack([x[y > 0].sum(0), x[y < 0].sum(0)])
  cos = (w / np.linalg.norm(w, axis=1, keepdims=True)) @ (
      cones / np.linalg.norm(cones, axis=1, keepdims=True)).T
  assert np.all(np.where(v > 0, cos[:, 0], cos[:, 1]) > 0.95)
  # the same neurons laid exactly along their cones, by numpy: the claim's reference rank
  unit = cones / np.linalg.norm(cones, axis=1, keepdims=True)
  rows = np.linalg.norm(w, axis=1)[:, None] * np.where(v[:, None] > 0, unit[0], unit[1])
  sv = np.linalg.svd(rows, compute_uv=False)
  aligned = claim(report, "low rank")["aligned"][0]
  assert np.sum(sv ** 2) / sv[0] ** 2 == pytest.approx(aligned, abs=1e-4)


@pytest.mark.xdist_group("relu_runs")
def test_xor_grokking_figure(reproduce_root):
  report = reproduce_quick(reproduce_root, "xor_grokking")
  check_report(reproduce_root, "xor_grokking", report,
               ("100% training accuracy", "within 0.02 of the Bayes", "stays benign"))
  # the final network's clean test accuracy, from its checkpoint, by numpy
  traj = quick_run(reproduce_root, "xor_grokking", "xor")
  ds = traj.dataset()
  p = traj.params(traj.kept_steps[-1], 1)
  w, v = np.asarray(p["w"], np.float64), np.asarray(p["v"], np.float64)
  f = np.maximum(np.asarray(ds.x_test, np.float64) @ w.T, 0) @ v[:, 0]
  acc = np.mean(np.sign(f) == np.sign(ds.y_test))
  assert acc == pytest.approx(claim(report, "stays benign")["measured"][1], abs=1e-3)
  # the flipped training labels are fitted too
  p = traj.params(traj.kept_steps[-1], 0)
  w, v = np.asarray(p["w"], np.float64), np.asarray(p["v"], np.float64)
  f = np.maximum(np.asarray(ds.x_train, np.float64) @ w.T, 0) @ v[:, 0]
  flipped = ds.info["flipped"]
  assert flipped.sum() > 0 and np.all(np.sign(f[flipped]) == ds.y_train[flipped])
