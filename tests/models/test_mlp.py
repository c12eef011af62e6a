"""MLP: forward against a numpy reference, init statistics, init_scale contract, jit/vmap."""
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from dynamics.config_utils import ConfigError
from dynamics.models import mlp

ACTS = ["tanh", "relu", "gelu", "elu", "softplus", "linear"]
PARAMS = ["standard", "ntk", "mup"]


def cfg_of(**kw):
  cfg = mlp.default_config()
  cfg.in_dim, cfg.out_dim, cfg.widths = 6, 3, [5, 4]
  for k, v in kw.items():
    cfg[k] = v
  return cfg


def np_act(name, z):
  if name == "tanh":
    return np.tanh(z)
  if name == "relu":
    return np.maximum(z, 0.0)
  if name == "gelu":
    erf = np.vectorize(math.erf)
    return 0.5 * z * (1.0 + erf(z / math.sqrt(2.0)))
  if name == "elu":
    return np.where(z > 0, z, np.expm1(np.minimum(z, 0.0)))
  if name == "softplus":
    return np.logaddexp(0.0, z)
  if name == "linear":
    return z
  raise ValueError(name)


def np_forward(params, x, cfg):
  """Hand-written float64 forward pass following the module docstring's formulas."""
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  h = np.asarray(x, np.float64).reshape(x.shape[0], -1)
  n_layers = len(cfg.widths) + 1
  for l in range(1, n_layers + 1):
    w = p[f"W{l}"]
    fan_in = w.shape[0]
    if cfg.parameterization == "standard":
      mult = 1.0
    elif cfg.parameterization == "ntk" or l < n_layers:
      mult = 1.0 / np.sqrt(fan_in)
    else:
      mult = 1.0 / fan_in
    z = mult * (h @ w)
    if cfg.bias:
      z = z + p[f"b{l}"]
    if l < n_layers:
      h = np_act(cfg.activation, z)
  return z, h


def x_of(seed=0, n=7, dtype=jnp.float64):
  return jax.random.normal(jax.random.PRNGKey(100 + seed), (n, 2, 3), dtype)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("param", PARAMS)
