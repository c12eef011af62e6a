"""The central-flow figure code on the public example's data path (CIFAR-shaped digits, GELU,
PyTorch init, processes from initialization), shrunk to a width-8 network and 16 steps."""
import json
import os
import types

import numpy as np
import pytest

from experiments.configs import central_flow_speed
from experiments.figures import central_flow as fig_cf


def test_speed_configuration_draws_with_the_public_comparison(tmp_path):
  def tiny(variant=""):
    c = central_flow_speed.get_config("quick")
    # k_max = k: no direction is added (each addition recompiles; tested in test_central_flow)
    c.update(dict(widths=(8,), steps=16, segments=2, lanczos_iters=10, k_max=c.k))
    return c

  draw = fig_cf._draw_for("gd", types.SimpleNamespace(get_config=tiny),
                          fig_cf.public_comparison, "central_flow_speed")
  report = draw({}, str(tmp_path), quick=True)
  assert os.path.getsize(tmp_path / "central_flow_speed.png") > 20_000
  last = report["claims"][-1]
  assert "public code" in last["expected"]
  got = last["measured"]
  assert set(got) == set(fig_cf.PUBLIC_AT_180)
  json.dumps(report["claims"])             # report.json can hold it
  assert "tracked directions" in report["notes"][0]
  saved = np.load(tmp_path / "processes.npz")
  assert {"real/loss", "cf/predicted_loss", "gf/sharpness", "marks", "dist_mid_cf"} <= set(saved)
  c = tiny()
  r = fig_cf.processes(c)
  eta = c.opt.learning_rate
  assert r["n_params"] == 3072 * 8 + 8 + 8 * 4 + 4
  # the comparison reads the last mark (16) of this short run, in raw sharpness units
  np.testing.assert_allclose(got["gd_sharpness"], r["real"]["sharpness"][16] / eta)
  np.testing.assert_allclose(got["dist_gd_cf"], r["dist_real_cf"][-1])
  # the flows log steps 0..15 here: their numbers are step 15's, and the claim says so
  np.testing.assert_allclose(got["gf_sharpness"], r["gf"].sharpness[15] / eta)
  assert last["claim"].startswith("at step 16 (the flows' sharpness and predicted loss at step 15")


def test_speed_variants_set_the_tracked_directions():
  c = central_flow_speed.get_config("")
  assert (c.k, c.k_max) == (3, 8)                  # 3, more added as the flow needs them
  c = central_flow_speed.get_config("quick_k6")
  assert (c.k, c.k_max, c.steps) == (6, 6, 40)     # exactly 6
  assert (central_flow_speed.get_config("k16").k_max, central_flow_speed.get_config("k3").k) == (
      16, 3)
  for bad in ("k0", "k17", "k6_k5", "kx", "slow", "quick_k"):
    with pytest.raises(ValueError, match="kN"):
      central_flow_speed.get_config(bad)


def test_speed_variants_set_the_seed_and_the_horizon():
  c = central_flow_speed.get_config("seed3_steps180")
  assert (c.seed, c.steps, c.segments, c.k, c.k_max) == (3, 180, 9, 3, 8)   # 20-step segments
  assert central_flow_speed.get_config("").steps // central_flow_speed.get_config("").segments == 20
  c = central_flow_speed.get_config("quick_seed2")
  assert (c.seed, c.steps, c.segments) == (2, 40, 4)
  for bad in ("seed1_seed2", "seed01", "seedx", "seed1000", "steps190", "steps0", "steps420",
              "steps020", "quick_steps180", "steps20_steps40"):
    with pytest.raises(ValueError, match="seedN"):
      central_flow_speed.get_config(bad)


def _tiny_speed_configs(monkeypatch, steps):
  """Makes central_flow_speed.get_config return a 4-unit network run for `steps` steps;
  returns (the list of variants asked for, the tiny get_config)."""
  asked, full = [], central_flow_speed.get_config

  def tiny(variant=""):
    asked.append(variant)
    c = full(variant)
    c.update(dict(widths=(4,), steps=steps, segments=1, lanczos_iters=8))
    return c

  monkeypatch.setattr(central_flow_speed, "get_config", tiny)
  return asked, tiny


def test_k3_figure_asks_its_config_for_exactly_three_directions(tmp_path, monkeypatch):
  asked, _ = _tiny_speed_configs(monkeypatch, steps=4)
  _, _, draw = fig_cf.FIGURES["central_flow_speed_k3"]
  report = draw({}, str(tmp_path), quick=True)
  assert asked == ["quick_k3"]
  assert report["notes"][0].startswith("k = 3 tracked directions (at most 3)")
  r = np.load(tmp_path / "processes.npz")
  assert r["cf/eigenvalues"].shape == (4, 3) and int(r["k_max"]) == 3
  np.testing.assert_array_equal(r["k_cf"], 3)


@pytest.mark.parametrize("quick,variant", [(True, "quick_seed2"), (False, "seed2_steps180")])
def test_seed_figures_ask_for_their_seed_and_horizon(tmp_path, monkeypatch, quick, variant):
  asked, tiny = _tiny_speed_configs(monkeypatch, steps=2)
  got = []

  def processes(c, cache=None):          # the processes themselves: the k3 test above
    got.append(c)
    raise InterruptedError

  monkeypatch.setattr(fig_cf, "processes", processes)
  _, _, draw = fig_cf.FIGURES["central_flow_speed_seed2"]
  with pytest.raises(InterruptedError):
    draw({}, str(tmp_path), quick=quick)
  assert asked == [variant] and got[0].seed == 2
  # another seed is another initialization: the real run starts from another loss than seed 0's
  loss_fn, p0, batch = fig_cf.problem(tiny("quick"))
  _, p2, _ = fig_cf.problem(got[0])
  assert float(loss_fn(p0, batch)) != float(loss_fn(p2, batch))
