"""Matrix factorization: the end-to-end matrix, <X, W> readout, inits, config errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynamics import models
from dynamics.config_utils import ConfigError
from dynamics.models import matrix_factorization as mf


def build(in_dim=12, **kw):
  cfg = dict(name="matrix_factorization", **{"width": 3, **kw})
  return models.build(cfg, in_dim=in_dim, out_dim=1)


def np_matrix(p):
  p = {k: np.asarray(v, np.float64) for k, v in p.items()}
  if "V" in p:
    return p["U"] @ p["V"].T
  if "U" in p:
    return p["U"] @ p["U"].T
  w = p["W1"]
  for l in range(2, len(p) + 1):
    w = p[f"W{l}"] @ w
  return w


@pytest.mark.parametrize("kw, shapes", [
    (dict(factorization="symmetric", rows=None), {"U": (4, 3)}),
    (dict(factorization="asymmetric", rows=3), {"U": (3, 3), "V": (4, 3)}),
    (dict(factorization="deep", rows=3, depth=3), {"W1": (3, 4), "W2": (3, 3), "W3": (3, 3)}),
    (dict(factorization="deep", rows=2, depth=1), {"W1": (2, 6)}),
])
def test_shapes_and_readout(kw, shapes):
  in_dim = 16 if kw["factorization"] == "symmetric" else 12
  model = build(in_dim, **kw)
  p = model.init(jax.random.PRNGKey(0), dtype=jnp.float64)
  assert {k: v.shape for k, v in p.items()} == shapes
  w = np_matrix(p)
  x = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (5,) + w.shape, jnp.float64))
  out, feats = model.apply(p, x, return_features=True)
  direct = np.array([np.sum(xi * w) for xi in x])[:, None]
  np.testing.assert_allclose(np.asarray(out), direct, rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(np.asarray(mf.matrix(p)), w, rtol=1e-12, atol=1e-14)
  r, b = model.readout(p)
  assert b is None and r.shape == (1, w.size)
  np.testing.assert_allclose(np.asarray(feats @ r.T), np.asarray(out), rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(np.asarray(model.apply(p, x.reshape(5, -1))), direct, rtol=1e-12,
                             atol=1e-14)


@pytest.mark.parametrize("factorization", mf.FACTORIZATIONS)
def test_init_scale_contract_and_statistics(factorization):
  key = jax.random.PRNGKey(3)
  p1 = build(400, factorization=factorization, width=50).init(key, dtype=jnp.float64)
  pc = build(400, factorization=factorization, width=50, init_scale=1e-3).init(
      key, dtype=jnp.float64)
  for k in p1:
    np.testing.assert_allclose(np.asarray(pc[k]), 1e-3 * np.asarray(p1[k]), rtol=1e-12)
    assert abs(float(np.std(np.asarray(p1[k]))) - 1.0) < 0.1      # entries N(0, 1)


def test_config_errors_name_the_field():
  with pytest.raises(ConfigError, match=r"model\.in_dim=12 is not a square"):
    build(12)
  with pytest.raises(ConfigError, match=r"model\.rows=5.*divide"):
    build(12, rows=5, factorization="asymmetric")
  with pytest.raises(ConfigError, match=r"model\.rows=3.*symmetric"):
    build(12, rows=3)
  with pytest.raises(ConfigError, match=r"model\.out_dim=2"):
    models.build(dict(name="matrix_factorization"), in_dim=16, out_dim=2)
  with pytest.raises(ConfigError, match=r"model\.depth=0"):
    build(16, factorization="deep", depth=0)
  with pytest.raises(ConfigError, match=r"model\.factorization='cp'"):
    build(16, factorization="cp")
  with pytest.raises(ValueError, match="entries per example"):
    model = build(16)
    model.apply(model.init(jax.random.PRNGKey(0)), jnp.ones((2, 9)))