def test_forward_matches_numpy(act, param):
  cfg = cfg_of(activation=act, parameterization=param, bias_init=0.1)
  params = mlp.init(jax.random.PRNGKey(0), cfg, jnp.float64)
  # random biases so the bias path is exercised
  params = dict(params)
  for l in (1, 2, 3):
    params[f"b{l}"] = jax.random.normal(jax.random.PRNGKey(l), params[f"b{l}"].shape, jnp.float64)
  x = x_of()
  out, feats = mlp.apply(params, x, cfg, return_features=True)
  ref_out, ref_feats = np_forward(params, np.asarray(x), cfg)
  assert out.shape == (7, 3) and feats.shape == (7, 4)
  np.testing.assert_allclose(np.asarray(out), ref_out, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(np.asarray(feats), ref_feats, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(np.asarray(mlp.apply(params, x, cfg)), ref_out, rtol=1e-12,
                             atol=1e-12)


def test_gelu_is_exact_not_tanh_approximation():
  cfg = cfg_of(activation="gelu", widths=[8])
  params = mlp.init(jax.random.PRNGKey(3), cfg, jnp.float64)
  x = 3.0 * x_of()
  _, feats = mlp.apply(params, x, cfg, return_features=True)
  z = np.asarray(x).reshape(7, 6) @ np.asarray(params["W1"])
  approx = np.asarray(jax.nn.gelu(jnp.asarray(z), approximate=True))
  np.testing.assert_allclose(np.asarray(feats), np_act("gelu", z), rtol=1e-12, atol=1e-13)
  assert np.max(np.abs(np.asarray(feats) - approx)) > 1e-5


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("widths", [[], [4], [5, 4, 3]])
def test_forward_shapes_and_bias_leaves(bias, widths):
  cfg = cfg_of(bias=bias, widths=widths, activation="relu")
  params = mlp.init(jax.random.PRNGKey(0), cfg, jnp.float64)
  n_layers = len(widths) + 1
  expected = {f"W{l}" for l in range(1, n_layers + 1)}
  if bias:
    expected |= {f"b{l}" for l in range(1, n_layers + 1)}
  assert set(params) == expected
  dims = [6] + widths + [3]
  for l in range(1, n_layers + 1):
    assert params[f"W{l}"].shape == (dims[l - 1], dims[l])
    if bias:
      assert params[f"b{l}"].shape == (dims[l],)
  x = x_of()
  out, feats = mlp.apply(params, x, cfg, return_features=True)
  assert out.shape == (7, 3)
  assert feats.shape == (7, dims[-2])
  ref_out, ref_feats = np_forward(params, np.asarray(x), cfg)
  np.testing.assert_allclose(np.asarray(out), ref_out, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(np.asarray(feats), ref_feats, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("param,expected_std", [("standard", 1 / 20.0), ("ntk", 1.0),
                                                ("mup", 1.0)])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_normal_init_statistics(param, expected_std, scale):
  cfg = cfg_of(parameterization=param, widths=[300], init_scale=scale, bias_init=0.2)
  cfg.in_dim = 400
  params = mlp.init(jax.random.PRNGKey(1), cfg, jnp.float64)
  w = np.asarray(params["W1"])
  assert abs(w.mean()) < 0.02 * expected_std * scale
  np.testing.assert_allclose(w.std(), expected_std * scale, rtol=0.02)
  w2 = np.asarray(params["W2"])       # [300, 3]
  std2 = 1 / math.sqrt(300) if param == "standard" else 1.0
  np.testing.assert_allclose(w2.std(), std2 * scale, rtol=0.1)
  for l in (1, 2):
    np.testing.assert_array_equal(np.asarray(params[f"b{l}"]), 0.2 * scale)


def test_torch_init_bounds_and_statistics():
  cfg = cfg_of(init="torch", widths=[300])
  cfg.in_dim = 400
  params = mlp.init(jax.random.PRNGKey(2), cfg, jnp.float64)
  for l, fan_in in ((1, 400), (2, 300)):
    bound = 1 / math.sqrt(fan_in)
    w, b = np.asarray(params[f"W{l}"]), np.asarray(params[f"b{l}"])
    assert np.all(np.abs(w) <= bound) and np.all(np.abs(b) <= bound)
    assert np.abs(w).max() > 0.95 * bound
    assert np.unique(b).size == b.size          # biases are random, not constant
  w1 = np.asarray(params["W1"])
  np.testing.assert_allclose(w1.std(), 1 / math.sqrt(3 * 400), rtol=0.02)
  assert np.abs(np.asarray(params["b1"])).max() > 0.9 / 20.0


@pytest.mark.parametrize("param,init", [("standard", "normal"), ("ntk", "normal"),
                                        ("mup", "normal"), ("standard", "torch")])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_init_scale_multiplies_every_leaf(param, init, dtype):
  kw = dict(parameterization=param, init=init)
  if init == "normal":
    kw["bias_init"] = 0.3
  key = jax.random.PRNGKey(5)
  p1 = mlp.init(key, cfg_of(init_scale=1.0, **kw), dtype)
  pc = mlp.init(key, cfg_of(init_scale=2.5, **kw), dtype)
  assert set(p1) == set(pc)
  for k in p1:
    assert pc[k].dtype == dtype
    np.testing.assert_allclose(np.asarray(pc[k]), 2.5 * np.asarray(p1[k]), rtol=1e-6, atol=0)
    assert np.any(np.asarray(p1[k]) != 0)


def test_ntk_forward_equals_standard_forward():
  key = jax.random.PRNGKey(7)
  cfg_s = cfg_of(parameterization="standard", activation="tanh", bias_init=0.1)
  cfg_n = cfg_of(parameterization="ntk", activation="tanh", bias_init=0.1)
  p_s = mlp.init(key, cfg_s, jnp.float64)
  p_n = mlp.init(key, cfg_n, jnp.float64)
  # same key: ntk weights are the standard ones times sqrt(fan_in); biases identical
  for k in p_s:
    fan = p_s[k].shape[0] if k.startswith("W") else 1
    np.testing.assert_allclose(np.asarray(p_n[k]), np.asarray(p_s[k]) * math.sqrt(fan),
                               rtol=1e-13)
  x = x_of()
  np.testing.assert_allclose(np.asarray(mlp.apply(p_n, x, cfg_n)),
                             np.asarray(mlp.apply(p_s, x, cfg_s)), rtol=1e-12, atol=1e-13)
  # and built by hand from arbitrary standard weights
  p_hand = {k: (v * math.sqrt(v.shape[0]) if k.startswith("W") else v) for k, v in p_s.items()}
  np.testing.assert_allclose(np.asarray(mlp.apply(p_hand, x, cfg_n)),
                             np.asarray(mlp.apply(p_s, x, cfg_s)), rtol=1e-12, atol=1e-13)


def test_mup_output_layer_multiplier():
  key = jax.random.PRNGKey(8)
  cfg_n = cfg_of(parameterization="ntk", bias=False)
  cfg_m = cfg_of(parameterization="mup", bias=False)
  params = mlp.init(key, cfg_n, jnp.float64)
  x = x_of()
  out_n, f_n = mlp.apply(params, x, cfg_n, return_features=True)
  out_m, f_m = mlp.apply(params, x, cfg_m, return_features=True)
  np.testing.assert_allclose(np.asarray(f_m), np.asarray(f_n), rtol=1e-13)
  np.testing.assert_allclose(np.asarray(out_m), np.asarray(out_n) / math.sqrt(4), rtol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_dtype_propagates(dtype):
  cfg = cfg_of()
  params = mlp.init(jax.random.PRNGKey(0), cfg, dtype)
  assert all(v.dtype == dtype for v in params.values())
  for xdtype in (jnp.float32, jnp.float64):
    out, feats = mlp.apply(params, x_of(dtype=xdtype), cfg, return_features=True)
    assert out.dtype == dtype and feats.dtype == dtype


def test_jit_vmap_grad_jvp():
  cfg = cfg_of(activation="softplus", parameterization="mup")
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  stacked = jax.jit(jax.vmap(lambda k: mlp.init(k, cfg, jnp.float64)))(keys)
  x = x_of()
  outs = jax.jit(jax.vmap(lambda p: mlp.apply(p, x, cfg)))(stacked)
  assert outs.shape == (4, 7, 3)
  for i in (0, 3):
    p_i = jax.tree.map(lambda a: a[i], stacked)
    np.testing.assert_allclose(np.asarray(outs[i]), np_forward(p_i, np.asarray(x), cfg)[0],
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(p_i["W1"]),
                               np.asarray(mlp.init(keys[i], cfg, jnp.float64)["W1"]), rtol=1e-14)
  p0 = jax.tree.map(lambda a: a[0], stacked)
  loss = jax.jit(lambda p: jnp.sum(mlp.apply(p, x, cfg) ** 2))
  g = jax.jit(jax.grad(loss))(p0)
  assert set(g) == set(p0)
  # directional derivative by jvp matches finite differences
  t = jax.tree.map(jnp.ones_like, p0)
  _, dl = jax.jit(lambda p, v: jax.jvp(loss, (p,), (v,)))(p0, t)
  eps = 1e-6
  fd = (loss(jax.tree.map(lambda a, b: a + eps * b, p0, t)) -
        loss(jax.tree.map(lambda a, b: a - eps * b, p0, t))) / (2 * eps)
  np.testing.assert_allclose(float(dl), float(fd), rtol=1e-6)
  # the gradient agrees with the jvp along t
  gt = sum(float(jnp.sum(g[k] * t[k])) for k in g)
  np.testing.assert_allclose(gt, float(dl), rtol=1e-10)


@pytest.mark.parametrize("field,value,allowed", [
    ("activation", "swish", "'gelu'"),
    ("parameterization", "sp", "'mup'"),
    ("init", "xavier", "'torch'"),
    ("widths", [4, 0], ">= 1"),
    ("widths", "4", ">= 1"),
    ("bias", 1, "True, False"),
    ("init_scale", 0.0, "> 0"),
    ("in_dim", 0, ">= 1"),
])
def test_validation_errors_name_field_and_allowed(field, value, allowed):
  cfg = cfg_of().to_dict()        # plain dict: ConfigDict itself refuses some wrong types
  cfg[field] = value
  with pytest.raises(ConfigError) as e:
    mlp.validate(cfg)
  assert f"model.{field}" in str(e.value)
  assert allowed in str(e.value)


def test_torch_init_restrictions():
  with pytest.raises(ConfigError, match="model.init='torch'.*model.parameterization"):
    mlp.validate(cfg_of(init="torch", parameterization="ntk"))
  with pytest.raises(ConfigError, match="model.bias_init"):
    mlp.validate(cfg_of(init="torch", bias_init=0.1))
  with pytest.raises(ConfigError, match="model.in_dim"):
    mlp.init(jax.random.PRNGKey(0), mlp.default_config())


def test_default_config_fields():
  cfg = mlp.default_config()
  assert isinstance(cfg, ml_collections.ConfigDict)
  assert cfg.to_dict() == dict(name="mlp", in_dim=None, out_dim=None, widths=[200, 200],
                               activation="tanh", bias=True, init_scale=1.0,
                               parameterization="standard", init="normal", bias_init=0.0)
