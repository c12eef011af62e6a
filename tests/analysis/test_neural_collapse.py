"""analysis.neural_collapse against direct numpy implementations of the papers' formulas (the
d x d pseudo-inverse of Sigma_B, loops over samples and class pairs), at exact collapse, under
rotations and scalings, and on the inputs other tools fail on."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from analysis import neural_collapse as nc

jax.config.update("jax_enable_x64", True)


def reference(H, y, C, W=None, b=None):
  """The formulas of REFERENCE.md Sec. 4, written directly (float64 numpy)."""
  H, y = np.asarray(H, np.float64), np.asarray(y)
  N, d = H.shape
  mu = np.stack([H[y == c].mean(0) for c in range(C)])
  muG = mu.mean(0)
  Mt = (mu - muG).T                                             # d x C, the papers' M~
  Sw = sum(np.outer(H[i] - mu[y[i]], H[i] - mu[y[i]]) for i in range(N)) / N
  Sb = Mt @ Mt.T / C
  out = dict(nc1=np.trace(Sw @ np.linalg.pinv(Sb)) / C, nc1_trace=np.trace(Sw) / np.trace(Sb))
  V = [np.mean([np.sum((h - mu[c]) ** 2) for h in H[y == c]]) for c in range(C)]
  out["cdnv"] = np.mean([(V[a] + V[c]) / (2 * np.sum((mu[a] - mu[c]) ** 2))
                         for a, c in itertools.combinations(range(C), 2)])

  def shape(A, s):
    norms = np.linalg.norm(A, axis=1)
    cos = [A[a] @ A[c] / (norms[a] * norms[c]) for a in range(C) for c in range(C) if a != c]
    G = A @ A.T
    etf = (np.eye(C) - np.ones((C, C)) / C) / np.sqrt(C - 1)
    return {f"equinorm_{s}": norms.std() / norms.mean(),
            f"equiangular_{s}": np.mean([abs(x + 1 / (C - 1)) for x in cos]),
            f"cos_std_{s}": np.std(cos),
            f"etf_{s}": np.linalg.norm(G / np.linalg.norm(G) - etf)}
  out.update(shape(Mt.T, "features"))
  if W is not None:
    W = np.asarray(W, np.float64)
    out.update(shape(W, "weights"))
    out["nc3"] = np.linalg.norm(W.T / np.linalg.norm(W) - Mt / np.linalg.norm(Mt)) ** 2
    logits = H @ W.T + (0 if b is None else np.asarray(b))
    nearest = [np.argmin([np.sum((h - mu[c]) ** 2) for c in range(C)]) for h in H]
    out["nc4"] = np.mean(np.argmax(logits, 1) != np.asarray(nearest))
  return out


def random_problem(N, d, C, seed=0, spread=1.0):
  rng = np.random.RandomState(seed)
  y = np.concatenate([np.arange(C), rng.randint(0, C, N - C)])      # every class, unbalanced
  centres = rng.randn(C, d) * 3
  H = centres[y] + spread * rng.randn(N, d)
  W = centres + 0.5 * rng.randn(C, d)
  b = 0.1 * rng.randn(C)
  return H, y, W, b


@pytest.mark.parametrize("N,d,C", [(60, 8, 4), (50, 3, 6), (40, 20, 10)])   # d > C, C > d
def test_every_measure_matches_the_direct_formula(N, d, C):
  H, y, W, b = random_problem(N, d, C)
  got = nc.measures(H, y, C, W, b)
  want = reference(H, y, C, W, b)
  assert set(got) == set(nc.KEYS_FEATURES + nc.KEYS_WEIGHTS) == set(want)
  for k in want:
    np.testing.assert_allclose(float(got[k]), want[k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_exact_collapse_gives_zero():
  C, d, per = 5, 7, 6
  vertices = nc.simplex_etf(C, d, scale=3.0, key=jax.random.PRNGKey(1))
  np.testing.assert_allclose(np.linalg.norm(vertices, axis=1), 3.0)
  np.testing.assert_allclose(np.asarray(vertices).sum(0), 0, atol=1e-12)
  y = np.repeat(np.arange(C), per)
  H = np.asarray(vertices)[y] + 2.5                         # a global offset: mu_G != 0
  W = 0.7 * np.asarray(vertices)                            # self-dual
  got = nc.measures(H, y, C, W, bias=-W @ np.full(d, 2.5))  # the bias cancels the offset
  for k, v in got.items():
    assert abs(float(v)) < 1e-12, (k, float(v))


def test_simplex_etf_in_the_smallest_dimension():
  v = np.asarray(nc.simplex_etf(4, 3))
  G = v @ v.T
  np.testing.assert_allclose(G, (4 * np.eye(4) - 1) / 3, atol=1e-12)      # cos = -1/(C-1)
  with pytest.raises(ValueError, match="dim=2"):
    nc.simplex_etf(4, 2)


def test_nc1_is_invariant_to_rotation_scaling_and_translation():
  H, y, W, b = random_problem(80, 6, 4, seed=3)
  Q, _ = np.linalg.qr(np.random.RandomState(5).randn(6, 6))
  base = nc.measures(H, y, 4, W, b)
  moved = nc.measures(7.5 * H @ Q + 3.0, y, 4, W @ Q, b)
  for k in ("nc1", "nc1_trace", "cdnv", "equinorm_features", "equiangular_features",
            "etf_features", "nc3", "etf_weights"):
    np.testing.assert_allclose(float(moved[k]), float(base[k]), rtol=1e-9, err_msg=k)


def test_rank_deficient_means_and_a_one_sample_class_stay_finite_and_exact():
  rng = np.random.RandomState(2)
  C, d = 5, 10
  # class means in a 2-dimensional subspace: rank(M) = 2 < C - 1, so Sigma_B has rank 2
  centres = rng.randn(C, 2) @ rng.randn(2, d)
  y = np.concatenate([[0], np.repeat(np.arange(1, C), 8)])     # class 0 has one sample
  H = centres[y] + 0.3 * rng.randn(len(y), d)
  H[0] = centres[0]
  got = nc.measures(H, y, C)
  want = reference(H, y, C)
  for k in want:
    assert np.isfinite(float(got[k])), k
    np.testing.assert_allclose(float(got[k]), want[k], rtol=1e-8, err_msg=k)


def test_float32_features_of_norm_1e4_match_float64():
  H, y, W, b = random_problem(200, 16, 10, seed=7, spread=0.5)
  H = 1e4 * H / np.linalg.norm(H, axis=1, keepdims=True)
  want = nc.measures(H, y, 10, W, b)
  got = nc.measures(H.astype(np.float32), y, 10, W.astype(np.float32), b.astype(np.float32))
  for k in want:
    assert np.isfinite(float(got[k])), k
    np.testing.assert_allclose(float(got[k]), float(want[k]), rtol=2e-3, atol=1e-6, err_msg=k)


def test_jit_and_vmap_over_members():
  Hs, Ws = zip(*[(h, w) for h, _, w, _ in (random_problem(30, 5, 3, seed=s) for s in range(3))])
  _, y, _, _ = random_problem(30, 5, 3, seed=0)
  fn = jax.jit(jax.vmap(lambda H, W: nc.measures(H, y, 3, W)))
  got = fn(jnp.stack(Hs), jnp.stack(Ws))
  for i in range(3):
    want = reference(Hs[i], y, 3, Ws[i])
    np.testing.assert_allclose(float(got["nc1"][i]), want["nc1"], rtol=1e-9)
    np.testing.assert_allclose(float(got["nc3"][i]), want["nc3"], rtol=1e-9)


def test_bad_input_is_refused_by_name():
  H, y, W, _ = random_problem(20, 4, 3)
  with pytest.raises(ValueError, match="labels must lie in 0..2"):
    nc.measures(H, np.where(y == 0, 3, y), 3)
  with pytest.raises(ValueError, match="labels must be \\[N\\] with N = 20"):
    nc.measures(H, y[:-1], 3)
  with pytest.raises(ValueError, match="num_classes=1"):
    nc.measures(H, np.zeros(20, int), 1)
  with pytest.raises(ValueError, match="class\\(es\\) \\[3\\] have no samples"):
    nc.measures(H, y, 4)
  with pytest.raises(ValueError, match="weights must be \\[C, d\\] = \\[3, 4\\]"):
    nc.measures(H, y, 3, W[:, :3])


@pytest.mark.parametrize("cfg,in_dim,x", [
    (dict(name="mlp", widths=[5, 4], parameterization="mup"), 3, "float"),
    (dict(name="mlp", widths=[5], bias=False, parameterization="ntk"), 3, "float"),
    (dict(name="deep_linear", widths=[5, 4]), 3, "float"),
    (dict(name="two_layer", width=6, output_scale=0.5), 3, "float"),
    (dict(name="transformer", d_model=8, n_heads=2, d_head=4, d_mlp=16), 3, "tokens"),
])
def test_readout_maps_the_features_to_the_outputs(cfg, in_dim, x):
  from dynamics import models
  m = models.build(cfg, in_dim=in_dim, out_dim=5)
  params = m.init(jax.random.PRNGKey(0), dtype=jnp.float64)
  rng = np.random.RandomState(0)
  x = rng.randint(0, 5, (7, in_dim)) if x == "tokens" else rng.randn(7, in_dim)
  out, h = m.apply(params, jnp.asarray(x), return_features=True)
  w, b = m.readout(params)
  assert w.shape == (5, h.shape[1])
  np.testing.assert_allclose(h @ w.T + (0 if b is None else b[None, :]), out, atol=1e-12)


def test_the_probe_logs_what_the_post_hoc_measurement_computes(tmp_path):
  # the in-loop probe at a kept step against analysis.neural_collapse.from_trajectory on that
  # step's checkpoint, for each member of a two-rate sweep (float64)
  import tiny
  from analysis import trajectory
  from dynamics import experiment
  c = tiny.config(steps=40, log_every=10, float64=True)
  c.probes.neural_collapse = {}
  experiment.run(c, str(tmp_path / "run"), log=lambda *_: None)
  traj = trajectory.load(str(tmp_path / "run"))
  row = list(traj.steps).index(40)
  for member in range(2):
    post = nc.from_trajectory(traj, 40, member)
    layers = nc.per_layer(traj, 40, member)
    assert len(layers) == 1                               # widths (8,): one hidden layer
    np.testing.assert_allclose(layers[-1]["nc1"], post["nc1"], rtol=1e-12)
    for k in nc.KEYS_FEATURES + nc.KEYS_WEIGHTS:
      np.testing.assert_allclose(traj.metrics[f"neural_collapse/{k}"][member, row], post[k],
                                 rtol=1e-9, atol=1e-12, err_msg=k)


def test_the_probe_refuses_data_without_class_labels():
  from dynamics import experiment
  from dynamics.config_utils import ConfigError
  from experiments.configs.common import base_config
  c = base_config("mlp", "linear_teacher", "gd")
  c.probes.neural_collapse = {}
  with pytest.raises(ConfigError, match="probes.neural_collapse needs class labels"):
    experiment.Experiment.from_config(c)


def _ufm(loss, K, n, d, lam_w, lam_h, **model):
  from dynamics import losses, models
  m = models.build(dict(name="ufm", dim=d, lambda_W=lam_w, lambda_H=lam_h, **model),
                   in_dim=K * n, out_dim=K)
  params = m.init(jax.random.PRNGKey(0), dtype=jnp.float64)
  x, y = jnp.eye(K * n), jnp.repeat(jnp.arange(K), n)
  per_example = losses.build(dict(name=loss)).per_example
  return m, params, x, y, lambda p: jnp.mean(per_example(m.apply(p, x), y)) + m.penalty(p)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("lams", [(0.05, 0.02), (0.01, 0.003)])
def test_ufm_closed_form_is_the_minimum_a_numerical_solver_finds(loss, lams):
  # reference: L-BFGS (scipy) on the whole objective from a random start, float64
  import scipy.optimize
  from jax.flatten_util import ravel_pytree
  K, n, d = 3, 2, 4
  m, params, x, y, objective = _ufm(loss, K, n, d, *lams)
  flat, unravel = ravel_pytree(params)
  f = jax.jit(lambda v: objective(unravel(v)))
  g = jax.jit(jax.grad(f))
  r = scipy.optimize.minimize(lambda v: float(f(v)), np.asarray(flat),
                              jac=lambda v: np.asarray(g(v)), method="L-BFGS-B",
                              options=dict(gtol=1e-13, ftol=1e-16, maxiter=20000))
  theory = nc.ufm_optimum(loss, K, n, *lams)
  np.testing.assert_allclose(r.fun, theory["objective"], rtol=1e-9)
  p = unravel(jnp.asarray(r.x))
  np.testing.assert_allclose(np.linalg.norm(p["H"], axis=1), theory["feature_norm"], rtol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(p["W"], axis=1), theory["weight_norm"], rtol=1e-5)
  np.testing.assert_allclose(p["b"] - (p["b"].mean() if loss == "cross_entropy" else 0),
                             theory["bias"], atol=1e-6)
  got = nc.measures(p["H"], y, K, p["W"], p["b"])
  for k in ("nc1", "nc3", "nc4"):
    assert float(got[k]) < 1e-9, (k, float(got[k]))
  assert float(got["etf_features"]) < 1e-5 and float(got["etf_weights"]) < 1e-5


def test_ufm_optimum_when_the_regularization_wins():
  # s = sqrt(lambda_W lambda_H K N) >= 1: W = H = 0, logits constant
  th = nc.ufm_optimum("cross_entropy", 4, 5, 1.0, 1.0)
  assert th["p"] == 0 and th["feature_norm"] == 0
  np.testing.assert_allclose(th["objective"], np.log(4))
  np.testing.assert_allclose(nc.ufm_optimum("mse", 4, 5, 1.0, 1.0)["objective"], 3 / 8)
  with pytest.raises(ValueError, match="lambda_b = 0"):
    nc.ufm_optimum("mse", 4, 5, 0.01, 0.01, lambda_b=0.1)


def test_ufm_penalty_and_the_perturbed_models_anchor():
  from dynamics.models import ufm
  m, params, x, y, objective = _ufm("mse", 3, 2, 4, 0.05, 0.02, lambda_b=0.3,
                                    anchor_weight=2.0, anchor_scale=0.5, anchor_seed=4)
  h0 = 0.5 * jax.random.normal(jax.random.PRNGKey(4), (6, 4), jnp.float64)
  want = (0.05 / 2 * np.sum(params["W"] ** 2) + 0.02 / 2 * np.sum(params["H"] ** 2)
          + 0.3 / 2 * np.sum(params["b"] ** 2) + 2.0 / (2 * 6) * np.sum((params["H"] - h0) ** 2))
  np.testing.assert_allclose(m.penalty(params), want, rtol=1e-12)
  np.testing.assert_allclose(ufm.anchor(params, m.config), h0)
  out, feats = m.apply(params, x, return_features=True)
  np.testing.assert_allclose(feats, params["H"])                 # one-hot samples pick rows
  np.testing.assert_allclose(out, params["H"] @ params["W"].T + params["b"][None, :])


def test_layers_are_the_hidden_activations_of_a_numpy_forward_pass():
  from dynamics import models
  for name, act in (("mlp", np.tanh), ("deep_linear", lambda z: z)):
    cfg = dict(name=name, widths=[6, 5]) | ({"activation": "tanh"} if name == "mlp" else {})
    m = models.build(cfg, in_dim=4, out_dim=3)
    p = {k: np.asarray(v) for k, v in m.init(jax.random.PRNGKey(2), dtype=jnp.float64).items()}
    x = np.random.RandomState(0).randn(9, 4)
    h, want = x, []
    for l in (1, 2):
      h = act(h @ p[f"W{l}"] + (p[f"b{l}"] if f"b{l}" in p else 0))
      want.append(h)
    got = m.layers(p, jnp.asarray(x))
    assert len(got) == 2
    for g, w in zip(got, want):
      np.testing.assert_allclose(g, w, rtol=1e-12)
    np.testing.assert_allclose(m.apply(p, jnp.asarray(x), return_features=True)[1], want[-1])


def test_over_kept_steps_and_zero_error_step_read_the_run(tmp_path):
  # over_kept_steps against from_trajectory / per_layer / numpy SVD at each kept step, and T0
  # against a direct scan of the logged train accuracy
  import tiny
  from analysis import trajectory
  from dynamics import experiment
  c = tiny.config(steps=40, log_every=10, float64=True)
  c.train.keep = "every:20"
  experiment.run(c, str(tmp_path / "run"), log=lambda *_: None)
  traj = trajectory.load(str(tmp_path / "run"))
  for member in range(2):
    got = nc.over_kept_steps(traj, member, layers=True)
    assert list(got["steps"]) == list(traj.kept_steps)
    for j, s in enumerate(traj.kept_steps):
      want = nc.from_trajectory(traj, int(s), member)
      for k in want:
        np.testing.assert_allclose(got[k][j], want[k], rtol=1e-12, err_msg=k)
      np.testing.assert_allclose(got["layers_nc1"][j],
                                 [d["nc1"] for d in nc.per_layer(traj, int(s), member)])
      h = traj.model().layers(traj.params(int(s), member), traj.problem().data["x_train"])[-1]
      y = np.asarray(traj.problem().data["y_train"])
      means = np.stack([np.asarray(h)[y == k].mean(0) for k in range(int(y.max()) + 1)])
      sv = np.linalg.svd(means - means.mean(0), compute_uv=False)
      np.testing.assert_allclose(got["mean_singular_values"][j], sv / sv[0], atol=1e-10)
    acc = traj.metrics["train_acc"][member]
    first = [s for s, a in zip(traj.steps, acc) if a >= 1.0]
    assert nc.zero_error_step(traj)[member] == (first[0] if first else -1)


def test_zero_error_step_is_minus_one_when_never_reached():
  class T:
    steps = np.array([0, 10, 20])
    metrics = {"train_acc": np.array([[0.5, 1.0, 1.0], [0.2, 0.9, 0.99]])}
  assert nc.zero_error_step(T()).tolist() == [10, -1]


def test_class_mean_singular_values_of_an_etf_and_of_low_rank_means():
  C = 5
  etf = np.asarray(nc.simplex_etf(C, 8, scale=3.0, key=jax.random.PRNGKey(0)))
  y = np.repeat(np.arange(C), 4)
  sv = nc.class_mean_singular_values(etf[y], y, C)
  np.testing.assert_allclose(sv[:-1], 1.0, atol=1e-12)           # all equal but the last
  assert abs(sv[-1]) < 1e-12
  u, s, vt = np.linalg.svd(etf, full_matrices=False)
  s[1] *= 0.01                                                    # one direction squeezed
  sv = nc.class_mean_singular_values((u * s[None, :] @ vt)[y], y, C)
  np.testing.assert_allclose(sv, [1, 1, 1, 0.01, 0], atol=1e-12)


def test_log_linear_fit_against_the_normal_equations():
  rs = np.random.RandomState(0)
  v = 10 ** (0.5 - 0.7 * np.arange(6) + 0.05 * rs.randn(3, 6))
  fit = nc.log_linear_fit(v)
  x = np.tile(np.arange(6.0), 3)
  a = np.stack([np.ones_like(x), x], 1)
  coef = np.linalg.solve(a.T @ a, a.T @ np.log10(v).ravel())
  np.testing.assert_allclose([fit["intercept"], fit["slope"]], coef, rtol=1e-10)
  resid = np.log10(v).ravel() - a @ coef
  r2 = 1 - resid @ resid / np.sum((np.log10(v).ravel() - np.log10(v).mean()) ** 2)
  np.testing.assert_allclose(fit["r2"], r2, rtol=1e-10)
  np.testing.assert_allclose(fit["factor_per_layer"], 10 ** -coef[1])
  exact = nc.log_linear_fit(10.0 ** (-0.3 * np.arange(4)))
  assert abs(exact["slope"] + 0.3) < 1e-12 and abs(exact["r2"] - 1) < 1e-12
  with pytest.raises(ValueError, match="finite and > 0"):
    nc.log_linear_fit([1.0, 0.0, 0.1])
