"""The two tensor-factorization figures on their quick settings: each holds its claims, and one
number of each is recomputed here from the run directory with numpy."""
import numpy as np
import pytest

from figure_report import check_report, claim, quick_run, reproduce_quick
from tensor_reference import t_product_loop, t_transpose_def


@pytest.mark.xdist_group("tensor_runs")           # the notebook reuses these runs
def test_cp_implicit_rank_figure(reproduce_root):
  report = reproduce_quick(reproduce_root, "cp_implicit_rank")
  check_report(reproduce_root, "cp_implicit_rank", report,
               ("rise one at a time", "significant components", "unobserved entries",
                "every larger init"))
  # the smallest init's final tensor, multiplied out here: its error on the unobserved entries
  traj = quick_run(reproduce_root, "cp_implicit_rank", "sweep")
  small = int(np.argmin(traj.coords["model.init_scale"]))
  f = np.asarray(traj.params(traj.kept_steps[-1])["factors"][small], np.float64)   # [N, d, R]
  w = np.einsum("ar,br,cr,dr->abcd", *f)
  info = traj.dataset().info
  hidden = ~info["observed"]
  err = np.linalg.norm((w - info["W_star"])[hidden]) / np.linalg.norm(info["W_star"][hidden])
  assert err == pytest.approx(claim(report, "relative error on the unobserved")["measured"],
                              rel=1e-9)
  norms = np.prod(np.linalg.norm(f, axis=1), axis=0)
  assert np.sum(norms > 0.05 * norms.max()) == traj.config["data"]["rank"]


@pytest.mark.xdist_group("tensor_runs")
def test_tubal_implicit_rank_figure(reproduce_root):
  report = reproduce_quick(reproduce_root, "tubal_implicit_rank")
  check_report(reproduce_root, "tubal_implicit_rank", report,
               ("tubal rank of U * U^T", "principal angle between", "grow with alpha",
                "more than the true tubal rank"))
  # the smallest alpha's X = U * U^T by the convolution of the tubes: error and slice ranks
  traj = quick_run(reproduce_root, "tubal_implicit_rank", "sweep")
  small = int(np.argmin(traj.coords["model.init_scale"]))
  u = np.asarray(traj.params(traj.kept_steps[-1])["U"][small], np.float64)
  x = t_product_loop(u, t_transpose_def(u))
  x_star = traj.dataset().info["X_star"]
  err = np.linalg.norm(x - x_star) / np.linalg.norm(x_star)
  assert err == pytest.approx(claim(report, "relative recovery error")["measured"]["error"],
                              rel=1e-9)
  sv = np.linalg.svd(np.moveaxis(np.fft.fft(x, axis=2), 2, 0), compute_uv=False)   # [k, n]
  r = traj.config["data"]["rank"]
  assert np.all(sv[:, r - 1] > 0.99) and np.all(sv[:, r] < 1e-3 * sv.max())
