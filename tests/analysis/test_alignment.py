"""analysis.alignment: the measures on constructed weights, the target directions and cone rays
on constructed data (against brute force), the stable rank against numpy, the early-phase
direction ODE against the engine's first GD steps from a tiny balanced initialization, and the
in-loop probe against the post hoc measure on the same checkpoint."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from analysis import alignment as al
from analysis import trajectory
from dynamics import experiment
from dynamics import models
from dynamics.config_utils import ConfigError
from dynamics.data import synthetic
from experiments.configs.common import base_config


def test_measures_on_constructed_weights():
  s = np.sqrt(0.5)
  targets = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])       # unnormalized on purpose
  w = np.array([[3.0, 0.0, 0.0],            # on target 0
                [0.0, 0.0, 1.0],            # orthogonal to both
                [1.0, 1.0, 0.0],            # 45 degrees from both
                [-1.0, 0.0, 0.0],           # opposite target 0, orthogonal to target 1
                [0.1, 0.0, 1.0]])           # 84 degrees from target 0
  v = np.array([[1.0], [-1.0], [-1.0], [1.0], [-2.0]])
  x = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])             # no input has x . e3 > 0
  out = al.measures(jnp.asarray(w), jnp.asarray(v), jnp.asarray(x), targets, threshold=0.7)
  want = np.array([[1, 0], [0, 0], [s, s], [-1, 0], [0.1 / np.hypot(0.1, 1), 0]])
  np.testing.assert_allclose(out["cosines"], want, atol=1e-12)
  np.testing.assert_allclose(out["best_cosine"], want.max(1), atol=1e-12)
  np.testing.assert_allclose(out["matched_cosine"], [1, 0, s, -1, 0], atol=1e-12)
  assert float(out["aligned_share"]) == pytest.approx(2 / 5)       # rows 0 and 2 (0.707 >= 0.7)
  np.testing.assert_array_equal(out["dead"], [0, 1, 0, 1, 0])
  assert float(out["dead_share"]) == pytest.approx(2 / 5)
  np.testing.assert_allclose(out["norms"], np.linalg.norm(w, axis=1), rtol=1e-12)
  np.testing.assert_allclose(out["v_norms"], [1, 1, 1, 1, 2], rtol=1e-12)
  assert float(out["max_norm"]) == pytest.approx(3.0)
  assert float(al.measures(jnp.asarray(w), jnp.asarray(v), jnp.asarray(x), targets,
                           threshold=0.71)["aligned_share"]) == pytest.approx(1 / 5)


def test_stable_rank_and_singular_values_against_numpy():
  rng = np.random.default_rng(0)
  for w in (rng.standard_normal((7, 4)), np.outer(rng.standard_normal(6), rng.standard_normal(3)),
            rng.standard_normal((3, 9)) * np.array([5.0, 1.0, 0.1])[:, None]):
    sv = np.linalg.svd(w, compute_uv=False)
    assert float(al.stable_rank(jnp.asarray(w))) == pytest.approx(
        np.linalg.norm(w, "fro") ** 2 / np.linalg.norm(w, 2) ** 2, rel=1e-12)
    out = al.measures(jnp.asarray(w), jnp.ones((w.shape[0], 1)), jnp.asarray(w[:1]),
                      np.eye(w.shape[1])[:2])
    np.testing.assert_allclose(out["singular_values"], sv, rtol=1e-12)
  assert float(al.stable_rank(jnp.asarray(np.outer([1.0, 2.0], [3.0, 0.0, 1.0])))) == \
      pytest.approx(1.0)
  assert float(al.stable_rank(jnp.zeros((3, 2)))) == 0.0
  assert float(al.stable_rank(jnp.eye(4))) == pytest.approx(4.0)


def test_cone_targets_are_the_normalized_class_sums():
  ds = synthetic.separable_binary(seed=1, n_train=24, dim=5)
  t = al.target_directions(ds.x_train, ds.y_train, "cones")
  for row, s in zip(t, (ds.info["x_plus"], ds.info["x_minus"])):
    np.testing.assert_allclose(row, s / np.linalg.norm(s), atol=1e-7)
  # class ids 1 / 0 name the same classes as +1 / -1
  t01 = al.target_directions(ds.x_train, (ds.y_train > 0).astype(np.int32), "cones")
  np.testing.assert_allclose(t01, t, atol=1e-12)


def _brute_rays_2d(x):
  """In the plane a pointed cone's extreme rays are its two angularly outermost inputs."""
  ang = np.arctan2(x[:, 1], x[:, 0])
  ref = np.arctan2(x.sum(0)[1], x.sum(0)[0])
  rel = np.angle(np.exp(1j * (ang - ref)))
  return {int(np.argmin(rel)), int(np.argmax(rel))}


