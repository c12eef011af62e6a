"""The central-flow figure code on the public example's data path (CIFAR-shaped digits, GELU,
PyTorch init, processes from initialization), shrunk to a width-8 network and 16 steps."""
import json
import os
import types

import numpy as np

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
