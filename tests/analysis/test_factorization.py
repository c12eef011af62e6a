"""analysis.factorization against direct numpy computations on the kept parameters of tiny runs
through the engine (deep matrix completion, symmetric sensing, a deep linear network on a
teacher), and effective rank on matrices whose answer is known; the probe mode_strengths against
the same numbers recomputed from the checkpoints."""
import numpy as np
import pytest

from analysis import factorization as fz
from analysis import trajectory
from dynamics import experiment
from experiments.configs.common import base_config


def _run(tmp_path, name, model, data, **train):
  c = base_config(model=model["name"], data_name=data["name"], opt="gd")
  c.model.update({k: v for k, v in model.items() if k != "name"})
  c.data.update({k: v for k, v in data.items() if k != "name"})
  c.opt.learning_rate = 0.05
  c.train.update(dict(steps=40, log_every=10, chunk_steps=40, float64=True, keep="every:20"),
                 **train)
  c.sweep.model = {"init_scale": (0.3, 0.5)}
  if model["name"] == "deep_linear":
    c.probes.mode_strengths = {}
  return trajectory.load(experiment.Experiment.from_config(c).run(str(tmp_path / name),
                                                                  log=lambda *_: None))


def _np_params(traj, step, member):
  return {k: np.asarray(v[member], np.float64) for k, v in traj.params(step).items()}


def test_effective_rank_on_known_matrices():
  rng = np.random.default_rng(0)
  assert fz.effective_rank(np.outer(rng.standard_normal(5), rng.standard_normal(4))) == \
      pytest.approx(1.0, abs=1e-6)
  assert fz.effective_rank(np.eye(6)) == pytest.approx(6.0)
  assert fz.effective_rank(np.zeros((3, 3))) == 0.0
  m = rng.standard_normal((2, 5, 7))
  sv = np.linalg.svd(m[1], compute_uv=False)
  p = sv / sv.sum()
  got = fz.effective_rank(m)
  assert got.shape == (2,)
  assert got[1] == pytest.approx(np.exp(-np.sum(p * np.log(p))), rel=1e-12)


def test_completion_recovery_against_numpy_and_the_logged_test_loss(tmp_path):
  t = _run(tmp_path, "mc", dict(name="matrix_factorization", factorization="deep", width=5, rows=5,
                                depth=3), dict(name="matrix_completion", rows=5, cols=6, rank=2,
                                               spectrum=[2.0, 1.0], n_observed=12,
                                               symmetric=False))
  r = fz.recovery(t)
  info = t.dataset().info
  m_star, observed = info["M_star"], info["observed"]
  assert list(r["steps"]) == t.kept_steps == [0, 20, 40]
  for j, step in enumerate(t.kept_steps):
    for i in range(2):
      p = _np_params(t, step, i)
      w = p["W3"] @ p["W2"] @ p["W1"]                             # W = W_N ... W_1
      assert r["squared_error"][j, i] == pytest.approx(np.sum((w - m_star) ** 2), rel=1e-12)
      test = [(w[a, b] - m_star[a, b]) ** 2 for a in range(5) for b in range(6)
              if not observed[a, b]]
      ref = np.sqrt(sum(test) / sum(m_star[a, b] ** 2 for a in range(5) for b in range(6)
                                    if not observed[a, b]))
      assert r["unobserved_error"][j, i] == pytest.approx(ref, rel=1e-12)
      sv = np.linalg.svd(w, compute_uv=False)
      assert r["effective_rank"][j, i] == pytest.approx(
          np.exp(-np.sum(sv / sv.sum() * np.log(sv / sv.sum()))), rel=1e-10)
      # the engine's test loss is the mean of 0.5 (W_ab - M*_ab)^2 over the unobserved entries
      row = list(t.steps).index(step)
      assert t.metrics["test_loss"][i, row] == pytest.approx(0.5 * np.mean(test), rel=1e-10)


def test_gram_eigenvalues_of_symmetric_sensing(tmp_path):
  t = _run(tmp_path, "ms", dict(name="matrix_factorization", factorization="symmetric",
                                width=3), dict(name="matrix_sensing", dimension=4, rank=2,
                                               spectrum=[2.0, 1.0], n_train=40, n_test=5))
  g = fz.gram_eigenvalues(t)
  assert g["eigenvalues"].shape == (3, 2, 4)
  for j, step in enumerate(t.kept_steps):
    for i in range(2):
      u = _np_params(t, step, i)["U"]
      np.testing.assert_allclose(g["eigenvalues"][j, i],
                                 np.sort(np.linalg.eigvalsh(u @ u.T))[::-1], atol=1e-12)


def test_mode_strengths_and_the_probe_against_numpy(tmp_path):
  t = _run(tmp_path, "dl", dict(name="deep_linear", widths=[4, 3], init="gaussian"),
           dict(name="linear_teacher", in_dim=4, out_dim=3, n_train=16,
                singular_values=[3.0, 1.0], whiten=True))
  ds = t.dataset()
  u, s, vt = np.linalg.svd(ds.y_train.T @ ds.x_train / 16, full_matrices=False)
  r = fz.mode_strengths(t)
  np.testing.assert_allclose(r["s"], [3.0, 1.0], rtol=1e-12)
  assert r["time"].shape == (3,) and r["time"][-1] == pytest.approx(40 * 0.05)
  for j, step in enumerate(t.kept_steps):
    for i in range(2):
      p = _np_params(t, step, i)
      w = (p["W1"] @ p["W2"] @ p["W3"]).T                          # [out, in]
      c = u.T @ w @ vt.T                                           # every mode pair [3, 3]
      np.testing.assert_allclose(r["strengths"][j, i], np.diag(c)[:2], atol=1e-12)
      off = c - np.diag(np.diag(c))
      assert r["off_diagonal"][j, i] == pytest.approx(np.abs(off).max(), rel=1e-10)
      # the in-loop probe logged the same strengths and the coupling among the two modes
      row = list(t.steps).index(step)
      np.testing.assert_allclose(t.metrics["mode_strengths/strengths"][i, row], np.diag(c)[:2],
                                 atol=1e-12)
      assert t.metrics["mode_strengths/coupling"][i, row] == pytest.approx(
          np.abs(off[:2, :2]).max(), rel=1e-10)


def test_models_without_an_end_to_end_matrix_are_named(tmp_path):
  class Fake:
    config = {"model": {"name": "mlp"}}
    kept_steps = [0]
  with pytest.raises(ValueError, match="model 'mlp'.*deep_linear, matrix_factorization"):
    fz.end_to_end(Fake())


def test_bad_configs_name_the_field(tmp_path):
  from dynamics.config_utils import ConfigError
  from experiments.configs import saxe
  c = saxe.get_config("quick")
  c.data.whiten = False                  # Saxe's decoupled start needs Sigma_xx = I
  with pytest.raises(ConfigError, match="model.init='decoupled'.*data.whiten=True"):
    experiment.Experiment.from_config(c)
  c = base_config(model="mlp", data_name="digits", opt="gd")
  c.probes.mode_strengths = {}           # class labels: no input-output correlation to read
  with pytest.raises(ConfigError, match="probes.mode_strengths needs regression targets"):
    experiment.Experiment.from_config(c)
  with pytest.raises(ValueError, match="'orthogonal0'.*>= 1"):
    saxe.get_config("orthogonal0")
  assert not list(tmp_path.iterdir())