def test_cone_extreme_rays_against_brute_force():
  for seed in range(5):
    ds = synthetic.separable_binary(seed=seed, n_train=20, dim=2, min_norm=0.3)
    x, y = ds.x_train.astype(np.float64), ds.y_train
    rays = al.cone_extreme_rays(x, y)
    for name, mask in (("positive", y > 0), ("negative", y < 0)):
      idx = np.flatnonzero(mask)
      assert set(rays[name]) == {int(idx[i]) for i in _brute_rays_2d(x[idx])}
  # three dimensions: the four corners of a square cone, points inside it, a copy of a corner
  corners = np.array([[1, 1, 2], [1, -1, 2], [-1, 1, 2], [-1, -1, 2]], np.float64)
  inner = np.array([[0, 0, 1], [0.5, 0.2, 2], [1, 0, 2]], np.float64)
  x = np.concatenate([corners, inner, 3 * corners[:1], -corners[:2]])
  y = np.array([1.0] * 8 + [-1.0] * 2)
  rays = al.cone_extreme_rays(x, y)
  assert rays == {"positive": [0, 1, 2, 3], "negative": [8, 9]}
  # brute force: a corner is extreme because no nonnegative mix of the others reaches it
  for i, j, k in itertools.combinations(range(4), 3):
    assert np.linalg.matrix_rank(corners[[i, j, k]]) == 3


def test_xor_targets_recover_the_cluster_means():
  ds = synthetic.xor_clusters(seed=2, n_train=400, dim=30, mean_norm=4.0, label_noise=0.15,
                              signed=True)
  t = al.target_directions(ds.x_train, ds.y_train, "xor")
  mu1, mu2 = (ds.info[k] / np.linalg.norm(ds.info[k]) for k in ("mu1", "mu2"))
  assert abs(t[0] @ mu1) > 0.97 and abs(t[2] @ mu2) > 0.97
  np.testing.assert_allclose(t[1], -t[0])
  np.testing.assert_allclose(t[3], -t[2])


def test_bad_input_is_refused():
  x = np.eye(3)
  with pytest.raises(ValueError, match="kind='circle'.*'cones', 'rays', 'xor'"):
    al.target_directions(x, np.array([1.0, -1.0, 1.0]), "circle")
  with pytest.raises(ValueError, match="class-id labels must be 0 or 1"):
    al.target_directions(x, np.array([0, 1, 2]))
  with pytest.raises(ValueError, match="leaves 'w' and 'v'"):
    al.of_params({"W1": jnp.eye(2)}, x, np.eye(3)[:2])
  for eps in (0.0, -1e-3):
    with pytest.raises(ConfigError, match=rf"model.init_scale={eps}.*> 0"):
      models.build(dict(name="two_layer", init_scale=eps, balanced=True), in_dim=2, out_dim=1)


def test_balanced_init_is_balanced_at_small_scale():
  m = models.build(dict(name="two_layer", width=50, init_scale=1e-6, balanced=True),
                   in_dim=7, out_dim=1)
  p = m.init(jax.random.PRNGKey(3), jnp.float64)
  np.testing.assert_allclose(np.abs(p["v"][:, 0]), np.linalg.norm(p["w"], axis=1), rtol=1e-12)
  assert 0 < float(np.max(np.abs(p["w"]))) < 1e-5
  assert 0 < np.mean(p["v"][:, 0] > 0) < 1                 # both signs present


def _relu_run(tmp_path, name, steps, keep, probes=None, eps=1e-6, lr=0.05, dim=3, n=12,
              width=6, log_every=None, sweep=None):
  c = base_config(model="two_layer", data_name="separable_binary", opt="gd")
  c.data.update(dict(n_train=n, n_test=4, dim=dim, spread=0.6, seed=1))
  c.model.update(dict(width=width, init_scale=eps, balanced=True))
  c.opt.learning_rate = lr
  c.train.update(dict(steps=steps, log_every=log_every or steps, chunk_steps=steps,
                      float64=True, keep=keep))
  for k, v in (probes or {}).items():
    c.probes[k] = v
  if sweep:
    c.sweep.model = sweep
  return trajectory.load(experiment.Experiment.from_config(c).run(str(tmp_path / name),
                                                                  log=lambda *_: None))


