"""Matrix sensing and completion data: M*, the measurements, and the engine's loss and gradient
on them against a direct numpy loop and finite differences."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynamics import data, losses, models
from dynamics.config_utils import ConfigError


def engine_loss(model, ds):
  x, y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
  return lambda p: jnp.mean(losses.mse(model.apply(p, x), y))


def finite_difference(loss, params, h=1e-6):
  out = {}
  for k, v in params.items():
    v = np.asarray(v)
    g = np.zeros_like(v)
    for idx in np.ndindex(v.shape):
      e = np.zeros_like(v)
      e[idx] = h
      g[idx] = (loss({**params, k: jnp.asarray(v + e)}) -
                loss({**params, k: jnp.asarray(v - e)})) / (2 * h)
    out[k] = g
  return out


def test_sensing_measurements_and_spectrum():
  ds = data.load(dict(name="matrix_sensing", dimension=5, rank=2, spectrum=[2.0, 0.5],
                      n_train=20000, n_test=7, seed=3))
  m = ds.info["M_star"]
  assert ds.x_train.shape == (20000, 5, 5) and ds.y_train.shape == (20000, 1)
  assert ds.x_test.shape == (7, 5, 5) and ds.in_dim == 25 and ds.out_dim == 1
  np.testing.assert_allclose(np.linalg.eigvalsh(m)[::-1], [2.0, 0.5, 0, 0, 0], atol=1e-12)
  np.testing.assert_allclose(ds.x_train, np.swapaxes(ds.x_train, 1, 2), rtol=0, atol=0)
  for x, y in ((ds.x_train[:50], ds.y_train[:50]), (ds.x_test, ds.y_test)):
    np.testing.assert_allclose(y[:, 0], [np.sum(a * m) for a in x], rtol=1e-12, atol=1e-12)
  # E[<A, M> A] = M: the linearised sensing operator concentrates on M*
  mhat = np.einsum("n,nab->ab", ds.y_train[:, 0], ds.x_train) / len(ds.y_train)
  assert np.abs(mhat - m).max() < 0.1
  # diagonal entries N(0, 1), off-diagonal N(0, 1/2)
  a = ds.x_train
  np.testing.assert_allclose(a[:, 0, 0].var(), 1.0, rtol=0.05)
  np.testing.assert_allclose(a[:, 0, 1].var(), 0.5, rtol=0.05)
  # the seed's streams: more measurements leave M* unchanged
  small = data.load(dict(name="matrix_sensing", dimension=5, rank=2, spectrum=[2.0, 0.5],
                         n_train=3, seed=3))
  np.testing.assert_array_equal(small.info["M_star"], m)


@pytest.mark.parametrize("symmetric", [True, False])
def test_completion_splits(symmetric):
  rows, cols = (5, 5) if symmetric else (4, 6)
  ds = data.load(dict(name="matrix_completion", rows=rows, cols=cols, rank=2,
                      spectrum=[3.0, 1.0], n_observed=9, symmetric=symmetric, seed=1))
  m = ds.info["M_star"]
  np.testing.assert_allclose(np.linalg.svd(m, compute_uv=False)[:3], [3.0, 1.0, 0.0],
                             atol=1e-12)
  if symmetric:
    np.testing.assert_allclose(m, m.T, atol=1e-15)
    assert np.linalg.eigvalsh(m).min() > -1e-12
  assert ds.x_train.shape == (9, rows, cols) and ds.x_test.shape == (rows * cols - 9, rows, cols)
  assert ds.info["observed"].sum() == 9
  seen = set()
  for x, y, entries in ((ds.x_train, ds.y_train, ds.info["train_entries"]),
                        (ds.x_test, ds.y_test, ds.info["test_entries"])):
    for xi, yi, (a, b) in zip(x, y, entries):
      assert xi.sum() == 1.0 and xi[a, b] == 1.0 and yi[0] == m[a, b]
      seen.add((int(a), int(b)))
  assert len(seen) == rows * cols                   # every entry exactly once
  full = data.load(dict(name="matrix_completion", rows=rows, cols=cols, rank=2,
                        spectrum=[3.0, 1.0], n_observed=rows * cols, symmetric=symmetric))
  assert full.x_test.shape == (0, rows, cols)


@pytest.mark.parametrize("factorization", ["symmetric", "asymmetric", "deep"])
def test_sensing_loss_and_gradient(factorization):
  ds = data.load(dict(name="matrix_sensing", dimension=4, rank=2, spectrum=[2.0, 1.0],
                      n_train=30, seed=0))
  model = models.build(dict(name="matrix_factorization", factorization=factorization, width=3,
                            depth=3, init_scale=0.5), ds.in_dim, 1)
  p = model.init(jax.random.PRNGKey(0), dtype=jnp.float64)
  loss = engine_loss(model, ds)
  a, y = ds.x_train, ds.y_train[:, 0]
  # the matrix-sensing loss (1/2m) sum_i (<A_i, W> - y_i)^2, by a loop
  w = np.asarray(models.MODELS["matrix_factorization"].matrix(p))
  direct = sum((np.sum(ai * w) - yi) ** 2 for ai, yi in zip(a, y)) / (2 * len(y))
  np.testing.assert_allclose(float(loss(p)), direct, rtol=1e-12)
  grad = jax.grad(loss)(p)
  # dL/dW = (1/m) sum_i r_i A_i, then the chain rule through each factorization
  r = np.array([np.sum(ai * w) - yi for ai, yi in zip(a, y)])
  g_w = sum(ri * ai for ri, ai in zip(r, a)) / len(y)
  u = np.asarray(p.get("U", 0.0))
  expected = {"symmetric": lambda: {"U": (g_w + g_w.T) @ u},
              "asymmetric": lambda: {"U": g_w @ np.asarray(p["V"]), "V": g_w.T @ u},
              "deep": lambda: finite_difference(loss, p)}[factorization]()
  for k in p:
    np.testing.assert_allclose(np.asarray(grad[k]), expected[k], rtol=1e-7, atol=1e-9)
  if factorization == "symmetric":
    # A_i symmetric: grad_U = (2/m) sum_i r_i A_i U; and against finite differences
    np.testing.assert_allclose(np.asarray(grad["U"]), 2 * g_w @ u, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(grad["U"]), finite_difference(loss, p)["U"],
                               rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("factorization", ["symmetric", "asymmetric"])
def test_completion_loss_and_gradient(factorization):
  symmetric = factorization == "symmetric"
  ds = data.load(dict(name="matrix_completion", rows=4, cols=4 if symmetric else 5, rank=2,
                      spectrum=[2.0, 1.0], n_observed=11, symmetric=symmetric))
  model = models.build(dict(name="matrix_factorization", factorization=factorization, width=2,
                            rows=4, init_scale=0.7), ds.in_dim, 1)
  p = model.init(jax.random.PRNGKey(1), dtype=jnp.float64)
  loss = engine_loss(model, ds)
  w = np.asarray(models.MODELS["matrix_factorization"].matrix(p))
  m, obs = ds.info["M_star"], ds.info["train_entries"]
  direct = sum((w[a, b] - m[a, b]) ** 2 for a, b in obs) / (2 * len(obs))
  np.testing.assert_allclose(float(loss(p)), direct, rtol=1e-12)
  g_w = np.zeros_like(w)                 # (1/n) P_Omega(W - M*)
  for a, b in obs:
    g_w[a, b] += (w[a, b] - m[a, b]) / len(obs)
  grad, fd = jax.grad(loss)(p), finite_difference(loss, p)
  u = np.asarray(p["U"])
  expected = ({"U": (g_w + g_w.T) @ u} if symmetric else
              {"U": g_w @ np.asarray(p["V"]), "V": g_w.T @ u})
  for k in p:
    np.testing.assert_allclose(np.asarray(grad[k]), expected[k], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(grad[k]), fd[k], rtol=1e-7, atol=1e-9)


def test_bad_configs_name_the_field():
  cases = [
      (dict(name="matrix_sensing", dimension=2, rank=3), r"data\.rank=3.*data\.dimension=2"),
      (dict(name="matrix_sensing", rank=2), r"data\.spectrum=.*data\.rank=2"),
      (dict(name="matrix_sensing", spectrum=[1.0, 0.0, 2.0]), r"data\.spectrum"),
      (dict(name="matrix_completion", rows=3, cols=3, n_observed=10),
       r"data\.n_observed=10.*9 entries"),
      (dict(name="matrix_completion", rows=3, cols=4, symmetric=True), r"data\.rows=3"),
      (dict(name="matrix_completion", rows=2, cols=5, symmetric=False, n_observed=4),
       r"data\.rank=3.*data\.rows=2"),
  ]
  for cfg, pattern in cases:
    with pytest.raises(ConfigError, match=pattern):
      data.load(cfg)


def test_engine_trains_matrix_sensing_as_plain_gd(tmp_path):
  """Through the ordinary front door (config -> run directory -> trajectory): full-batch GD on
  the sensing loss equals a numpy GD loop, U <- U - lr (2/m) sum_i r_i A_i U, and the
  eigenvalues of U U^T appear one at a time from the small init."""
  from analysis import trajectory
  from dynamics import experiment
  from experiments.configs.common import base_config
  c = base_config("matrix_factorization", "matrix_sensing", "gd")
  c.data.update(dict(dimension=4, rank=2, spectrum=[2.0, 1.0], n_train=60, n_test=10))
  c.model.update(dict(factorization="symmetric", width=3, init_scale=1e-3))
  c.opt.learning_rate = 0.05
  c.train.update(dict(steps=200, log_every=10, chunk_steps=100, float64=True, keep="every:10"))
  experiment.run(c, str(tmp_path / "run"), log=lambda *_: None)
  traj = trajectory.load(str(tmp_path / "run"))
  ds = traj.dataset()
  a, y = ds.x_train, ds.y_train[:, 0]
  u = np.asarray(traj.params(0, member=0)["U"], np.float64)
  assert abs(np.abs(u).mean() - 1e-3 * math.sqrt(2 / math.pi)) < 3e-4
  eigs = []
  for step in range(201):
    if step % 10 == 0:
      np.testing.assert_allclose(np.asarray(traj.params(step, 0)["U"]), u, rtol=1e-9, atol=1e-15)
      eigs.append(np.linalg.eigvalsh(u @ u.T)[::-1])
    r = np.einsum("nab,ab->n", a, u @ u.T) - y
    u = u - 0.05 * (2.0 / len(y)) * np.einsum("n,nab->ab", r, a) @ u
  eigs = np.array(eigs)
  first = [int(np.argmax(eigs[:, i] > 0.5 * s)) for i, s in enumerate([2.0, 1.0])]
  assert 0 < first[0] < first[1]                       # a staircase: rank 1, then rank 2
  assert eigs[-1, 2] < 1e-4                            # the third stays at the init's scale
