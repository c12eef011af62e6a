"""Transformer: forward against a plain-numpy reference, init statistics, init_scale contract,
causal mask, cache, dtypes, config errors, and a tiny grokking run end to end."""
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from dynamics import models
from dynamics.config_utils import ConfigError
from dynamics.models import transformer as tf

P = 7          # modulus of the tiny configs: out_dim 7, d_vocab 8, tokens [a, b, 7]


def cfg_of(**kw):
  cfg = tf.default_config()
  cfg.update(dict(in_dim=3, out_dim=P, d_model=8, n_heads=2, d_head=4, d_mlp=16))
  cfg.update(kw)
  return cfg


def tokens(n, seed=0, p=P):
  rng = np.random.default_rng(seed)
  return np.stack([rng.integers(0, p, n), rng.integers(0, p, n), np.full(n, p)],
                  axis=1).astype(np.int32)


def randomize(params, seed=1):
  """Every leaf replaced by N(0, 0.5^2) draws (biases and LN params too, which init sets to
  constants), so the reference comparison exercises every parameter."""
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  return jax.tree.unflatten(treedef, [0.5 * jax.random.normal(k, l.shape, l.dtype)
                                      for k, l in zip(keys, leaves)])


# ---- an independent reference: plain numpy, loops over examples and heads --------------------
def np_act(name, z):
  if name == "relu":
    return np.maximum(z, 0.0)
  return 0.5 * z * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))


def np_ln(z, w, b):
  mu = z.mean(axis=-1, keepdims=True)
  var = ((z - mu) ** 2).mean(axis=-1, keepdims=True)
  return (z - mu) / np.sqrt(var + 1e-5) * w + b


def np_forward(params, x, cfg):
  """Logits [N, out_dim] computed one example, one head, one query position at a time."""
  g = jax.tree.map(np.asarray, params)
  w_u = g["W_E"].T if cfg.tied else g["W_U"]
  n_ctx = x.shape[1]
  out = []
  for tok in x:
    r = np.stack([g["W_E"][t] + g["W_pos"][i] for i, t in enumerate(tok)])   # [P, D]
    for l in range(cfg.n_layers):
      b = g["blocks"][str(l)]
      h = np_ln(r, b["ln1"]["w"], b["ln1"]["b"]) if cfg.layernorm else r
      heads = []
      for hd in range(cfg.n_heads):
        q, k, v = h @ b["W_Q"][hd].T, h @ b["W_K"][hd].T, h @ b["W_V"][hd].T    # [P, E]
        z = np.zeros((n_ctx, cfg.d_head))
        for i in range(n_ctx):
          s = np.array([q[i] @ k[j] / math.sqrt(cfg.d_head) if j <= i else -np.inf
                        for j in range(n_ctx)])                  # explicit causal mask
          a = np.exp(s - s.max())
          a /= a.sum()
          z[i] = a @ v
        heads.append(z)
      r = r + np.concatenate(heads, axis=1) @ b["W_O"].T         # head-major columns of W_O
      h = np_ln(r, b["ln2"]["w"], b["ln2"]["b"]) if cfg.layernorm else r
      r = r + np_act(cfg.activation, h @ b["W_in"].T + b["b_in"]) @ b["W_out"].T + b["b_out"]
    f = r[-1]
    if cfg.layernorm:
      f = np_ln(f, g["ln_final"]["w"], g["ln_final"]["b"])
    out.append(f @ w_u[:, :cfg.out_dim])
  return np.stack(out)


