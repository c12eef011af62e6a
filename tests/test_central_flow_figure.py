"""The central-flow figure code on the public example's data path (CIFAR-shaped digits, GELU,
PyTorch init, processes from initialization), shrunk to a width-8 network and 16 steps: run
directories trained by the engine, drawn by the figure from their trajectories."""
import json
import os

import numpy as np
import pytest

from analysis import trajectory
from dynamics import experiment
from experiments.configs import central_flow_speed, common
from experiments.figures import central_flow as fig_cf


def _tiny(variant, workdir, widths=(8,), **flow):
  """central_flow_speed's `variant` with a `widths` network and these settings, trained."""
  c = central_flow_speed.get_config(variant)
  c.model.widths = widths
  c = common.with_flow(c, **flow)
  experiment.run(c, str(workdir), log=lambda *_: None)
  return trajectory.load(str(workdir))


def test_speed_configuration_draws_with_the_public_comparison(tmp_path):
  # k_max = k: no direction is added (each addition recompiles; tested in test_central_flow)
  traj = _tiny("quick", tmp_path / "run", steps=16, segments=2, lanczos_iters=10, k_max=3)
  assert (tmp_path / "run" / "config.json").exists() and 0 in traj.kept_steps
  _, _, draw = fig_cf.FIGURES["central_flow_speed"]
  report = draw({"run": traj}, str(tmp_path), quick=True)
  assert os.path.getsize(tmp_path / "central_flow_speed.png") > 20_000
  last = report["claims"][-1]
  assert "public code" in last["expected"]
  got = last["measured"]
  assert set(got) == set(fig_cf.PUBLIC_AT_180)
  json.dumps(report["claims"])             # report.json can hold it
  assert report["notes"][0].startswith("k = 3 tracked directions (at most 3)")
  r = fig_cf.cfp.processes(traj)          # from the run directory's cache
  eta = traj.config["opt"]["learning_rate"]
  assert r["n_params"] == 3072 * 8 + 8 + 8 * 4 + 4
  assert r["cf"].eigenvalues.shape == (16, 3)
  np.testing.assert_array_equal(r["k_cf"], 3)
  # the comparison reads the last mark (16) of this short run, in raw sharpness units
  np.testing.assert_allclose(got["gd_sharpness"], r["real"]["sharpness"][16] / eta)
  np.testing.assert_allclose(got["dist_gd_cf"], r["dist_real_cf"][-1])
  # the flows log steps 0..15 here: their numbers are step 15's, and the claim says so
  np.testing.assert_allclose(got["gf_sharpness"], r["gf"].sharpness[15] / eta)
  assert last["claim"].startswith("at step 16 (the flows' sharpness and predicted loss at step 15")


def test_speed_variants_set_the_tracked_directions():
  s = central_flow_speed.get_config("").analysis.central_flow
  assert (s.k, s.k_max) == (3, 8)                  # 3, more added as the flow needs them
  s = central_flow_speed.get_config("quick_k6").analysis.central_flow
  assert (s.k, s.k_max, s.steps) == (6, 6, 40)     # exactly 6
  assert (central_flow_speed.get_config("k16").analysis.central_flow.k_max,
          central_flow_speed.get_config("k3").analysis.central_flow.k) == (16, 3)
  for bad in ("k0", "k17", "k6_k5", "kx", "slow", "quick_k"):
    with pytest.raises(ValueError, match="not allowed"):
      central_flow_speed.get_config(bad)


def test_speed_variants_set_the_seed_and_the_horizon():
  c = central_flow_speed.get_config("seed3_steps180")
  s = c.analysis.central_flow
  assert (c.seed, s.steps, s.segments, s.k, s.k_max) == (3, 180, 9, 3, 8)   # 20-step segments
  assert (c.train.steps, c.train.log_every) == (182, 1) and 181 in c.train.keep
  s = central_flow_speed.get_config("").analysis.central_flow
  assert s.steps // s.segments == 20
  c = central_flow_speed.get_config("quick_seed2")
  assert (c.seed, c.analysis.central_flow.steps, c.analysis.central_flow.segments) == (2, 40, 4)
  c = central_flow_speed.get_config("seeds_steps180")
  assert (list(c.sweep.seed), c.analysis.central_flow.steps) == ([0, 1, 2, 3, 4], 180)
  for bad in ("seed1_seed2", "seed01", "seedx", "seed1000", "steps190", "steps0", "steps420",
              "steps020", "quick_steps180", "steps20_steps40", "seeds_seed2"):
    with pytest.raises(ValueError, match="not allowed"):
      central_flow_speed.get_config(bad)


def test_seeds_figure_runs_one_sweep_and_draws_each_member(tmp_path):
  _, runs, draw = fig_cf.FIGURES["central_flow_speed_seeds"]
  assert list(runs(True)["run"].sweep.seed) == [0, 1, 2, 3, 4]
  assert runs(False)["run"].analysis.central_flow.steps == 180
  c = central_flow_speed.get_config("quick_seeds")
  c.model.widths, c.sweep.seed = (4,), [0, 2]
  c = common.with_flow(c, steps=2, segments=1, lanczos_iters=8)
  experiment.run(c, str(tmp_path / "run"), log=lambda *_: None)
  traj = trajectory.load(str(tmp_path / "run"))
  report = draw({"run": traj}, str(tmp_path), quick=True)
  assert [os.path.basename(f) for f in report["figures"]] == [
      "central_flow_speed_member0.png", "central_flow_speed_member1.png"]
  assert report["claims"][-1]["claim"].endswith("(seed=2)")
  assert len(report["notes"]) == 2
  # another seed is another initialization: the real run starts from another loss
  loss = traj.metrics["train_loss"][:, 0]
  assert loss[0] != loss[1]


def test_a_diverged_run_is_reported_not_analysed(tmp_path):
  # the flows need a finite real run: a diverged one gets a failing 'stays finite' claim (and
  # processes() names the step), instead of an error about missing checkpoints
  from experiments.configs import central_flow_gd
  c = central_flow_gd.get_config("quick")
  c.model.widths = (4,)
  c = common.with_flow(c, start=2, steps=2, segments=1, lanczos_iters=8)
  c.train.divergence_loss = 1e-3     # 'diverged' as soon as the loss exceeds this: at once
  experiment.run(c, str(tmp_path / "run"), log=lambda *_: None)
  traj = trajectory.load(str(tmp_path / "run"))
  assert traj.diverged[0]
  _, _, draw = fig_cf.FIGURES["central_flow_gd"]
  report = draw({"run": traj}, str(tmp_path), quick=True)
  assert [c["holds"] for c in report["claims"]] == [False]
  assert report["claims"][0]["claim"] == "GD: training stays finite"
  from analysis import central_flow_processes as cfp
  with pytest.raises(ValueError, match="member 0 diverged at step"):
    cfp.processes(traj, 0)
