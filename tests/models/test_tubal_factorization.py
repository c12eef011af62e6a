"""Tubal factorization: X = U * U^T and U * V^T, the <A, X> readout, the gradient and the
papers' inits, against a numpy loop over the t-product's definition and finite differences."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynamics import models
from dynamics.config_utils import ConfigError
from dynamics.models import tubal_factorization as tf
from tensor_reference import t_product_loop as tprod, t_transpose_def as ttrans


def build(in_dim, **kw):
  cfg = dict(name="tubal_factorization", **{"width": 3, "tube": 3, **kw})
  return models.build(cfg, in_dim=in_dim, out_dim=1)




def np_tensor(p):
  u = np.asarray(p["U"], np.float64)
  return tprod(u, ttrans(np.asarray(p["V"], np.float64) if "V" in p else u))


@pytest.mark.parametrize("kw, in_dim, shapes", [
    (dict(factorization="symmetric"), 4 * 4 * 3, {"U": (4, 3, 3)}),
    (dict(factorization="asymmetric", rows=2), 2 * 5 * 3, {"U": (2, 3, 3), "V": (5, 3, 3)}),
    (dict(factorization="symmetric", tube=4), 3 * 3 * 4, {"U": (3, 3, 4)}),
])
def test_shapes_and_readout(kw, in_dim, shapes):
  model = build(in_dim, **kw)
  p = model.init(jax.random.PRNGKey(0), dtype=jnp.float64)
  assert {k: v.shape for k, v in p.items()} == shapes
  x_star = np_tensor(p)
  np.testing.assert_allclose(np.asarray(tf.tensor(p)), x_star, rtol=1e-10, atol=1e-13)
  if kw["factorization"] == "symmetric":
    np.testing.assert_allclose(ttrans(x_star), x_star, atol=1e-13)     # (U * U^T)^T = U * U^T
  a = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (5,) + x_star.shape, jnp.float64))
  out, feats = model.apply(p, a, return_features=True)
  direct = np.array([np.sum(ai * x_star) for ai in a])[:, None]
  np.testing.assert_allclose(np.asarray(out), direct, rtol=1e-10, atol=1e-13)
  r, b = model.readout(p)
  assert b is None and r.shape == (1, x_star.size)
  np.testing.assert_allclose(np.asarray(feats @ r.T), np.asarray(out), rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(np.asarray(model.apply(p, a.reshape(5, -1))), direct, rtol=1e-10,
                             atol=1e-13)


@pytest.mark.parametrize("factorization", ["symmetric", "asymmetric"])
def test_gradient_against_the_t_algebra_and_finite_differences(factorization):
  n, k, m = 3, 3, 7
  model = build(n * n * k, factorization=factorization, width=2, init="normal", init_scale=0.6)
  p = model.init(jax.random.PRNGKey(2), dtype=jnp.float64)
  rng = np.random.default_rng(5)
  a, y = rng.standard_normal((m, n, n, k)), rng.standard_normal(m)

  def loss(params):
    return jnp.mean(0.5 * (model.apply(params, a)[:, 0] - y) ** 2)

  x = np_tensor(p)
  g = sum((np.sum(ai * x) - yi) * ai for ai, yi in zip(a, y)) / m      # dL/dX
  u = np.asarray(p["U"])
  if factorization == "symmetric":                   # dL/dU = (G + G^T) * U
    expected = {"U": tprod(g + ttrans(g), u)}
  else:                                              # dL/dU = G * V, dL/dV = G^T * U
    v = np.asarray(p["V"])
    expected = {"U": tprod(g, v), "V": tprod(ttrans(g), u)}
  grad = jax.grad(loss)(p)
  for name in p:
    np.testing.assert_allclose(np.asarray(grad[name]), expected[name], rtol=1e-9, atol=1e-12)
    w, fd, h = np.asarray(p[name]), np.zeros_like(expected[name]), 1e-6
    for idx in np.ndindex(w.shape):
      e = np.zeros_like(w)
      e[idx] = h
      fd[idx] = (loss({**p, name: jnp.asarray(w + e)}) -
                 loss({**p, name: jnp.asarray(w - e)})) / (2 * h)
    np.testing.assert_allclose(np.asarray(grad[name]), fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("init, std", [("scaled", 1 / math.sqrt(50)), ("normal", 1.0)])
def test_inits_and_the_init_scale_contract(init, std):
  key = jax.random.PRNGKey(3)
  kw = dict(factorization="asymmetric", width=50, tube=4, init=init)
  p1 = build(10 * 10 * 4, **kw).init(key, dtype=jnp.float64)
  pc = build(10 * 10 * 4, init_scale=1e-7, **kw).init(key, dtype=jnp.float64)
  for name in ("U", "V"):
    assert p1[name].shape == (10, 50, 4)
    np.testing.assert_allclose(np.asarray(pc[name]), 1e-7 * np.asarray(p1[name]), rtol=1e-12)
    assert abs(float(np.std(np.asarray(p1[name]))) / std - 1.0) < 0.05


def test_config_errors_name_the_field():
  with pytest.raises(ConfigError, match=r"model\.tube=0 is not allowed.*>= 1"):
    build(48, tube=0)
  with pytest.raises(ConfigError, match=r"model\.tube=5.*divide in_dim"):
    build(48, tube=5)
  with pytest.raises(ConfigError, match=r"model\.in_dim=36.*not a square"):
    build(36, tube=3)
  with pytest.raises(ConfigError, match=r"model\.rows=2.*symmetric"):
    build(48, rows=2)
  with pytest.raises(ConfigError, match=r"model\.rows=5.*divide"):
    build(48, rows=5, factorization="asymmetric")
  with pytest.raises(ConfigError, match=r"model\.init='spectral'.*'scaled', 'normal'"):
    build(48, init="spectral")
  with pytest.raises(ConfigError, match=r"model\.init_scale=0\.0 is not allowed"):
    build(48, init_scale=0.0)
  with pytest.raises(ConfigError, match=r"model\.out_dim=2"):
    models.build(dict(name="tubal_factorization"), in_dim=16, out_dim=2)
  model = build(48)
  with pytest.raises(ValueError, match=r"X is \(4, 4, 3\)"):
    model.apply(model.init(jax.random.PRNGKey(0)), jnp.ones((2, 4, 3, 4)))
  with pytest.raises(ValueError, match=r"U has shape \(4, 3, 2\) and V \(4, 5, 2\)"):
    tf.tensor(dict(U=jnp.ones((4, 3, 2)), V=jnp.ones((4, 5, 2))))


@pytest.mark.parametrize("factorization", ["symmetric", "asymmetric"])
def test_float32_everywhere(factorization):
  model = build(48, factorization=factorization)
  p = model.init(jax.random.PRNGKey(0), dtype=jnp.float32)
  assert all(v.dtype == jnp.float32 for v in p.values())
  out, feats = model.apply(p, np.ones((2, 4, 4, 3), np.float64), return_features=True)
  assert out.dtype == feats.dtype == tf.tensor(p).dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(tf.tensor(p)), np_tensor(p), rtol=1e-4, atol=1e-6)
