"""CP factorization: the entries it reads, its component norms, its gradient and its config
errors, against explicit numpy outer products and finite differences."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynamics import models
from dynamics.config_utils import ConfigError
from dynamics.models import cp_factorization as cp


def build(order=3, d=4, **kw):
  cfg = dict(name="cp_factorization", order=order, **{"components": 5, **kw})
  return models.build(cfg, in_dim=order * d, out_dim=1)


def np_tensor(factors):
  f = np.asarray(factors, np.float64)
  out = 0.0
  for r in range(f.shape[2]):
    t = f[0][:, r]
    for n in range(1, f.shape[0]):
      t = np.multiply.outer(t, f[n][:, r])
    out = out + t
  return out


def one_hot(entries, d):
  x = np.zeros((len(entries), len(entries[0]), d))
  for i, e in enumerate(entries):
    x[i, np.arange(len(e)), e] = 1.0
  return x


@pytest.mark.parametrize("order, d", [(2, 3), (3, 4), (4, 3)])
def test_entries_and_multilinear_readout(order, d):
  model = build(order, d, init_scale=0.7)
  p = model.init(jax.random.PRNGKey(0), dtype=jnp.float64)
  assert p["factors"].shape == (order, d, 5)
  w = np_tensor(p["factors"])
  np.testing.assert_allclose(np.asarray(cp.tensor(p)), w, rtol=1e-12, atol=1e-14)
  entries = [tuple(np.random.default_rng(i).integers(0, d, order)) for i in range(7)]
  out, feats = model.apply(p, one_hot(entries, d), return_features=True)
  np.testing.assert_allclose(np.asarray(out)[:, 0], [w[e] for e in entries], rtol=1e-12,
                             atol=1e-14)
  readout, bias = model.readout(p)
  assert bias is None and readout.shape == (1, 5) and feats.shape == (7, 5)
  np.testing.assert_allclose(np.asarray(feats @ readout.T), np.asarray(out), rtol=1e-12)
  # any vectors: <x_1 o ... o x_N, W>, and the flattened input reads the same
  x = np.random.default_rng(1).standard_normal((3, order, d))
  direct = []
  for xi in x:
    t = xi[0]
    for n in range(1, order):
      t = np.multiply.outer(t, xi[n])
    direct.append(np.sum(t * w))
  np.testing.assert_allclose(np.asarray(model.apply(p, x))[:, 0], direct, rtol=1e-10)
  np.testing.assert_allclose(np.asarray(model.apply(p, x.reshape(3, -1)))[:, 0], direct,
                             rtol=1e-10)


def test_component_norms_of_a_constructed_factorization():
  f = np.zeros((3, 4, 3))
  f[0, :, 0], f[1, :, 0], f[2, :, 0] = [3, 4, 0, 0], [0, 1, 0, 0], [2, 0, 0, 0]   # 5 * 1 * 2
  f[:, :, 1] = 0.5                                                               # 1 * 1 * 1
  p = {"factors": jnp.asarray(f)}
  np.testing.assert_allclose(np.asarray(cp.component_norms(p)), [10.0, 1.0, 0.0], rtol=1e-12)
  for r in range(3):                        # each the norm of its explicit outer product
    one = np.zeros_like(f)
    one[:, :, 0] = f[:, :, r]
    assert np.isclose(np.linalg.norm(np_tensor(one)), float(cp.component_norms(p)[r]))
  # the rescaling a -> c a, b -> b / c moves the factors, not the component
  g = f.copy()
  g[0, :, 0] *= 4.0
  g[1, :, 0] /= 4.0
  np.testing.assert_allclose(np.asarray(cp.component_norms({"factors": jnp.asarray(g)})),
                             [10.0, 1.0, 0.0], rtol=1e-12)


def test_gradient_against_numpy_and_finite_differences():
  order, d = 3, 3
  model = build(order, d, components=4, init_scale=0.8)
  p = model.init(jax.random.PRNGKey(2), dtype=jnp.float64)
  rng = np.random.default_rng(3)
  entries = [tuple(rng.integers(0, d, order)) for _ in range(6)]
  x, y = one_hot(entries, d), rng.standard_normal(6)

  def loss(params):
    return jnp.mean(0.5 * (model.apply(params, x)[:, 0] - y) ** 2)

  f = np.asarray(p["factors"])
  w = np_tensor(f)
  res = np.array([w[e] for e in entries]) - y
  expected = np.zeros_like(f)                         # dL/da_r^(n) = mean_b res_b prod_m!=n .. e
  for b, e in enumerate(entries):
    for n in range(order):
      for r in range(4):
        others = np.prod([f[m, e[m], r] for m in range(order) if m != n])
        expected[n, e[n], r] += res[b] * others / len(entries)
  grad = np.asarray(jax.grad(loss)(p)["factors"])
  np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-13)
  fd, h = np.zeros_like(f), 1e-6
  for idx in np.ndindex(f.shape):
    e = np.zeros_like(f)
    e[idx] = h
    fd[idx] = (loss({"factors": jnp.asarray(f + e)}) - loss({"factors": jnp.asarray(f - e)})) / (
        2 * h)
  np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)


def test_init_scale_contract_and_statistics():
  key = jax.random.PRNGKey(4)
  p1 = build(4, 10, components=200).init(key, dtype=jnp.float64)
  pc = build(4, 10, components=200, init_scale=5e-3).init(key, dtype=jnp.float64)
  np.testing.assert_allclose(np.asarray(pc["factors"]), 5e-3 * np.asarray(p1["factors"]),
                             rtol=1e-12)
  assert abs(float(np.std(np.asarray(p1["factors"]))) - 1.0) < 0.05
  assert abs(float(np.mean(np.asarray(p1["factors"])))) < 0.05


def test_config_errors_name_the_field():
  with pytest.raises(ConfigError, match=r"model\.order=1 is not allowed.*>= 2"):
    build(order=1, d=4)
  with pytest.raises(ConfigError, match=r"model\.order=3.*must divide in_dim"):
    models.build(dict(name="cp_factorization", order=3), in_dim=10, out_dim=1)
  with pytest.raises(ConfigError, match=r"model\.out_dim=2"):
    models.build(dict(name="cp_factorization", order=2), in_dim=10, out_dim=2)
  with pytest.raises(ConfigError, match=r"model\.components=0"):
    build(components=0)
  with pytest.raises(ConfigError, match=r"model\.init_scale=0\.0 is not allowed.*> 0"):
    build(init_scale=0.0)
  with pytest.raises(ConfigError, match=r"model\.init_scale=-1\.0"):
    build(init_scale=-1.0)
  model = build(2, 6)                                   # in_dim 12 = 2 x 6 ...
  with pytest.raises(ValueError, match=r"\[N_ex, 2, 6\].*model\.order"):
    model.apply(model.init(jax.random.PRNGKey(0)), jnp.ones((2, 3, 4)))   # ... not 3 x 4


def test_float32_everywhere():
  model = build(3, 4)
  p = model.init(jax.random.PRNGKey(0), dtype=jnp.float32)
  assert p["factors"].dtype == jnp.float32
  out, feats = model.apply(p, np.ones((2, 3, 4), np.float64), return_features=True)
  assert out.dtype == feats.dtype == cp.component_norms(p).dtype == jnp.float32
