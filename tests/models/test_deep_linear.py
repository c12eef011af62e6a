"""Deep linear network: forward, orthogonal and balanced inits, end_to_end, init_scale contract."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynamics.config_utils import ConfigError
from dynamics.models import deep_linear as dl


def cfg_of(in_dim=4, out_dim=3, widths=(5, 6), **kw):
  cfg = dl.default_config()
  cfg.in_dim, cfg.out_dim, cfg.widths = in_dim, out_dim, list(widths)
  for k, v in kw.items():
    cfg[k] = v
  return cfg


def np_product(params):
  n = len(params)
  p = np.asarray(params["W1"], np.float64)
  for l in range(2, n + 1):
    p = p @ np.asarray(params[f"W{l}"], np.float64)
  return p


@pytest.mark.parametrize("init", ["gaussian", "orthogonal", "balanced"])
@pytest.mark.parametrize("widths", [(), (5,), (5, 6, 4)])
def test_forward_end_to_end_and_features(init, widths):
  cfg = cfg_of(widths=widths, init=init)
  params = dl.init(jax.random.PRNGKey(0), cfg, jnp.float64)
  dims = [4] + list(widths) + [3]
  assert set(params) == {f"W{l}" for l in range(1, len(dims))}
  for l in range(1, len(dims)):
    assert params[f"W{l}"].shape == (dims[l - 1], dims[l])
  x = jax.random.normal(jax.random.PRNGKey(1), (7, 2, 2), jnp.float64)
  xf = np.asarray(x).reshape(7, 4)
  out, feats = dl.apply(params, x, cfg, return_features=True)
  assert out.shape == (7, 3) and feats.shape == (7, dims[-2])
  np.testing.assert_allclose(np.asarray(dl.end_to_end(params)), np_product(params), rtol=1e-12,
                             atol=1e-14)
  np.testing.assert_allclose(np.asarray(out), xf @ np_product(params), rtol=1e-11, atol=1e-13)
  if widths:
    hidden = {k: v for k, v in params.items() if k != f"W{len(dims) - 1}"}
    np.testing.assert_allclose(np.asarray(feats), xf @ np_product(hidden), rtol=1e-11,
                               atol=1e-13)
  else:
    np.testing.assert_allclose(np.asarray(feats), xf, rtol=0, atol=0)


def test_gaussian_statistics():
  cfg = cfg_of(in_dim=400, out_dim=3, widths=(300,), init_scale=0.7)
  params = dl.init(jax.random.PRNGKey(2), cfg, jnp.float64)
  np.testing.assert_allclose(np.asarray(params["W1"]).std(), 0.7 / 20.0, rtol=0.02)
  np.testing.assert_allclose(np.asarray(params["W2"]).std(), 0.7 / math.sqrt(300), rtol=0.1)


@pytest.mark.parametrize("in_dim,widths,out_dim,scale", [
    (4, (6, 6, 2), 3, 1.0), (7, (3,), 7, 2.0), (2, (9,), 5, 1.0)])
def test_orthogonal_singular_values(in_dim, widths, out_dim, scale):
  cfg = cfg_of(in_dim=in_dim, out_dim=out_dim, widths=widths, init="orthogonal",
               init_scale=scale)
  params = dl.init(jax.random.PRNGKey(3), cfg, jnp.float64)
  for w in params.values():
    s = np.linalg.svd(np.asarray(w), compute_uv=False)
    np.testing.assert_allclose(s, scale, rtol=0, atol=1e-12)
  # Haar-ish: different layers / keys give different matrices, not the identity
  other = dl.init(jax.random.PRNGKey(4), cfg, jnp.float64)
  assert not np.allclose(np.asarray(params["W1"]), np.asarray(other["W1"]))


def reference_target(key, in_dim, out_dim, n_layers):
  """A recomputed from the documented key path (independently of the module)."""
  k_a = jax.random.split(key, n_layers)[0]
  return np.asarray(jax.random.normal(k_a, (in_dim, out_dim), jnp.float64)) / math.sqrt(in_dim)


@pytest.mark.parametrize("in_dim,widths,out_dim,scale", [
    (4, (5, 3, 6), 3, 1.0), (3, (3,), 5, 1.0), (6, (), 2, 1.0), (5, (5, 5), 5, 0.3),
    (2, (4, 7, 2, 3), 6, 1.0), (4, (5, 3, 6), 3, 0.3)])
def test_balanced_condition_and_product(in_dim, widths, out_dim, scale):
  cfg = cfg_of(in_dim=in_dim, out_dim=out_dim, widths=widths, init="balanced", init_scale=scale)
  key = jax.random.PRNGKey(11)
  params = dl.init(key, cfg, jnp.float64)
  n = len(widths) + 1
  ws = [np.asarray(params[f"W{l}"]) for l in range(1, n + 1)]
  for l in range(n - 1):
    lhs = ws[l].T @ ws[l]              # W_l^T W_l
    rhs = ws[l + 1] @ ws[l + 1].T      # W_{l+1} W_{l+1}^T
    np.testing.assert_allclose(lhs, rhs, rtol=0, atol=1e-10)
  a = reference_target(key, in_dim, out_dim, n)
  np.testing.assert_allclose(np.asarray(dl.balanced_target(key, cfg, jnp.float64)), a,
                             rtol=1e-14, atol=1e-15)
  np.testing.assert_allclose(np.asarray(dl.end_to_end(params)), scale ** n * a, rtol=0,
                             atol=1e-12)
  # each factor's nonzero singular values are init_scale * S^(1/L)
  s_a = np.linalg.svd(a, compute_uv=False)
  k = min(in_dim, out_dim)
  for w in ws:
    s_w = np.linalg.svd(w, compute_uv=False)
    np.testing.assert_allclose(s_w[:k], scale * s_a ** (1.0 / n), rtol=1e-10)
    np.testing.assert_allclose(s_w[k:], 0.0, atol=1e-10)


def test_balanced_float32_product_close():
  cfg = cfg_of(init="balanced")
  key = jax.random.PRNGKey(12)
  params = dl.init(key, cfg, jnp.float32)
  assert all(w.dtype == jnp.float32 for w in params.values())
  np.testing.assert_allclose(np.asarray(dl.end_to_end(params)),
                             np.asarray(dl.balanced_target(key, cfg, jnp.float32)), atol=1e-5)


def test_balanced_requires_wide_hidden_layers():
  with pytest.raises(ConfigError) as e:
    dl.validate(cfg_of(in_dim=4, out_dim=3, widths=(5, 2), init="balanced"))
  assert "model.widths" in str(e.value) and "3" in str(e.value)
  with pytest.raises(ConfigError, match="model.widths"):
    dl.init(jax.random.PRNGKey(0), cfg_of(in_dim=4, out_dim=3, widths=(2,), init="balanced"))
  dl.validate(cfg_of(in_dim=4, out_dim=3, widths=(2,), init="gaussian"))   # fine otherwise


@pytest.mark.parametrize("init", ["gaussian", "orthogonal", "balanced"])
def test_init_scale_multiplies_every_leaf(init):
  key = jax.random.PRNGKey(5)
  p1 = dl.init(key, cfg_of(init=init), jnp.float64)
  pc = dl.init(key, cfg_of(init=init, init_scale=3.0), jnp.float64)
  for k in p1:
    np.testing.assert_allclose(np.asarray(pc[k]), 3.0 * np.asarray(p1[k]), rtol=1e-13)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("init", ["gaussian", "orthogonal", "balanced"])
def test_dtype_propagates(dtype, init):
  cfg = cfg_of(init=init)
  params = dl.init(jax.random.PRNGKey(0), cfg, dtype)
  assert all(w.dtype == dtype for w in params.values())
  x = jnp.ones((2, 4), jnp.float64)
  out, feats = dl.apply(params, x, cfg, return_features=True)
  assert out.dtype == dtype and feats.dtype == dtype
  assert dl.end_to_end(params).dtype == dtype


@pytest.mark.parametrize("init", ["gaussian", "orthogonal", "balanced"])
def test_jit_vmap_over_keys_and_params(init):
  cfg = cfg_of(init=init)
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  stacked = jax.jit(jax.vmap(lambda k: dl.init(k, cfg, jnp.float64)))(keys)
  x = jax.random.normal(jax.random.PRNGKey(1), (5, 4), jnp.float64)
  outs = jax.jit(jax.vmap(lambda p: dl.apply(p, x, cfg)))(stacked)
  e2e = jax.vmap(dl.end_to_end)(stacked)
  assert outs.shape == (3, 5, 3) and e2e.shape == (3, 4, 3)
  for i in range(3):
    p_i = dl.init(keys[i], cfg, jnp.float64)
    np.testing.assert_allclose(np.asarray(e2e[i]), np_product(p_i), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(outs[i]), np.asarray(x) @ np_product(p_i), rtol=1e-10,
                               atol=1e-12)


def test_validation_errors():
  for field, value, allowed in [("init", "xavier", "'balanced'"), ("widths", [3, -1], ">= 1"),
                                ("init_scale", -1.0, "> 0"), ("out_dim", 1.5, ">= 1")]:
    cfg = cfg_of().to_dict()
    cfg[field] = value
    with pytest.raises(ConfigError) as e:
      dl.validate(cfg)
    assert f"model.{field}" in str(e.value) and allowed in str(e.value)
  with pytest.raises(ConfigError, match="model: unknown field.*activation"):
    dl.validate(dict(cfg_of().to_dict(), activation="tanh"))


def test_default_config_fields():
  assert dl.default_config().to_dict() == dict(name="deep_linear", in_dim=None, out_dim=None,
                                               widths=[16], init="gaussian", init_scale=1.0)


def _teacher(whiten=True, n_train=16):
  from dynamics import data
  return data.load(dict(name="linear_teacher", in_dim=4, out_dim=3, n_train=n_train,
                        singular_values=[3.0, 0.5], whiten=whiten, seed=1))


@pytest.mark.parametrize("widths", [(), (2,), (5, 3)])
def test_decoupled_init_aligns_with_the_data_svd(widths):
  ds = _teacher()
  c = 0.1
  cfg = cfg_of(widths=widths, init="decoupled", init_scale=c)
  params = dl.init(jax.random.PRNGKey(0), cfg, jnp.float64, data=ds)
  # the data's SVD, by numpy: Sigma_yx = Y^T X / N = U diag(s) V^T, two nonzero modes
  u, s, vt = np.linalg.svd(ds.y_train.T @ ds.x_train / len(ds.x_train))
  n = len(widths) + 1
  w_total = np_product(params).T                                 # column convention [out, in]
  np.testing.assert_allclose(w_total, c ** n * u[:, :2] @ vt[:2], atol=1e-14)
  for l in range(1, n):                                          # balanced
    a, b = np.asarray(params[f"W{l}"]), np.asarray(params[f"W{l + 1}"])
    np.testing.assert_allclose(a.T @ a, b @ b.T, atol=1e-14)
  # the init_scale contract, and the same params through the registry's build(data=)
  from dynamics import models
  one = dl.init(jax.random.PRNGKey(0), cfg_of(widths=widths, init="decoupled"), jnp.float64,
                data=ds)
  built = models.build(dict(cfg, in_dim=None, out_dim=None), in_dim=4, out_dim=3, data=ds)
  again = built.init(jax.random.PRNGKey(0), jnp.float64)
  for k in params:
    np.testing.assert_allclose(np.asarray(params[k]), c * np.asarray(one[k]), rtol=1e-13)
    np.testing.assert_array_equal(np.asarray(again[k]), np.asarray(params[k]))


def test_decoupled_init_refuses_what_it_cannot_build():
  cfg = cfg_of(widths=(5,), init="decoupled")
  with pytest.raises(ConfigError, match="model.init='decoupled'.*data"):
    dl.init(jax.random.PRNGKey(0), cfg)
  with pytest.raises(ConfigError, match="model.init='decoupled'.*whiten"):
    dl.init(jax.random.PRNGKey(0), cfg, data=_teacher(whiten=False))
  with pytest.raises(ConfigError, match="model.widths.*2 modes"):
    dl.init(jax.random.PRNGKey(0), cfg_of(widths=(5, 1), init="decoupled"), data=_teacher())
