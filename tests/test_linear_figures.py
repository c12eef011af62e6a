"""The deep-linear and matrix-factorization figures on their quick settings: each holds its
claims, and one number of each is recomputed here from the run directory with numpy."""
import numpy as np
import pytest

from analysis import linear_theory as lt
from figure_report import check_report, claim, quick_run, reproduce_quick


def _np(traj, step, member=0):
  return {k: np.asarray(v[member], np.float64) for k, v in traj.params(step).items()}


@pytest.mark.xdist_group("linear_runs")           # the notebook reuses these runs
def test_saxe_figure_follows_the_closed_form(reproduce_root):
  report = reproduce_quick(reproduce_root, "saxe")
  check_report(reproduce_root, "saxe", report, ("decoupled balanced init", "learning time to",
                                                "random orthogonal init", "scaled Gaussian"))
  # the kept parameters of the depth-2 run, multiplied out here, on Saxe's curve
  traj = quick_run(reproduce_root, "saxe", "depth2")
  ds = traj.dataset()
  u, s, vt = np.linalg.svd(ds.y_train.T @ ds.x_train / len(ds.x_train))
  k = 4
  lr = traj.config["opt"]["learning_rate"]
  w = [(_np(traj, st)["W1"] @ _np(traj, st)["W2"]).T for st in traj.kept_steps]
  strengths = np.array([np.diag(u.T @ m @ vt.T)[:k] for m in w])
  np.testing.assert_allclose(strengths[0], traj.config["model"]["init_scale"] ** 2, rtol=1e-12)
  curve = lt.saxe_curve(s[:k], strengths[0], np.asarray(traj.kept_steps) * lr)
  assert np.all(np.abs(strengths - curve).max(axis=0) / s[:k] < 0.02)
  assert np.abs(strengths[-1] / s[:k] - 1).max() < 0.05          # every mode (nearly) learned


@pytest.mark.xdist_group("linear_runs")
def test_incremental_learning_figure_staircase_and_slopes(reproduce_root):
  report = reproduce_quick(reproduce_root, "incremental_learning")
  check_report(reproduce_root, "incremental_learning", report,
               ("appearance step vs ln(1/alpha)", "staircase"))
  # the appearance steps of the smallest and largest alpha, from eigvalsh of U U^T here
  traj = quick_run(reproduce_root, "incremental_learning", "sensing")
  b = traj.batch()
  sigma = np.linalg.eigvalsh(lt.sensing_operator(np.asarray(b["x"]), np.asarray(b["y"])))[::-1][:3]
  eig = np.array([[np.linalg.eigvalsh(p @ p.T)[::-1][:3] for p in traj.params(st)["U"]]
                  for st in traj.kept_steps])                       # [T, member, 3]
  alphas = traj.coords["model.init_scale"]
  cross = [lt.crossing_steps(traj.kept_steps, eig[:, i], 0.1 * sigma) for i in (0, -1)]
  slope = (cross[1] - cross[0]) / np.log(alphas[0] / alphas[-1])
  pred = lt.appearance_slope(sigma, traj.config["opt"]["learning_rate"], discrete=True)
  np.testing.assert_allclose(slope, pred, rtol=0.15)
  assert np.all(np.diff(cross[1]) > 0)


@pytest.mark.xdist_group("linear_runs")
def test_overparameterization_figure_rates(reproduce_root):
  report = reproduce_quick(reproduce_root, "overparameterization")
  check_report(reproduce_root, "overparameterization", report,
               ("fitted slope of log error", "geometric decay"))
  # ||U U^T - M*||_F^2 of the k > r run from its kept U, and its late log-log slope
  traj = quick_run(reproduce_root, "overparameterization", "over")
  m_star = traj.dataset().info["M_star"]
  steps = np.asarray(traj.kept_steps)
  late = steps[steps >= steps[-1] / 10]
  err = [np.sum((_np(traj, st)["U"] @ _np(traj, st)["U"].T - m_star) ** 2) for st in late]
  slope = np.polyfit(np.log(late), np.log(err), 1)[0]
  assert -2.3 <= slope <= -1.7
  assert slope == pytest.approx(claim(report, "fitted slope")["measured"], abs=1e-9)


@pytest.mark.xdist_group("linear_runs")
def test_depth_low_rank_figure(reproduce_root):
  report = reproduce_quick(reproduce_root, "depth_low_rank")
  check_report(reproduce_root, "depth_low_rank", report, ("lower test error and lower effective",))
  measured = claim(report, "lower test error")["measured"]
  # the depth-3 run's final matrix, multiplied out here: its error on the unobserved entries
  traj = quick_run(reproduce_root, "depth_low_rank", "depth3_obs80")
  p = _np(traj, traj.kept_steps[-1])
  w = p["W3"] @ p["W2"] @ p["W1"]
  info = traj.dataset().info
  hidden = ~info["observed"]
  err = np.linalg.norm((w - info["M_star"])[hidden]) / np.linalg.norm(info["M_star"][hidden])
  assert err == pytest.approx(measured["test_error"]["depth3"], rel=1e-9)
  sv = np.linalg.svd(w, compute_uv=False)
  assert np.exp(-np.sum(sv / sv.sum() * np.log(sv / sv.sum()))) == pytest.approx(
      measured["effective_rank"]["depth3"], rel=1e-9)
