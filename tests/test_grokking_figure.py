"""The grokking figure's pipeline on a tiny transformer run (the quick reproduction itself runs in
colab/grokking.ipynb, which CI executes)."""
import json
import os

import numpy as np
import pytest

from analysis import trajectory
from analysis.trajectory import Trajectory
from dynamics import experiment
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
  t = trajectory.load(experiment.run(_tiny_config(), str(tmp_path / "main"), log=lambda *_: None))
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
  keys = next(c for c in report["claims"] if "key frequencies" in c["claim"])
  assert keys["measured"] == f"{len(pm['keys'])}: {sorted(int(k) for k in pm['keys'])}"
  json.dumps(report)                             # report.json must be writable


def test_phase_marks_from_accuracy_curves():
  steps = np.array([0, 10, 20, 30, 40])
  acc = lambda *v: np.array([v])
  t = Trajectory("", {}, steps, {"train_acc": acc(0, .5, .995, 1, 1),
                                 "test_acc": acc(0, .5, .6, .92, np.nan)},
                 {}, [{}], np.array([-1]), np.array([False]), [])
  assert grokking.phases(t) == dict(train99=20, test90=30, test99=None)


def _tiny_sc(variant):
  from experiments.configs import softmax_collapse as sc_cfg
  c = sc_cfg.get_config(variant)
  c.data.p = 11
  c.model.widths = (16, 16)
  c.train.update(dict(steps=100, log_every=10, chunk_steps=50, keep="every:50"))
  return c


def test_softmax_collapse_probe_and_figure_on_tiny_runs(tmp_path, monkeypatch):
  from analysis import grokking as gk
  from experiments.figures import softmax_collapse as sc_fig
  monkeypatch.setattr(sc_fig, "_runs", lambda quick: {
      n: _tiny_sc("quick" if n == "softmax" else f"quick_{n}") for n in sc_fig.RUNS})
  trajs = {n: trajectory.load(experiment.run(c, str(tmp_path / n), log=lambda *_: None))
           for n, c in sc_fig._runs(True).items()}
  # the probe is measured on the training set with the kept params of the same step
  t = trajs["softmax"]
  _, ds, model, _, _, program, _ = experiment.Experiment.from_config(_tiny_sc("quick"))
  params = {k: v[0] for k, v in t.params(100).items()}
  logits = model.apply(params, ds.x_train)
  j = int(np.flatnonzero(t.steps == 100)[0])
  np.testing.assert_allclose(t.metrics["softmax_collapse/share"][0, j],
                             gk.softmax_collapse_share(logits))
  np.testing.assert_allclose(t.metrics["softmax_collapse/zero_loss_share"][0, j],
                             gk.zero_loss_share(logits, ds.y_train))
  assert trajs["perpgrad"].config["opt"]["perpgrad"] is True
  assert trajs["stablemax"].config["loss"]["name"] == "stablemax"
  assert all(t.config["opt"]["moments_float64"] for t in trajs.values())
  report = sc_fig._draw(trajs, str(tmp_path), True)
  assert os.path.getsize(report["figures"][0]) > 20_000
  assert len(report["claims"]) == 9        # 3 stay finite, 4 judged, 2 reported
  json.dumps(report)


def test_reproduce_steps_overrides_every_run_and_refuses_what_it_cannot(tmp_path, monkeypatch):
  from experiments import reproduce
  from experiments.figures import softmax_collapse as sc_fig
  tiny = reproduce.Figure("tiny", lambda quick: {n: _tiny_sc("quick" if n == "softmax" else
                                                             f"quick_{n}") for n in sc_fig.RUNS},
                          sc_fig._draw)
  none = reproduce.Figure("no runs", lambda quick: {}, sc_fig._draw)
  monkeypatch.setattr(reproduce, "_registry", lambda: {"tiny": tiny, "none": none})
  report = reproduce.reproduce("tiny", str(tmp_path), quick=True, log=lambda *_: None, steps=30)
  out = tmp_path / "tiny_quick_steps30"
  assert report["steps"] == 30 and json.loads((out / "report.json").read_text())["steps"] == 30
  for n in sc_fig.RUNS:
    t = trajectory.load(str(out / n))
    assert t.config["train"]["steps"] == 30 and t.steps[-1] == 30, (n, t.steps)
  with pytest.raises(ValueError, match="--steps=0 is not allowed"):
    reproduce.reproduce("tiny", str(tmp_path), quick=True, steps=0)
  with pytest.raises(ValueError, match="--steps does not apply to --figure=none"):
    reproduce.reproduce("none", str(tmp_path), quick=True, steps=30)
  # checked against every run's config before the first one trains
  with pytest.raises(ValueError, match=r"--steps=31 is not allowed for --figure=tiny \(run "
                                       r"\w+\): train.steps=31 .*multiple of train.log_every"):
    reproduce.reproduce("tiny", str(tmp_path), quick=True, steps=31)
  assert not (tmp_path / "tiny_quick_steps31").exists()


