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
    c.update(dict(widths=(8,), steps=16, segments=2, lanczos_iters=10))
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


def test_speed_variants_set_the_tracked_directions():
  assert central_flow_speed.get_config("").k == 3
  assert central_flow_speed.get_config("k6").k == 6
  c = central_flow_speed.get_config("quick_k6")
  assert (c.k, c.steps) == (6, 40)
  assert central_flow_speed.get_config("k16").k == 16
  for bad in ("k0", "k17", "k6_k5", "kx", "slow", "quick_k"):
    with pytest.raises(ValueError, match="kN"):
      central_flow_speed.get_config(bad)


def test_k6_figure_asks_its_config_for_six_directions(tmp_path):
  asked = []

  def tiny(variant=""):
    asked.append(variant)
    c = central_flow_speed.get_config(variant)
    c.update(dict(widths=(4,), steps=4, segments=1, lanczos_iters=8))
    return c

  draw = fig_cf._draw_for("gd", types.SimpleNamespace(get_config=tiny),
                          fig_cf.public_comparison, "central_flow_speed", variant="k6")
  report = draw({}, str(tmp_path), quick=True)
  assert asked == ["quick_k6"]
  assert report["notes"][0].startswith("k = 6 tracked directions")
  r = np.load(tmp_path / "processes.npz")
  assert r["cf/eigenvalues"].shape == (4, 6)
  assert "central_flow_speed_k6" in fig_cf.FIGURES
