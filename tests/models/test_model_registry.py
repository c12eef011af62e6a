"""The model registry: default configs, validation messages, build(), the init_scale contract."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from dynamics import models
from dynamics.config_utils import ConfigError

SMALL = {
    "mlp": dict(widths=[5, 4], activation="relu", bias_init=0.1),
    "deep_linear": dict(widths=[5, 4], init="balanced"),
    "two_layer": dict(width=7, balanced=True),
}


def small_cfg(name, **kw):
  cfg = models.default_config(name)
  cfg.update(SMALL[name])
  cfg.update(kw)
  return cfg


def test_registry_contents_and_defaults():
  assert set(models.MODELS) == {"mlp", "deep_linear", "two_layer", "transformer", "ufm",
                                 "matrix_factorization", "cp_factorization",
                                 "tubal_factorization"}
  for name, mod in models.MODELS.items():
    cfg = models.default_config(name)
    assert isinstance(cfg, ml_collections.ConfigDict)
    assert cfg.name == name and cfg.in_dim is None and cfg.out_dim is None
    assert cfg.init_scale == 1.0
    for fn in ("default_config", "validate", "init", "apply", "readout"):
      assert callable(getattr(mod, fn))
    # default_config returns a fresh copy each time
    cfg.init_scale = 9.0
    assert models.default_config(name).init_scale == 1.0
    assert models.validate(models.default_config(name)).name == name


def test_unknown_name_names_field_and_allowed():
  for call in (lambda: models.default_config("cnn"),
               lambda: models.validate(ml_collections.ConfigDict(dict(name="cnn"))),
               lambda: models.build(dict(name="cnn"), 3, 2),
               lambda: models.validate(dict(widths=[3]))):
    with pytest.raises(ConfigError) as e:
      call()
    msg = str(e.value)
    assert "model.name" in msg
    for allowed in ("'mlp'", "'deep_linear'", "'two_layer'"):
      assert allowed in msg


def test_unknown_field_names_field_and_allowed():
  cfg = models.default_config("two_layer").to_dict()
  cfg["widths"] = [3]                       # an mlp field, not a two_layer one
  with pytest.raises(ConfigError) as e:
    models.validate(cfg)
  msg = str(e.value)
  assert "model" in msg and "widths" in msg and "width" in msg and "output_scale" in msg


def test_field_errors_name_model_field():
  cfg = small_cfg("mlp").to_dict()
  cfg["activation"] = "sigmoid"
  with pytest.raises(ConfigError, match=r"model\.activation.*'tanh'.*'relu'"):
    models.validate(cfg)
  with pytest.raises(ConfigError, match=r"model\.widths"):
    models.build(small_cfg("deep_linear", widths=[5, 2]), in_dim=4, out_dim=3)


def test_build_fills_dims_and_completes_defaults():
  partial = ml_collections.ConfigDict(dict(name="mlp", widths=[3]))
  model = models.build(partial, in_dim=6, out_dim=2)
  assert isinstance(model, models.Model) and isinstance(model, tuple)
  assert model._fields == ("init", "apply", "config", "readout", "penalty", "layers")
  assert model.config.in_dim == 6 and model.config.out_dim == 2
  assert model.config.activation == "tanh" and model.config.parameterization == "standard"
  assert partial.get("in_dim") is None                      # the caller's cfg is untouched
  params = model.init(jax.random.PRNGKey(0))
  assert params["W1"].shape == (6, 3) and params["W2"].shape == (3, 2)
  assert params["W1"].dtype == jnp.float32
  # dims already in the cfg are used when the arguments are absent or agree
  cfg = small_cfg("two_layer")
  cfg.in_dim, cfg.out_dim = 4, 1
  assert models.build(cfg).config.in_dim == 4
  assert models.build(cfg, in_dim=4, out_dim=1).config.out_dim == 1


def test_build_dimension_errors():
  with pytest.raises(ConfigError, match=r"model\.in_dim"):
    models.build(models.default_config("mlp"), out_dim=2)
  with pytest.raises(ConfigError, match=r"model\.out_dim"):
    models.build(models.default_config("mlp"), in_dim=2)
  cfg = models.default_config("deep_linear")
  cfg.in_dim = 5
  with pytest.raises(ConfigError, match=r"model\.in_dim"):
    models.build(cfg, in_dim=6, out_dim=2)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_built_model_matches_module(name):
  model = models.build(small_cfg(name), in_dim=6, out_dim=3)
  mod = models.MODELS[name]
  key = jax.random.PRNGKey(1)
  p = model.init(key, dtype=jnp.float64)
  p_mod = mod.init(key, model.config, jnp.float64)
  x = jax.random.normal(jax.random.PRNGKey(2), (4, 3, 2), jnp.float64)
  out, feats = model.apply(p, x, return_features=True)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(mod.apply(p_mod, x, model.config)))
  assert out.shape == (4, 3) and out.dtype == jnp.float64
  assert feats.ndim == 2 and feats.shape[0] == 4
  assert model.apply(p, x).shape == (4, 3)
  # later edits of model.config do not change the built model
  model.config.init_scale = 5.0
  np.testing.assert_array_equal(np.asarray(model.init(key, dtype=jnp.float64)[sorted(p)[0]]),
                                np.asarray(p[sorted(p)[0]]))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_init_scale_contract_as_the_training_loop_uses_it(name):
  """vmap over seeds (traced keys) and ratios: params(c) == (c / c0) * params(c0)."""
  base = models.build(small_cfg(name, init_scale=0.5), in_dim=6, out_dim=3)
  seeds = jnp.asarray([0, 1, 2], jnp.uint32)
  ratios = jnp.asarray([1.0, 4.0, 0.2], jnp.float64)

  def member(seed, ratio):
    params = base.init(jax.random.PRNGKey(seed), dtype=jnp.float64)
    return jax.tree.map(lambda p: p * ratio.astype(p.dtype), params)

  stacked = jax.jit(jax.vmap(member))(seeds, ratios)
  for i in range(3):
    direct = models.build(small_cfg(name, init_scale=0.5 * float(ratios[i])), 6, 3)
    p = direct.init(jax.random.PRNGKey(int(seeds[i])), dtype=jnp.float64)
    for k in p:
      np.testing.assert_allclose(np.asarray(stacked[k][i]), np.asarray(p[k]), rtol=1e-12,
                                 atol=1e-15)


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_dtype_everywhere(name, dtype):
  model = models.build(small_cfg(name), in_dim=6, out_dim=3)
  params = model.init(jax.random.PRNGKey(0), dtype=dtype)
  assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(params))
  assert all(isinstance(v, jax.Array) for v in params.values()) and type(params) is dict
  out, feats = model.apply(params, jnp.ones((2, 6), jnp.float32), return_features=True)
  assert out.dtype == dtype and feats.dtype == dtype
