"""Two-layer network: forward against numpy, balanced init, statistics, init_scale contract."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynamics.config_utils import ConfigError
from dynamics.models import two_layer as tl

ACTS = ["tanh", "relu", "gelu", "elu", "softplus", "linear"]


def np_act(name, z):
  """Hand-written float64 activations (gelu is the exact erf form)."""
  return {
      "tanh": np.tanh,
      "relu": lambda t: np.maximum(t, 0.0),
      "gelu": lambda t: 0.5 * t * (1.0 + np.vectorize(math.erf)(t / math.sqrt(2.0))),
      "elu": lambda t: np.where(t > 0, t, np.expm1(np.minimum(t, 0.0))),
      "softplus": lambda t: np.logaddexp(0.0, t),
      "linear": lambda t: t,
  }[name](z)


def cfg_of(**kw):
  cfg = tl.default_config()
  cfg.in_dim, cfg.out_dim, cfg.width = 6, 2, 9
  for k, v in kw.items():
    cfg[k] = v
  return cfg


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("output_scale", [1.0, 0.25])
def test_forward_matches_numpy(act, output_scale):
  cfg = cfg_of(activation=act, output_scale=output_scale)
  params = tl.init(jax.random.PRNGKey(0), cfg, jnp.float64)
  assert params["w"].shape == (9, 6) and params["v"].shape == (9, 2)
  x = jax.random.normal(jax.random.PRNGKey(1), (5, 3, 2), jnp.float64)
  out, feats = tl.apply(params, x, cfg, return_features=True)
  xf = np.asarray(x).reshape(5, 6)
  w, v = np.asarray(params["w"]), np.asarray(params["v"])
  ref = np.zeros((5, 2))
  for j in range(9):                       # f(x) = s * sum_j v_j act(w_j . x)
    ref += np.outer(np_act(act, xf @ w[j]), v[j])
  ref *= output_scale
  assert out.shape == (5, 2) and feats.shape == (5, 9)
  np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-12, atol=1e-13)
  np.testing.assert_allclose(np.asarray(feats), np_act(act, xf @ w.T), rtol=1e-12, atol=1e-13)
  np.testing.assert_allclose(np.asarray(tl.apply(params, x, cfg)), ref, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("out_dim", [1, 3])
@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_balanced_init(out_dim, scale):
  cfg = cfg_of(balanced=True, out_dim=out_dim, width=200, init_scale=scale)
  params = tl.init(jax.random.PRNGKey(2), cfg, jnp.float64)
  w, v = np.asarray(params["w"]), np.asarray(params["v"])
  assert v.shape == (200, out_dim)
  np.testing.assert_allclose(np.linalg.norm(v, axis=1), np.linalg.norm(w, axis=1), rtol=1e-13)
  if out_dim == 1:
    np.testing.assert_allclose(np.abs(v[:, 0]), np.linalg.norm(w, axis=1), rtol=1e-13)
    frac_pos = np.mean(v[:, 0] > 0)
    assert 0.35 < frac_pos < 0.65          # random signs
  else:
    # directions are spread out, not all the same
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    assert np.linalg.norm(u.mean(axis=0)) < 0.3
  # w has the usual distribution
  np.testing.assert_allclose(w.std(), scale / math.sqrt(6), rtol=0.1)


def test_unbalanced_statistics():
  cfg = cfg_of(in_dim=300, out_dim=4, width=500, init_scale=2.0)
  params = tl.init(jax.random.PRNGKey(3), cfg, jnp.float64)
  np.testing.assert_allclose(np.asarray(params["w"]).std(), 2.0 / math.sqrt(300), rtol=0.02)
  np.testing.assert_allclose(np.asarray(params["v"]).std(), 2.0 / math.sqrt(500), rtol=0.05)
  w, v = np.asarray(params["w"]), np.asarray(params["v"])
  assert not np.allclose(np.linalg.norm(v, axis=1), np.linalg.norm(w, axis=1), rtol=0.1)


def test_v_scale_sets_the_second_layer_alone():
  key = jax.random.PRNGKey(5)
  p1 = tl.init(key, cfg_of(), jnp.float64)
  p = tl.init(key, cfg_of(init_scale=1e-4, v_scale=3.0), jnp.float64)
  np.testing.assert_allclose(np.asarray(p["w"]), 1e-4 * np.asarray(p1["w"]), rtol=1e-13)
  np.testing.assert_allclose(np.asarray(p["v"]), 3.0 * np.asarray(p1["v"]), rtol=1e-13)
  pb = tl.init(key, cfg_of(init_scale=1e-4, v_scale=3.0, balanced=True), jnp.float64)
  np.testing.assert_allclose(np.linalg.norm(np.asarray(pb["v"]), axis=1),
                             np.linalg.norm(np.asarray(pb["w"]), axis=1), rtol=1e-12)


@pytest.mark.parametrize("balanced", [False, True])
def test_init_scale_multiplies_every_leaf(balanced):
  key = jax.random.PRNGKey(4)
  p1 = tl.init(key, cfg_of(balanced=balanced), jnp.float64)
  pc = tl.init(key, cfg_of(balanced=balanced, init_scale=0.01), jnp.float64)
  for k in ("w", "v"):
    np.testing.assert_allclose(np.asarray(pc[k]), 0.01 * np.asarray(p1[k]), rtol=1e-13)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_dtype_propagates(dtype):
  cfg = cfg_of(balanced=True, output_scale=1 / 9)
  params = tl.init(jax.random.PRNGKey(0), cfg, dtype)
  assert params["w"].dtype == dtype and params["v"].dtype == dtype
  out, feats = tl.apply(params, jnp.ones((3, 6), jnp.float64), cfg, return_features=True)
  assert out.dtype == dtype and feats.dtype == dtype


def test_jit_vmap_grad():
  cfg = cfg_of(activation="gelu", balanced=True)
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  stacked = jax.jit(jax.vmap(lambda k: tl.init(k, cfg, jnp.float64)))(keys)
  x = jax.random.normal(jax.random.PRNGKey(1), (5, 6), jnp.float64)
  outs = jax.jit(jax.vmap(lambda p: tl.apply(p, x, cfg)))(stacked)
  assert outs.shape == (3, 5, 2)
  p2 = tl.init(keys[2], cfg, jnp.float64)
  np.testing.assert_allclose(np.asarray(outs[2]), np.asarray(tl.apply(p2, x, cfg)), rtol=1e-12)
  g = jax.jit(jax.grad(lambda p: jnp.sum(tl.apply(p, x, cfg))))(p2)
  feats = np.asarray(tl.apply(p2, x, cfg, return_features=True)[1])
  # d/dv sum f = features summed over examples, for every output column
  np.testing.assert_allclose(np.asarray(g["v"]), np.repeat(feats.sum(0)[:, None], 2, axis=1),
                             rtol=1e-12)


def test_validation_errors():
  for field, value, allowed in [("activation", "sigmoid", "'relu'"), ("width", 0, ">= 1"),
                                ("balanced", "yes", "True, False"),
                                ("output_scale", 0.0, "> 0"), ("init_scale", "1", "> 0"),
                                ("v_scale", -1.0, ">= 0")]:
    cfg = cfg_of().to_dict()
    cfg[field] = value
    with pytest.raises(ConfigError) as e:
      tl.validate(cfg)
    assert f"model.{field}" in str(e.value) and allowed in str(e.value)


def test_default_config_fields():
  assert tl.default_config().to_dict() == dict(
      name="two_layer", in_dim=None, out_dim=None, width=100, activation="relu", init_scale=1.0,
      balanced=False, v_scale=0.0, output_scale=1.0)