def _direction_ode(w0, sign_v, x, y, t_end, dt=1e-4):
  """d u/dt = sign(v) (I - u u^T) g(u), g(u) = (1/n) sum_i y_i 1[u . x_i > 0] x_i (Min et al.'s
  early phase, norms negligible), integrated with small Euler steps in numpy."""
  u = w0 / np.linalg.norm(w0, axis=1, keepdims=True)
  for _ in range(int(round(t_end / dt))):
    g = ((x @ u.T > 0) * y[:, None]).T @ x / len(x)
    du = sign_v[:, None] * (g - np.sum(g * u, axis=1, keepdims=True) * u)
    u = u + dt * du
    u /= np.linalg.norm(u, axis=1, keepdims=True)
  return u


def test_early_direction_ode_against_the_engine_first_steps(tmp_path):
  lr, steps = 0.02, 100                               # time t = steps * lr = 2
  traj = _relu_run(tmp_path, "ode", steps, "every:50", lr=lr)
  x = np.asarray(traj.dataset().x_train, np.float64)
  y = np.asarray(traj.dataset().y_train, np.float64)
  p0, p1 = (traj.params(s, 0) for s in (0, steps))
  w0, w1 = np.asarray(p0["w"]), np.asarray(p1["w"])
  sign_v = np.sign(np.asarray(p0["v"])[:, 0])
  # the norms stay negligible: the outputs are ~1e-12 while the targets are +-1
  assert np.max(np.linalg.norm(w1, axis=1)) < 1e-4
  got = w1 / np.linalg.norm(w1, axis=1, keepdims=True)
  want = _direction_ode(w0, sign_v, x, y, steps * lr)
  moved = 1 - np.sum(got * (w0 / np.linalg.norm(w0, axis=1, keepdims=True)), axis=1)
  assert np.max(moved) > 0.05                          # the directions did move
  np.testing.assert_allclose(np.sum(got * want, axis=1), 1.0, atol=5e-3)
  # and GD's step is the ODE's Euler step: w <- w + lr v_j g(w_j), to the neglected f ~ 1e-12
  w, v = w0.copy(), np.asarray(p0["v"]).copy()
  for _ in range(steps):
    g = np.asarray(al.driving_vector(jnp.asarray(w), jnp.asarray(x), jnp.asarray(y)))
    h = np.maximum(x @ w.T, 0)                          # [N, m]
    w, v = w + lr * v[:, :1] * g, v + lr * (h.T @ y / len(x))[:, None]
  np.testing.assert_allclose(w1, w, rtol=1e-6, atol=0)


def test_probe_equals_the_post_hoc_measure_on_the_same_checkpoint(tmp_path):
  traj = _relu_run(tmp_path, "probe", 40, "every:20", eps=1e-3, lr=0.5, width=8, log_every=20,
                   probes={"alignment": {"threshold": 0.8}},
                   sweep={"init_scale": (1e-3, 1e-2)})
  assert traj.kept_steps == [0, 20, 40]
  for member in range(2):
    for row, step in enumerate(traj.steps):
      post = al.at_step(traj, int(step), member, threshold=0.8)
      for k in ("aligned_share", "stable_rank", "max_norm", "dead_share", "best_cosine",
                "norms", "singular_values", "matched_cosine", "cosines", "dead", "v_norms"):
        np.testing.assert_allclose(traj.metrics[f"alignment/{k}"][member, row], post[k],
                                   rtol=1e-12, atol=1e-15, err_msg=f"{k} at {step}")
  stacked = al.over_kept(traj, 1, threshold=0.8)
  assert list(stacked["steps"]) == [0, 20, 40] and stacked["cosines"].shape == (3, 8, 2)


