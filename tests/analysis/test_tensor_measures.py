"""analysis.tensor_measures against independent numpy computations: component norms and errors
from explicit outer products, Fourier-slice spectra, tubal rank and principal angles slice by
slice with numpy's FFT and SVD (tiny runs through the engine), and the rise / jump measures on
curves whose crossings are known."""
import numpy as np
import pytest

from analysis import tensor_measures as tm
from analysis import trajectory
from dynamics import experiment
from experiments.configs.common import base_config
from tensor_reference import t_product_loop, t_transpose_def


def _run(tmp_path, model, data, lr, init_scales):
  c = base_config(model=model["name"], data_name=data["name"], opt="gd")
  c.model.update({k: v for k, v in model.items() if k != "name"})
  c.data.update({k: v for k, v in data.items() if k != "name"})
  c.opt.learning_rate = lr
  c.train.update(steps=40, log_every=10, chunk_steps=40, float64=True, keep="every:20")
  c.sweep.model = {"init_scale": init_scales}
  return trajectory.load(experiment.Experiment.from_config(c).run(
      str(tmp_path / model["name"]), log=lambda *_: None))


def _outer(vectors):
  out = vectors[0]
  for v in vectors[1:]:
    out = np.multiply.outer(out, v)
  return out


def test_cp_recovery_against_explicit_outer_products(tmp_path):
  t = _run(tmp_path, dict(name="cp_factorization", order=3, components=3),
           dict(name="tensor_completion", order=3, dimension=4, rank=2, norms=[1.0, 0.5],
                n_observed=30), 20.0, (0.3, 0.6))
  r = tm.cp_recovery(t)
  info = t.dataset().info
  w_star, seen = info["W_star"], info["observed"]
  assert list(r["steps"]) == t.kept_steps == [0, 20, 40]
  for j, step in enumerate(t.kept_steps):
    for i in range(2):
      f = np.asarray(t.params(step)["factors"][i], np.float64)     # [N, d, R]
      comps = [_outer([f[n][:, c] for n in range(3)]) for c in range(3)]
      norms = np.array([np.sqrt(np.sum(c ** 2)) for c in comps])
      np.testing.assert_allclose(r["norms"][j, i], norms, rtol=1e-12)
      w = sum(comps)
      test = np.sqrt(np.sum(((w - w_star) ** 2)[~seen]) / np.sum(w_star[~seen] ** 2))
      train = np.sqrt(np.sum(((w - w_star) ** 2)[seen]) / np.sum(w_star[seen] ** 2))
      assert r["test_error"][j, i] == pytest.approx(test, rel=1e-12)
      assert r["train_error"][j, i] == pytest.approx(train, rel=1e-12)
      assert r["significant"][j, i] == np.sum(norms > tm.SIGNIFICANT * norms.max())
  assert r["train_error"][-1, 0] < r["train_error"][0, 0]          # it trained


def test_cp_measures_refuse_another_model(tmp_path):
  t = _run(tmp_path, dict(name="tubal_factorization", tube=2, width=2),
           dict(name="tubal_sensing", dimension=3, tube=2, rank=1, n_train=10, n_test=4),
           0.01, (0.1,))
  with pytest.raises(ValueError, match="'cp_factorization'"):
    tm.cp_norms(t)


def _slice_angle(x, t_star, r):
  """sin of the largest principal angle, slice by slice of the full FFT (numpy)."""
  fx, ft = np.fft.fft(x, axis=2), np.fft.fft(t_star, axis=2)
  worst = 0.0
  for j in range(x.shape[2]):
    u = np.linalg.svd(fx[:, :, j])[0][:, :r]
    q = np.linalg.qr(ft[:, :, j])[0]
    cos = np.linalg.svd(q.conj().T @ u, compute_uv=False)
    worst = max(worst, float(np.sqrt(np.clip(1 - cos ** 2, 0, 1)).max()))
  return worst


def test_tubal_recovery_against_numpy_slices(tmp_path):
  t = _run(tmp_path, dict(name="tubal_factorization", tube=3, width=5),
           dict(name="tubal_sensing", dimension=4, tube=3, rank=1, n_train=40, n_test=4),
           0.05, (0.1, 0.5))
  r = tm.tubal_recovery(t)
  info = t.dataset().info
  x_star, t_star = info["X_star"], info["T"]
  for j, step in enumerate(t.kept_steps):
    for i in range(2):
      u = np.asarray(t.params(step)["U"][i], np.float64)
      x = t_product_loop(u, t_transpose_def(u))
      sv = np.stack([np.linalg.svd(np.fft.fft(x, axis=2)[:, :, k], compute_uv=False)
                     for k in range(3)])
      np.testing.assert_allclose(r["singular_values"][j, i], sv, rtol=1e-9, atol=1e-13)
      assert r["tubal_rank"][j, i] == np.sum(sv.max(axis=0) > tm.TUBAL_RTOL * sv.max())
      assert r["error"][j, i] == pytest.approx(
          np.linalg.norm(x - x_star) / np.linalg.norm(x_star), rel=1e-12)
      assert r["angle"][j, i] == pytest.approx(_slice_angle(x, t_star, 1), abs=1e-7)


def test_rise_steps_and_jumps_on_known_curves():
  steps = np.arange(0, 1001, 10.0)
  # three logistic rises to 1.0, 0.5, 0.25 centred at 700, 200, 450; one that stays small
  centre, height = np.array([700, 200, 450]), np.array([1.0, 0.5, 0.25])
  curves = height / (1 + np.exp(-(steps[:, None] - centre) / 10.0))
  norms = np.concatenate([curves, np.full((steps.size, 1), 1e-4)], axis=1)
  rise = tm.rise_steps(steps, norms[:, :3])
  np.testing.assert_allclose(rise[1], centre, atol=1.0)            # half-way at the centres
  np.testing.assert_allclose(rise[2] - rise[0], 20 * np.log(9), rtol=0.05)  # logistic's width
  j = tm.jumps(steps, norms)
  assert list(j["components"]) == [1, 2, 0]                        # in order of arrival
  assert j["distinct"] and j["one_at_a_time"] and not j["by_norm"]
  assert np.all(j["from_small"])
  np.testing.assert_allclose(j["overshoot"], 1.0)                  # logistic: no overshoot
  # two rises that overlap are distinct but not one at a time
  both = height[:2] / (1 + np.exp(-(steps[:, None] - np.array([500, 520])) / 30.0))
  j = tm.jumps(steps, both)
  assert j["distinct"] and not j["one_at_a_time"] and j["by_norm"]
  bump = both.copy()
  bump[50, 1] = 2.0                                                  # 4 x its final 0.5
  j = tm.jumps(steps, bump)
  assert j["overshoot"][list(j["components"]).index(1)] == pytest.approx(4.0)
  assert np.isnan(tm.rise_steps(steps, np.zeros((steps.size, 1)))).all()
