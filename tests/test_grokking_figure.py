"""The grokking figure's pipeline on a tiny transformer run (the quick reproduction itself runs in
colab/grokking.ipynb, which CI executes)."""
import json
import os

import numpy as np

from analysis import trajectory
from analysis.trajectory import Trajectory
from experiments import runner
from experiments.configs import grokking as grokking_cfg
from experiments.figures import grokking


def _tiny_config():
  c = grokking_cfg.get_config("quick")
  c.data.p = 11
  c.model.update(dict(d_model=16, n_heads=2, d_head=8, d_mlp=32))
  c.train.update(dict(steps=200, log_every=10, chunk_steps=100, keep="every:50"))
  c.sweep.seed = (0, 1)
  return c


def test_progress_measures_and_report_on_a_tiny_run(tmp_path):
  t = trajectory.load(runner.run(_tiny_config(), str(tmp_path / "main"), log=lambda *_: None,
                                 plot=False))
  pm = grokking.progress_measures(t, member=1)
  assert list(pm["steps"]) == t.kept_steps == [0, 50, 100, 150, 200]
  # the measures' train / test losses are the run's own logged losses at the kept steps
  for name in ("train_loss", "test_loss"):
    logged = t.metrics[name][1][np.searchsorted(t.steps, pm["steps"])]
    np.testing.assert_allclose(pm[name], logged, rtol=1e-5)
  assert np.all((pm["gini_W_E"] >= 0) & (pm["gini_W_E"] <= 1))
  n_sq = sum(float(np.sum(np.square(v[1]))) for v in
             [t.params(200)[k] for k in ("W_E", "W_pos", "W_U")])
  assert pm["weight_norm"][-1] > n_sq          # the blocks add to the embeddings' share
  report = grokking._draw({"main": t}, str(tmp_path), True)
  assert os.path.getsize(report["figures"][0]) > 20_000
  names = [c["claim"] for c in report["claims"]]
  assert any("steps to 99% test accuracy" in n for n in names)
  assert any("key frequencies" in n for n in names)
  json.dumps(report)                             # report.json must be writable


def test_phase_marks_from_accuracy_curves():
  steps = np.array([0, 10, 20, 30, 40])
  acc = lambda *v: np.array([v])
  t = Trajectory("", {}, steps, {"train_acc": acc(0, .5, .995, 1, 1),
                                 "test_acc": acc(0, .5, .6, .92, np.nan)},
                 {}, [{}], np.array([-1]), np.array([False]), [])
  assert grokking.phases(t) == dict(train99=20, test90=30, test99=None)