def test_probe_refuses_a_model_without_w_and_v_and_non_binary_labels(tmp_path):
  c = base_config(model="mlp", data_name="separable_binary", opt="gd")
  c.model.widths = (4,)
  c.train.update(dict(steps=2, log_every=2, chunk_steps=2))
  c.probes.alignment = {}
  with pytest.raises(ConfigError, match="probes.alignment.*leaves 'w' and 'v'"):
    experiment.Experiment.from_config(c).run(str(tmp_path / "mlp"), log=lambda *_: None)
  c = base_config(model="two_layer", data_name="gaussian_clusters", opt="gd")
  c.data.num_classes = 3
  c.probes.alignment = {}
  with pytest.raises(ConfigError, match="probes.alignment needs binary training labels"):
    experiment.Experiment.from_config(c)


def test_xor_probe_in_loop_equals_the_post_hoc_measure(tmp_path):
  c = base_config(model="two_layer", data_name="xor_clusters", opt="gd")
  c.data.update(dict(n_train=32, n_test=8, dim=20, signed=True, label_noise=0.125))
  c.model.update(dict(width=6, init_scale=1e-2, balanced=True))
  c.opt.learning_rate = 0.1
  c.train.update(dict(steps=10, log_every=10, chunk_steps=10, float64=True, keep="every:10"))
  c.probes.alignment = {"kind": "xor", "threshold": 0.5}
  traj = trajectory.load(experiment.Experiment.from_config(c).run(str(tmp_path / "xor"),
                                                                  log=lambda *_: None))
  assert "alignment/matched_cosine" not in traj.metrics
  for row, step in enumerate(traj.steps):
    post = al.at_step(traj, int(step), 0, kind="xor", threshold=0.5)
    assert post["cosines"].shape == (6, 4)
    for k in ("cosines", "aligned_share", "stable_rank"):
      np.testing.assert_allclose(traj.metrics[f"alignment/{k}"][0, row], post[k], rtol=1e-12,
                                 atol=1e-15)


def test_aligned_stable_rank_against_constructed_rows():
  rng = np.random.default_rng(0)
  targets = np.array([[1.0, 0, 0], [0, 2.0, 0], [0, 0, -1.0]])
  # neurons 0, 1 along target 0, neuron 2 along 1: rows (3, 0, 0), (4, 0, 0), (0, 12, 0)
  norms = np.array([3.0, 4.0, 12.0])
  cos = np.array([[0.99, 0.1, 0.0], [0.9, -0.2, 0.3], [0.0, 0.97, 0.1]])
  assert np.isclose(al.aligned_stable_rank(norms, cos, targets), (9 + 16 + 144) / 144)
  # equal weight on two orthogonal directions: 2; everything along one: 1
  assert np.isclose(al.aligned_stable_rank(np.ones(4), np.eye(2)[[0, 1, 0, 1]], np.eye(2)), 2)
  assert np.isclose(al.aligned_stable_rank(np.ones(3), np.eye(2)[[1, 1, 1]], np.eye(2)), 1)
  # a batch, against stable_rank of the rows built with numpy
  norms = rng.uniform(0.1, 1, (5, 6))
  cos = rng.uniform(-1, 1, (5, 6, 3))
  t = rng.standard_normal((3, 4))
  unit = t / np.linalg.norm(t, axis=1, keepdims=True)
  for b in range(5):
    rows = norms[b][:, None] * unit[np.argmax(cos[b], axis=1)]
    sv = np.linalg.svd(rows, compute_uv=False)
    assert np.isclose(al.aligned_stable_rank(norms, cos, t)[b], (sv ** 2).sum() / sv[0] ** 2)


def test_ray_targets_are_the_extreme_rays_of_each_cone():
  corners = np.array([[1, 1, 2], [1, -1, 2], [-1, 1, 2], [-1, -1, 2]], np.float64)
  x = np.concatenate([corners, [[0, 0, 1], [0.5, 0.2, 2]], -corners[:2]])
  y = np.array([1.0] * 6 + [-1.0] * 2)
  t = al.target_directions(x, y, "rays")
  expected = np.concatenate([corners, -corners[:2]]) / np.sqrt(6)
  np.testing.assert_allclose(t, expected)
  # a neuron through the cone's centre: its best cosine with a ray is the half-angle's cosine
  m = al.measures(jnp.asarray([[0.0, 0.0, 1.0]]), jnp.ones((1, 1)), jnp.asarray(x), t)
  np.testing.assert_allclose(m["best_cosine"], [2 / np.sqrt(6)], rtol=1e-6)