VARIANTS = {
    "default": {},
    "gelu": dict(activation="gelu"),
    "layernorm": dict(layernorm=True),
    "tied": dict(tied=True),
    "two_layers": dict(n_layers=2),
    "two_layers_ln_tied": dict(n_layers=2, layernorm=True, tied=True, d_vocab=10),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_forward_matches_numpy_reference(variant):
  cfg = cfg_of(**VARIANTS[variant])
  params = randomize(tf.init(jax.random.PRNGKey(0), cfg, jnp.float64))
  x = tokens(6)
  apply = jax.jit(lambda p, t: tf.apply(p, t, cfg))
  logits = apply(params, x)
  assert logits.shape == (6, P) and logits.dtype == jnp.float64
  np.testing.assert_allclose(np.asarray(logits), np_forward(params, x, cfg), rtol=1e-11,
                             atol=1e-12)
  # float arrays holding integers are tokens too
  np.testing.assert_array_equal(np.asarray(apply(params, x.astype(np.float32))),
                                np.asarray(logits))


def test_param_layout_and_names():
  cfg = cfg_of(n_layers=2, layernorm=True)
  p = tf.init(jax.random.PRNGKey(0), cfg)
  assert sorted(p) == ["W_E", "W_U", "W_pos", "blocks", "ln_final"]
  assert p["W_E"].shape == (P + 1, 8) and p["W_pos"].shape == (3, 8)
  assert p["W_U"].shape == (8, P + 1)
  assert sorted(p["blocks"]) == ["0", "1"]
  shapes = {k: v.shape for k, v in p["blocks"]["1"].items() if not k.startswith("ln")}
  assert shapes == {"W_Q": (2, 4, 8), "W_K": (2, 4, 8), "W_V": (2, 4, 8), "W_O": (8, 8),
                    "W_in": (16, 8), "b_in": (16,), "W_out": (8, 16), "b_out": (8,)}
  for ln in (p["blocks"]["0"]["ln1"], p["blocks"]["0"]["ln2"], p["ln_final"]):
    np.testing.assert_array_equal(np.asarray(ln["w"]), 1.0)
    np.testing.assert_array_equal(np.asarray(ln["b"]), 0.0)
  plain = tf.init(jax.random.PRNGKey(0), cfg_of())
  assert sorted(plain) == ["W_E", "W_U", "W_pos", "blocks"]
  assert sorted(plain["blocks"]["0"]) == ["W_K", "W_O", "W_Q", "W_V", "W_in", "W_out",
                                          "b_in", "b_out"]
  tied = tf.init(jax.random.PRNGKey(0), cfg_of(tied=True))
  assert "W_U" not in tied
  np.testing.assert_array_equal(np.asarray(tied["W_E"]), np.asarray(plain["W_E"]))
  assert tf.init(jax.random.PRNGKey(0), cfg_of(d_vocab=12))["W_E"].shape == (12, 8)
  # adding a layer leaves the first one as it was (documented key path)
  two = tf.init(jax.random.PRNGKey(0), cfg_of(n_layers=2))
  for k in plain["blocks"]["0"]:
    np.testing.assert_array_equal(np.asarray(two["blocks"]["0"][k]),
                                  np.asarray(plain["blocks"]["0"][k]))
  assert not np.array_equal(np.asarray(two["blocks"]["0"]["W_in"]),
                            np.asarray(two["blocks"]["1"]["W_in"]))


def test_init_statistics_at_nanda_widths():
  """Nanda et al.: every matrix N(0, 1/d_model) except W_U N(0, 1/d_vocab); zero MLP biases."""
  cfg = tf.default_config()
  cfg.in_dim, cfg.out_dim = 3, 113
  assert (cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp, cfg.n_layers) == (128, 4, 32, 512, 1)
  assert cfg.activation == "relu" and not cfg.layernorm and not cfg.tied and cfg.d_vocab is None
  p = jax.tree.map(np.asarray, tf.init(jax.random.PRNGKey(0), cfg, jnp.float64))
  b = p["blocks"]["0"]
  assert p["W_E"].shape == (114, 128) and p["W_U"].shape == (128, 114)
  for name, w in [("W_E", p["W_E"]), ("W_pos", p["W_pos"]), ("W_Q", b["W_Q"]),
                  ("W_K", b["W_K"]), ("W_V", b["W_V"]), ("W_O", b["W_O"]),
                  ("W_in", b["W_in"]), ("W_out", b["W_out"])]:
    tol = 0.25 if name == "W_pos" else 0.04        # W_pos has only 384 entries
    np.testing.assert_allclose(w.std(), 1 / math.sqrt(128), rtol=tol, err_msg=name)
    assert abs(w.mean()) < 4 / math.sqrt(128 * w.size) + 1e-3, name
  np.testing.assert_allclose(p["W_U"].std(), 1 / math.sqrt(114), rtol=0.04)
  np.testing.assert_array_equal(b["b_in"], 0.0)
  np.testing.assert_array_equal(b["b_out"], 0.0)
  # the matrices are independent draws
  assert abs(np.corrcoef(b["W_Q"].ravel(), b["W_K"].ravel())[0, 1]) < 0.05


@pytest.mark.parametrize("variant", ["default", "layernorm", "two_layers_ln_tied"])
def test_init_scale_contract(variant):
  key = jax.random.PRNGKey(3)
  base = tf.init(key, cfg_of(**VARIANTS[variant]), jnp.float64)
  scaled = tf.init(key, cfg_of(init_scale=0.3, **VARIANTS[variant]), jnp.float64)
  assert jax.tree.structure(base) == jax.tree.structure(scaled)
  for a, b in zip(jax.tree.leaves(base), jax.tree.leaves(scaled)):
    np.testing.assert_allclose(np.asarray(b), 0.3 * np.asarray(a), rtol=1e-14, atol=0)
  # as the training loop uses it: jit + vmap over seeds and ratios
  model = models.build(cfg_of(init_scale=0.5, **VARIANTS[variant]))
  ratios = jnp.asarray([1.0, 4.0], jnp.float64)
  stacked = jax.jit(jax.vmap(lambda s, r: jax.tree.map(
      lambda q: q * r, model.init(jax.random.PRNGKey(s), dtype=jnp.float64))))(
          jnp.asarray([0, 1], jnp.uint32), ratios)
  for i, s in enumerate([0, 1]):
    direct = tf.init(jax.random.PRNGKey(s), cfg_of(init_scale=0.5 * float(ratios[i]),
                                                   **VARIANTS[variant]), jnp.float64)
    for a, b in zip(jax.tree.leaves(stacked), jax.tree.leaves(direct)):
      np.testing.assert_allclose(np.asarray(a[i]), np.asarray(b), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("variant", ["default", "two_layers_ln_tied"])
def test_causal_mask(variant):
  cfg = cfg_of(**VARIANTS[variant])
  params = randomize(tf.init(jax.random.PRNGKey(0), cfg, jnp.float64))
  x = tokens(5, seed=2)
  _, cache = tf.run_with_cache(params, x, cfg)
  pat = np.asarray(cache["attn_pattern"])
  assert pat.shape == (5, cfg.n_layers, 2, 3, 3)
  np.testing.assert_allclose(pat.sum(axis=-1), 1.0, rtol=1e-12)
  np.testing.assert_array_equal(pat[..., np.triu_indices(3, 1)[0], np.triu_indices(3, 1)[1]], 0.0)
  assert np.all(pat[..., 1, 0] > 0)                          # and a real mix below it
  # changing the token at position t leaves the residual streams before t unchanged
  resid = np.asarray(cache["resid_post"])                      # [N, L, P, D]
  for t in (1, 2):
    x2 = x.copy()
    x2[:, t] = (x2[:, t] + 3) % (P + 1)
    resid2 = np.asarray(tf.run_with_cache(params, x2, cfg)[1]["resid_post"])
    np.testing.assert_array_equal(resid2[:, :, :t], resid[:, :, :t])
    assert np.all(np.abs(resid2[:, :, t:] - resid[:, :, t:]).max(axis=(1, 3)) > 1e-6)


@pytest.mark.parametrize("variant", ["default", "layernorm", "tied"])
def test_run_with_cache_agrees_with_apply(variant):
  cfg = cfg_of(**VARIANTS[variant])
  params = randomize(tf.init(jax.random.PRNGKey(0), cfg, jnp.float64))
  x = tokens(9)
  logits, feats = tf.apply(params, x, cfg, return_features=True)
  c_logits, cache = jax.jit(lambda p, t: tf.run_with_cache(p, t, cfg))(params, x)
  np.testing.assert_allclose(np.asarray(c_logits), np.asarray(logits), rtol=1e-13, atol=1e-13)
  shapes = {k: v.shape for k, v in cache.items()}
  assert shapes == {"attn_pattern": (9, 1, 2, 3, 3), "mlp_pre": (9, 1, 16), "mlp_post": (9, 1, 16),
                    "resid_post": (9, 1, 3, 8), "resid_final": (9, 8), "features": (9, 8)}
  np.testing.assert_allclose(np.asarray(cache["mlp_post"]),
                             np.maximum(np.asarray(cache["mlp_pre"]), 0.0), rtol=0, atol=0)
  np.testing.assert_allclose(np.asarray(cache["features"]), np.asarray(feats), rtol=1e-13)
  np.testing.assert_array_equal(np.asarray(cache["resid_final"]),
                                np.asarray(cache["resid_post"][:, -1, -1]))
  if not cfg.layernorm:
    np.testing.assert_array_equal(np.asarray(cache["resid_final"]), np.asarray(cache["features"]))
  w_u = np.asarray(params["W_E"]).T if cfg.tied else np.asarray(params["W_U"])
  np.testing.assert_allclose(np.asarray(feats) @ w_u[:, :P], np.asarray(logits), rtol=1e-12,
                             atol=1e-12)


def test_apply_computes_the_last_block_at_the_last_position_only():
  """apply skips the last block's query, MLP and residual at the positions the logits never
  read: XLA counts well under the FLOPs of the every-position forward of run_with_cache (the
  logits agree: the numpy reference and the test above)."""
  cfg = cfg_of(d_model=32, d_head=8, n_heads=4, d_mlp=128)
  params = tf.init(jax.random.PRNGKey(0), cfg)
  x = tokens(64)

  def flops(fn):
    cost = jax.jit(fn).lower(params).compile().cost_analysis()
    return float((cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"])

  last = flops(lambda p: tf.apply(p, x, cfg))
  every = flops(lambda p: tf.run_with_cache(p, x, cfg)[0])
  assert last < 0.55 * every, (last, every)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_dtypes_jit_vmap_grad(dtype):
  cfg = cfg_of(layernorm=True)
  model = models.build(cfg)
  params = model.init(jax.random.PRNGKey(0), dtype=dtype)
  assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(params))
  x, y = tokens(10), jnp.asarray(np.arange(10) % P, jnp.int32)
  out, feats = jax.jit(model.apply, static_argnums=2)(params, x, True)
  assert out.dtype == dtype and feats.dtype == dtype and feats.shape == (10, 8)

  def loss(p):
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(model.apply(p, x)), y[:, None], 1))

  g = jax.jit(jax.grad(loss))(params)
  assert all(leaf.dtype == dtype and bool(jnp.all(jnp.isfinite(leaf)))
             for leaf in jax.tree.leaves(g))
  # the '=' logit is dropped, so its unembedding column gets no gradient
  np.testing.assert_array_equal(np.asarray(g["W_U"][:, P]), 0.0)
  assert float(jnp.abs(g["blocks"]["0"]["W_Q"]).max()) > 0
  # vmap over a stack of params (the sweep axis)
  stack = lambda p: jax.tree.map(lambda a: jnp.stack([a, 2 * a]), p)
  vm = jax.jit(lambda p: jax.vmap(lambda q: model.apply(q, x))(stack(p)))(params)
  assert vm.shape == (2, 10, P)
  np.testing.assert_allclose(np.asarray(vm[0]), np.asarray(out),
                             rtol=1e-5 if dtype == jnp.float32 else 1e-12, atol=1e-6)


def test_registry_and_build():
  assert models.MODELS["transformer"] is tf
  cfg = models.default_config("transformer")
  assert cfg.name == "transformer" and cfg.in_dim is None and cfg.out_dim is None
  assert cfg.init_scale == 1.0
  model = models.build(ml_collections.ConfigDict(dict(name="transformer", d_model=8, n_heads=2,
                                                      d_head=4, d_mlp=16)), in_dim=3, out_dim=P)
  assert model.config.in_dim == 3 and model.config.out_dim == P and model.config.n_layers == 1
  assert model.apply(model.init(jax.random.PRNGKey(0)), tokens(4)).shape == (4, P)


@pytest.mark.parametrize("field, value, match", [
    ("activation", "tanh", r"model\.activation='tanh'.*'relu'.*'gelu'"),
    ("d_model", 0, r"model\.d_model=0 .*integer >= 1"),
    ("n_heads", 1.5, r"model\.n_heads=1\.5"),
    ("d_head", None, r"model\.d_head=None"),
    ("d_mlp", -4, r"model\.d_mlp=-4"),
    ("n_layers", 0, r"model\.n_layers=0"),
    ("layernorm", "yes", r"model\.layernorm='yes'.*True, False"),
    ("tied", 1, r"model\.tied=1.*True, False"),
    ("d_vocab", P, r"model\.d_vocab=7 .*>= out_dim \+ 1 = 8"),
    ("d_vocab", 1.0, r"model\.d_vocab=1\.0"),
    ("init_scale", 0.0, r"model\.init_scale=0\.0"),
    ("n_ctx", 3, r"unknown field.*n_ctx.*allowed fields.*d_model"),
])
def test_config_errors_name_the_field(field, value, match):
  cfg = cfg_of().to_dict()
  cfg[field] = value
  with pytest.raises(ConfigError, match=match):
    models.validate(cfg)
  with pytest.raises(ConfigError, match=match):
    models.build(cfg)


def test_input_shape_errors():
  cfg = cfg_of()
  params = tf.init(jax.random.PRNGKey(0), cfg)
  with pytest.raises(ValueError, match=r"tokens of shape \[N, n_ctx=3\]"):
    tf.apply(params, np.zeros((4, 4), np.int32), cfg)
  with pytest.raises(ValueError, match=r"n_ctx=3"):
    tf.apply(params, np.zeros((4,), np.int32), cfg)
  with pytest.raises(ConfigError, match=r"model\.in_dim"):
    tf.init(jax.random.PRNGKey(0), cfg_of(in_dim=None))


def test_tiny_grokking_run_end_to_end(tmp_path):
  """experiments.runner.run: transformer on tokens of modular addition, AdamW, cross-entropy."""
  from analysis import trajectory
  from dynamics import experiment
  from experiments.configs.common import base_config
  c = base_config("transformer", "modular", "adamw", loss="cross_entropy")
  c.data.update(dict(p=7, train_frac=0.5))
  c.model.update(dict(d_model=16, n_heads=2, d_head=8, d_mlp=32))
  c.opt.update(dict(learning_rate=3e-3, weight_decay=1.0, b2=0.98))
  c.train.update(dict(steps=20, log_every=5, chunk_steps=20, keep="every:10"))
  _, ds, model, _, _, program, _ = experiment.Experiment.from_config(c)
  assert program.data["x_train"].dtype == np.int32                # tokens stay integer
  assert program.data["x_test"].dtype == np.int32
  assert model.config.in_dim == 3 and model.config.out_dim == 7
  path = experiment.run(c, str(tmp_path / "run"), log=lambda *_: None)
  t = trajectory.load(path)
  loss = t.metrics["train_loss"][0]
  assert t.steps.tolist() == [0, 5, 10, 15, 20] and np.all(np.isfinite(loss))
  assert loss[-1] < loss[0]
  assert np.isfinite(t.metrics["test_acc"][0]).all()
  params = t.params(20)
  assert params["blocks"]["0"]["W_in"].shape == (1, 32, 16)
  assert params["W_E"].shape == (1, 8, 16)