def test_softmax_collapse_claims_fail_a_run_that_diverged():
  from types import SimpleNamespace
  from experiments.figures import softmax_collapse as sc_fig
  steps = np.arange(0, 50, 10)
  acc = np.array([[0.0, 0.5, 0.95, np.nan, np.nan]])      # reached 0.95, then diverged
  m = {"test_acc": acc, "softmax_collapse/share": np.full((1, 5), 0.9),
       "softmax_collapse/grad_weight_cosine": np.full((1, 5), -0.9)}
  run = lambda diverged: SimpleNamespace(metrics=dict(m, test_acc=acc if diverged else
                                                      np.full((1, 5), 0.95)), steps=steps,
                                         diverged=np.array([diverged]),
                                         stop_step=np.array([20 if diverged else 40]))
  claims = sc_fig._claims({"softmax": run(False), "stablemax": run(True),
                           "perpgrad": run(False)})
  finite = {c["claim"]: c["holds"] for c in claims if "stays finite" in c["claim"]}
  assert finite == {"softmax: training stays finite": True,
                    "stablemax: training stays finite": False,
                    "perpgrad: training stays finite": True}


def test_grokking_sweeps_claims_from_constructed_marks():
  from experiments.figures import grokking_sweeps as gs
  claims = gs._claims([0.0, 0.3, 1.0, 3.0], [None, 100, 300, 900], [20, 20, 20, 20],
                      [0.2, 0.3, 0.5, 0.7],
                      [dict(train99=20, test90=None, test99=None),
                       dict(train99=20, test90=400, test99=500),
                       dict(train99=20, test90=200, test99=300),
                       dict(train99=40, test90=60, test99=80)], 1000)
  assert [c["holds"] for c in claims] == [True] * 6
  claims = gs._claims([0.0, 1.0, 3.0], [50, 900, 300], [20, 20, 20], [0.2, 0.7],
                      [dict(train99=20, test90=30, test99=40),
                       dict(train99=40, test90=600, test99=700)], 1000)
  assert [c["holds"] for c in claims] == [False, True, False, False, False, True]
  # "never groks" only counts for a run that reached the end of the horizon
  ph = [dict(train99=20, test90=None, test99=None), dict(train99=40, test90=60, test99=80)]
  claims = gs._claims([0.0, 1.0], [None, 300], [20, 20], [0.2, 0.7], ph, 1000,
                      end_wd=[False, True], end_frac=[False, True])
  assert (claims[0]["holds"], claims[1]["holds"], claims[3]["holds"]) == (False, True, False)
  assert claims[0]["measured"] == claims[3]["measured"] == "stopped early (diverged)"


def test_grokking_sweeps_fraction_runs_stop_once_grokked_and_the_wd_program_does_not():
  from experiments.figures import grokking_sweeps as gs
  for quick in (True, False):
    runs = gs._runs(quick)
    assert runs["wd"].train.test_acc_goal == 0.0
    fracs = {k: c for k, c in runs.items() if k != "wd"}
    assert sorted(c.data.train_frac for c in fracs.values()) == sorted(gs.grokking_cfg.TRAIN_FRACS)
    assert all(c.train.test_acc_goal == gs.GROK_ACC for c in fracs.values())
