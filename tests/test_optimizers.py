"""Optimizers vs hand-written numpy float64 formulas, optax, and their own preconditioners."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dynamics import optimizers
from dynamics.config_utils import ConfigError

ALL = optimizers.OPTIMIZERS
HP = dict(learning_rate=0.1, weight_decay=0.05, momentum=0.8, b1=0.8, b2=0.9, eps=1e-3)
# A non-constant schedule: warmup over 2 steps then cosine to 0.1 at step 6.
SCHED = dict(name="cosine", warmup_steps=2, total_steps=6, final_fraction=0.1)


def sched_np(c):
  """SCHED's multiplier at count c, written out: s = c + 1, warm(s) * cosine(s)."""
  s = c + 1
  warm = min(1.0, s / 2)
  p = min(1.0, max(0.0, (s - 2) / (6 - 2)))
  return warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def cfg_for(name, sched=SCHED, **over):
  cfg = optimizers.default_config(name)
  for k in cfg.keys():
    if k in HP:
      cfg[k] = HP[k]
  for k, v in over.items():
    cfg[k] = v
  cfg.schedule = optimizers.default_schedule_config()
  cfg.schedule.update(sched or {})
  return cfg


def params0(dtype=jnp.float64):
  rng = np.random.RandomState(0)
  return {"w": jnp.asarray(rng.randn(2, 3), dtype), "b": jnp.asarray(rng.randn(3), dtype)}


def grad_fn(params, c):
  """A params-dependent 'gradient' with a different offset at every step c."""
  rng = np.random.RandomState(100 + c)
  return {k: 0.3 * params[k] ** 3 + jnp.asarray(rng.randn(*params[k].shape), params[k].dtype)
          for k in sorted(params)}


def run(opt, steps=3, params=None):
  params = params if params is not None else params0()
  state = opt.init(params)
  out = []
  for c in range(steps):
    g = grad_fn(params, c)
    u, state = opt.update(g, state, params)
    params = optax.apply_updates(params, u)
    out.append((u, params, state))
  return out


def reference(name, hp, mult, steps=3, nesterov=False, bias_correction=True):
  """Hand-written numpy float64 version of each rule; returns [(updates, params)] per step."""
  p = {k: np.asarray(v, np.float64) for k, v in params0().items()}
  lr0, wd = hp["learning_rate"], hp["weight_decay"]
  m = {k: np.zeros_like(v) for k, v in p.items()}
  v2 = {k: np.zeros_like(x) for k, x in p.items()}
  vs = 0.0
  out = []
  for c in range(steps):
    t = c + 1
    lr = lr0 * mult(c)
    g = {k: np.asarray(x, np.float64) for k, x in grad_fn({k: jnp.asarray(x) for k, x in
                                                             p.items()}, c).items()}
    if name != "adamw":
      g = {k: g[k] + wd * p[k] for k in p}
    u = {}
    if name in ("gd", "sgd"):
      u = {k: -lr * g[k] for k in p}
    elif name == "momentum":
      beta = hp["momentum"]
      for k in p:
        m[k] = beta * m[k] + g[k]
        u[k] = -lr * (g[k] + beta * m[k]) if nesterov else -lr * m[k]
    elif name == "rmsprop":
      b2, eps = hp["b2"], hp["eps"]
      for k in p:
        v2[k] = b2 * v2[k] + (1 - b2) * g[k] ** 2
        nh = v2[k] / (1 - b2 ** t) if bias_correction else v2[k]
        u[k] = -lr * g[k] / (np.sqrt(nh) + eps)
    elif name == "scalar_rmsprop":
      b2, eps = hp["b2"], hp["eps"]
      vs = b2 * vs + (1 - b2) * sum(np.sum(g[k] ** 2) for k in p)
      nh = vs / (1 - b2 ** t) if bias_correction else vs
      u = {k: -lr * g[k] / (np.sqrt(nh) + eps) for k in p}
    else:
      b1, b2, eps = hp["b1"], hp["b2"], hp["eps"]
      for k in p:
        m[k] = b1 * m[k] + (1 - b1) * g[k]
        v2[k] = b2 * v2[k] + (1 - b2) * g[k] ** 2
        mh, nh = m[k] / (1 - b1 ** t), v2[k] / (1 - b2 ** t)
        u[k] = -lr * mh / (np.sqrt(nh) + eps)
        if name == "adamw":
          u[k] = u[k] - lr * wd * p[k]
    p = {k: p[k] + u[k] for k in p}
    out.append((u, p))
  return out


def assert_tree_close(a, b, rtol=1e-12, atol=1e-14):
  assert sorted(a) == sorted(b)
  for k in a:
    np.testing.assert_allclose(np.asarray(a[k]), np.asarray(b[k]), rtol=rtol, atol=atol,
                               err_msg=k)


VARIANTS = [("gd", {}), ("sgd", {}), ("momentum", {}), ("momentum", dict(nesterov=True)),
            ("rmsprop", {}), ("rmsprop", dict(bias_correction=True)), ("scalar_rmsprop", {}),
            ("scalar_rmsprop", dict(bias_correction=True)), ("adam", {}), ("adamw", {})]


@pytest.mark.parametrize("name,extra", VARIANTS)
def test_three_steps_match_numpy_formula(name, extra):
  opt = optimizers.build(cfg_for(name, **extra))
  got = run(opt)
  want = reference(name, HP, sched_np, nesterov=extra.get("nesterov", False),
                   bias_correction=extra.get("bias_correction", name in ("adam", "adamw")))
  for (u, p, state), (wu, wp) in zip(got, want):
    assert_tree_close(u, wu)
    assert_tree_close(p, wp)
  assert int(got[-1][2].count) == 3


def test_reference_differs_between_optimizers():
  """The numpy references are not all the same rule (guards against a vacuous comparison)."""
  finals = {n: reference(n, HP, sched_np)[-1][1]["w"] for n in
            ("gd", "momentum", "rmsprop", "scalar_rmsprop", "adam", "adamw")}
  names = sorted(finals)
  for i, a in enumerate(names):
    for b in names[i + 1:]:
      assert not np.allclose(finals[a], finals[b]), (a, b)


def _optax_for(name, opt, extra):
  lr = lambda c: HP["learning_rate"] * opt.schedule(c)
  wd = HP["weight_decay"]
  if name in ("gd", "sgd"):
    return optax.chain(optax.add_decayed_weights(wd), optax.sgd(lr))
  if name == "momentum":
    return optax.chain(optax.add_decayed_weights(wd),
                       optax.sgd(lr, momentum=HP["momentum"], nesterov=extra.get("nesterov")))
  if name == "rmsprop":
    return optax.chain(optax.add_decayed_weights(wd),
                       optax.rmsprop(lr, decay=HP["b2"], eps=HP["eps"], eps_in_sqrt=False,
                                     bias_correction=extra.get("bias_correction", False)))
  if name == "adam":
    return optax.chain(optax.add_decayed_weights(wd),
                       optax.adam(lr, b1=HP["b1"], b2=HP["b2"], eps=HP["eps"]))
  return optax.adamw(lr, b1=HP["b1"], b2=HP["b2"], eps=HP["eps"], weight_decay=wd)


@pytest.mark.parametrize("name,extra", [v for v in VARIANTS if v[0] != "scalar_rmsprop"])
def test_matches_optax(name, extra):
  opt = optimizers.build(cfg_for(name, **extra))
  ref = _optax_for(name, opt, extra)
  params = params0()
  rstate = ref.init(params)
  for (u, p, _), c in zip(run(opt), range(3)):
    ru, rstate = ref.update(grad_fn(params, c), rstate, params)
    params = optax.apply_updates(params, ru)
    assert_tree_close(u, ru, rtol=1e-10)
    assert_tree_close(p, params, rtol=1e-10)


def test_optax_plain_adam_without_weight_decay():
  opt = optimizers.build(cfg_for("adam", sched=None, weight_decay=0.0))
  ref = optax.adam(HP["learning_rate"], b1=HP["b1"], b2=HP["b2"], eps=HP["eps"])
  params, rstate = params0(), None
  rstate = ref.init(params)
  for (u, _, _), c in zip(run(opt), range(3)):
    ru, rstate = ref.update(grad_fn(params, c), rstate, params)
    params = optax.apply_updates(params, ru)
    assert_tree_close(u, ru, rtol=1e-10)


# ---- preconditioner ------------------------------------------------------------------------
def _inv_times(P, d):
  return {k: -d[k] / P[k] for k in d}


@pytest.mark.parametrize("name", ["gd", "sgd", "momentum"])
def test_preconditioner_gives_next_step_exactly(name):
  """gd: u_{t+1} = -P(state_t)^{-1} g_{t+1}; heavy-ball: -P(state_t)^{-1} m_{t+1}."""
  opt = optimizers.build(cfg_for(name, weight_decay=0.0))
  steps = run(opt)
  params = params0()
  for t in range(2):
    _, p_t, s_t = steps[t]
    u_next, _, s_next = steps[t + 1]
    P = opt.preconditioner(s_t, p_t)
    d = s_next.mu if name == "momentum" else grad_fn(p_t, t + 1)
    assert_tree_close(_inv_times(P, d), u_next)
    for k in P:
      assert P[k].shape == params[k].shape
  # Schedule: P at count 0 is 1 / (lr * multiplier(0)).
  P0 = opt.preconditioner(opt.init(params), params)
  np.testing.assert_allclose(P0["b"], 1 / (HP["learning_rate"] * sched_np(0)), rtol=1e-12)


@pytest.mark.parametrize("name,extra", [("rmsprop", {}), ("rmsprop", dict(bias_correction=True)),
                                        ("scalar_rmsprop", dict(bias_correction=True)),
                                        ("adam", {})])
def test_adaptive_preconditioner_is_the_latest_one(name, extra):
  """Constant schedule, wd = 0: the step just taken is -P(new state)^{-1} (g or m_hat)."""
  opt = optimizers.build(cfg_for(name, sched=None, weight_decay=0.0, **extra))
  params = params0()
  for t, (u, p, s) in enumerate(run(opt)):
    P = opt.preconditioner(s, params)
    if name == "adam":
      d = jax.tree.map(lambda m: m / (1 - HP["b1"] ** (t + 1)), s.mu)
    else:
      d = grad_fn(params, t)
    assert_tree_close(_inv_times(P, d), u)
    params = p


def test_adaptive_preconditioner_uses_current_learning_rate():
  """With a schedule, P(state_t) has lr at count t, and nu_t: u_t * lr(t-1)/lr(t) check."""
  opt = optimizers.build(cfg_for("adam", weight_decay=0.0))
  steps = run(opt)
  u, _, s = steps[1]
  P = opt.preconditioner(s)
  mh = jax.tree.map(lambda m: m / (1 - HP["b1"] ** 2), s.mu)
  scaled = {k: u[k] * sched_np(2) / sched_np(1) for k in u}
  assert_tree_close(_inv_times(P, mh), scaled)


def test_preconditioner_at_init_and_errors():
  params = params0()
  adam = optimizers.build(cfg_for("adam", sched=None))
  P = adam.preconditioner(adam.init(params))
  assert_tree_close(P, {k: np.full(v.shape, HP["eps"] / HP["learning_rate"])
                        for k, v in params.items()})
  gd = optimizers.build(cfg_for("gd"))
  with pytest.raises(ValueError, match="preconditioner\\(state, params\\)"):
    gd.preconditioner(gd.init(params))
  with pytest.raises(ValueError, match="params"):
    gd.update(params, gd.init(params))


# ---- hyperparameters as arrays -------------------------------------------------------------
def test_hparam_names():
  assert optimizers.hparam_names("gd") == ("learning_rate", "weight_decay")
  assert optimizers.hparam_names("momentum") == ("learning_rate", "weight_decay", "momentum")
  assert optimizers.hparam_names("rmsprop") == ("learning_rate", "weight_decay", "b2", "eps")
  assert optimizers.hparam_names("adamw") == ("learning_rate", "weight_decay", "b1", "b2", "eps")
  for n in ALL:
    opt = optimizers.build({"name": n})
    assert opt.hparam_names == optimizers.hparam_names(n)
    assert sorted(opt.init(params0()).hparams) == sorted(opt.hparam_names)


@pytest.mark.parametrize("name", ALL)
def test_set_hparams_changes_the_step(name):
  opt = optimizers.build(cfg_for(name))
  params = params0()
  g = grad_fn(params, 0)
  s = opt.init(params)
  u1, _ = opt.update(g, s, params)
  s2 = optimizers.set_hparams(s, learning_rate=0.3, weight_decay=0.0)
  assert s2.hparams["learning_rate"].dtype == jnp.float64
  u2, _ = opt.update(g, s2, params)
  other = optimizers.build(cfg_for(name, learning_rate=0.3, weight_decay=0.0))
  want, _ = other.update(g, other.init(params), params)
  assert_tree_close(u2, want)
  assert not np.allclose(u1["w"], u2["w"])


def test_set_hparams_errors_and_casting():
  opt = optimizers.build(cfg_for("adam"))
  s = opt.init(params0(jnp.float32))
  with pytest.raises(KeyError, match="momentum.*b1, b2, eps, learning_rate, weight_decay"):
    optimizers.set_hparams(s, momentum=0.5)
  with pytest.raises(ValueError, match="shape"):
    optimizers.set_hparams(s, learning_rate=jnp.ones((2,)))
  s2 = optimizers.set_hparams(s, b2=np.float64(0.5))
  assert s2.hparams["b2"].dtype == jnp.float32
  np.testing.assert_allclose(s2.hparams["b2"], 0.5)


@pytest.mark.parametrize("name", ALL)
def test_vmap_over_learning_rates(name):
  opt = optimizers.build(cfg_for(name))
  params = params0()
  lrs = jnp.asarray([0.05, 0.1, 0.2], jnp.float64)

  def member(lr):
    state = optimizers.set_hparams(opt.init(params), learning_rate=lr)
    p = params
    for c in range(3):
      u, state = opt.update(grad_fn(p, c), state, p)
      p = optax.apply_updates(p, u)
    return p, state

  got, states = jax.jit(jax.vmap(member))(lrs)
  assert states.count.shape == (3,)
  for i, lr in enumerate([0.05, 0.1, 0.2]):
    want = reference(name, dict(HP, learning_rate=lr), sched_np,
                     bias_correction=name in ("adam", "adamw"))[-1][1]
    assert_tree_close({k: v[i] for k, v in got.items()}, want, rtol=1e-11)
    # The same member alone, configured by config.
    alone = run(optimizers.build(cfg_for(name, learning_rate=lr)))[-1][1]
    assert_tree_close({k: v[i] for k, v in got.items()}, alone, rtol=1e-11)


def test_vmapped_state_preconditioner_and_set_hparams():
  opt = optimizers.build(cfg_for("momentum"))
  params = params0()
  lrs = jnp.asarray([0.1, 0.2], jnp.float64)
  states = jax.vmap(lambda lr: optimizers.set_hparams(opt.init(params), learning_rate=lr))(lrs)
  P = jax.vmap(opt.preconditioner)(states)
  np.testing.assert_allclose(P["w"][:, 0, 0], 1 / (np.asarray([0.1, 0.2]) * sched_np(0)))
  states = optimizers.set_hparams(states, learning_rate=jnp.asarray([0.4, 0.5], jnp.float64))
  np.testing.assert_allclose(states.hparams["learning_rate"], [0.4, 0.5])


# ---- dtypes and jit ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_float32_stays_float32_under_x64(name):
  opt = optimizers.build(cfg_for(name))
  params = params0(jnp.float32)
  out = run(opt, params=params)
  for u, p, s in out:
    for tree in (u, p, s.mu, s.nu, s.hparams, opt.preconditioner(s, params)):
      for leaf in jax.tree.leaves(tree):
        assert leaf.dtype == jnp.float32, (name, tree)
    assert s.count.dtype == jnp.int32
  want = reference(name, HP, sched_np, bias_correction=name in ("adam", "adamw"))[-1][1]
  assert_tree_close(out[-1][1], want, rtol=1e-4, atol=1e-5)


WITH_MOMENTS = [n for n in ALL if n not in ("gd", "sgd")]


@pytest.mark.parametrize("name", WITH_MOMENTS)
def test_moments_float64_keeps_float32_params_and_matches_the_float64_formula(name):
  opt = optimizers.build(cfg_for(name, moments_float64=True))
  params = params0(jnp.float32)
  out = run(opt, params=params)
  for u, p, s in out:
    for tree in (u, p, opt.preconditioner(s, params)):
      assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(tree)), name
    for tree in (s.mu, s.nu):
      assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves(tree)), name
  want = reference(name, HP, sched_np, bias_correction=name in ("adam", "adamw"))[-1][1]
  assert_tree_close(out[-1][1], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["adam", "adamw", "rmsprop"])
def test_moments_float64_survives_gradients_whose_square_underflows_float32(name):
  # (1 - b2) g^2 = 1e-49 for g = 1e-23: below every float32, so a float32 nu is exactly 0
  # while m = (1 - b1) g is not, and the step becomes lr * g / eps (1e2 lr with eps = 1e-25):
  # float64 moments give the formula's step, lr * m_hat / sqrt(nu_hat) (about lr).
  hp = dict(learning_rate=0.01, b2=0.999, eps=1e-25)
  params = {"w": jnp.ones((3,), jnp.float32)}
  g = {"w": jnp.array([1e-23, -3e-23, 1.0], jnp.float32)}
  steps = {}
  for wide in (False, True):
    opt = optimizers.build(dict(name=name, moments_float64=wide, **hp))
    state = opt.init(params)
    for _ in range(3):
      u, state = jax.jit(opt.update)(g, state, params)
    steps[wide] = np.asarray(u["w"], np.float64) / hp["learning_rate"]
  gw = np.array([1e-23, -3e-23, 1.0])
  b1 = 0.9 if name != "rmsprop" else 0.0
  m = gw * (1 - b1 ** 3) if name != "rmsprop" else gw
  v = gw ** 2 * (1 - 0.999 ** 3)
  bc1, bc2 = (1 - b1 ** 3, 1 - 0.999 ** 3) if name != "rmsprop" else (1.0, 1.0)
  want = -(m / bc1) / (np.sqrt(v / bc2) + 1e-25)
  np.testing.assert_allclose(steps[True], want, rtol=1e-5)
  assert np.all(np.abs(steps[False][:2]) > 5 * np.abs(want[:2]))    # the float32 failure
  np.testing.assert_allclose(steps[False][2], want[2], rtol=1e-5)


def test_moments_float64_needs_x64_and_is_refused_without_moments():
  with pytest.raises(ConfigError, match="moments_float64"):
    optimizers.build(dict(name="gd", moments_float64=True))
  opt = optimizers.build(dict(name="adam", moments_float64=True))
  jax.config.update("jax_enable_x64", False)
  try:
    with pytest.raises(RuntimeError, match="moments_float64=True needs jax x64"):
      opt.init({"w": jnp.ones((2,), jnp.float32)})
  finally:
    jax.config.update("jax_enable_x64", True)


@pytest.mark.parametrize("name", ALL)
def test_jit_matches_eager(name):
  opt = optimizers.build(cfg_for(name))
  params = params0()
  s = opt.init(params)
  jitted = jax.jit(opt.update)
  for c in range(3):
    g = grad_fn(params, c)
    u1, s1 = opt.update(g, s, params)
    u2, s2 = jitted(g, s, params)
    assert_tree_close(u1, u2, rtol=1e-14)
    s = s2
    params = optax.apply_updates(params, u2)
  assert int(s.count) == 3
  P = jax.jit(opt.preconditioner)(s, params)
  assert_tree_close(P, opt.preconditioner(s, params))


# ---- schedules -----------------------------------------------------------------------------
@pytest.mark.parametrize("sched,expect", [
    (dict(name="constant"), {0: 1.0, 5: 1.0, 1000: 1.0}),
    (dict(name="warmup", warmup_steps=4), {0: 0.25, 1: 0.5, 2: 0.75, 3: 1.0, 4: 1.0, 99: 1.0}),
    (dict(name="cosine", warmup_steps=2, total_steps=10, final_fraction=0.1),
     {0: 0.5, 1: 1.0, 5: 0.1 + 0.45 * (1 + math.cos(math.pi * 4 / 8)),
      8: 0.1 + 0.45 * (1 + math.cos(math.pi * 7 / 8)), 9: 0.1, 10: 0.1, 50: 0.1}),
    (dict(name="cosine", total_steps=4),
     {0: 0.5 * (1 + math.cos(math.pi / 4)), 1: 0.5, 3: 0.0}),
    (dict(name="wsd", warmup_steps=2, total_steps=10, decay_fraction=0.3, final_fraction=0.1),
     {0: 0.5, 1: 1.0, 6: 1.0, 7: 1.0 - 0.9 / 3, 8: 1.0 - 1.8 / 3, 9: 0.1, 30: 0.1}),
    (dict(name="wsd", total_steps=10, decay_fraction=0.0), {0: 1.0, 9: 1.0, 20: 1.0}),
])
def test_schedule_values(sched, expect):
  fn = optimizers.schedule_fn(sched)
  jfn = jax.jit(fn)
  counts = sorted(expect)
  for c in counts:
    np.testing.assert_allclose(float(fn(c)), expect[c], rtol=1e-12, atol=1e-15, err_msg=str(c))
    np.testing.assert_allclose(float(jfn(jnp.int32(c))), expect[c], rtol=1e-12, atol=1e-15)
  vals = fn(jnp.asarray(counts, jnp.int32), jnp.float32)
  assert vals.dtype == jnp.float32 and vals.shape == (len(counts),)
  np.testing.assert_allclose(vals, [expect[c] for c in counts], rtol=1e-6, atol=1e-7)


def test_schedule_matches_sched_np_used_by_references():
  fn = optimizers.schedule_fn(SCHED)
  for c in range(8):
    np.testing.assert_allclose(float(fn(c)), sched_np(c), rtol=1e-14)


# ---- config --------------------------------------------------------------------------------
def test_default_config_fields():
  assert sorted(optimizers.default_config("gd").keys()) == [
      "learning_rate", "name", "perpgrad", "perpgrad_rescale", "schedule", "weight_decay"]
  cfg = optimizers.default_config("adam")
  assert (cfg.learning_rate, cfg.weight_decay, cfg.b1, cfg.b2, cfg.eps) == (
      0.01, 0.0, 0.9, 0.999, 1e-8)
  cfg = optimizers.default_config("rmsprop")
  assert (cfg.b2, cfg.eps, cfg.bias_correction) == (0.99, 1e-8, False)
  cfg = optimizers.default_config("momentum")
  assert (cfg.momentum, cfg.nesterov) == (0.9, False)
  assert dict(cfg.schedule) == dict(name="constant", warmup_steps=0, total_steps=0,
                                    final_fraction=0.0, decay_fraction=0.2)
  for n in ALL:
    optimizers.validate(optimizers.default_config(n))


def test_build_fills_defaults_including_partial_schedule():
  opt = optimizers.build({"name": "adam", "learning_rate": 0.5,
                          "schedule": {"name": "warmup", "warmup_steps": 2}})
  s = opt.init(params0())
  np.testing.assert_allclose(s.hparams["b2"], 0.999)
  np.testing.assert_allclose(s.hparams["learning_rate"], 0.5)
  np.testing.assert_allclose(float(opt.schedule(0)), 0.5)


@pytest.mark.parametrize("cfg,match", [
    (dict(name="lion"), "opt.name='lion'.*'gd', 'sgd', 'momentum', 'rmsprop', "
                        "'scalar_rmsprop', 'adam', 'adamw'"),
    (dict(name="gd", momentum=0.9), "opt: unknown field.*momentum.*allowed fields: "
                                    "learning_rate, name, perpgrad, perpgrad_rescale, schedule, "
                                    "weight_decay"),
    (dict(name="adam", b2=1.0), "opt.b2=1.0.*\\[0.0, 1.0\\)"),
    (dict(name="adam", b1=-0.1), "opt.b1=-0.1"),
    (dict(name="rmsprop", b2=1.5), "opt.b2=1.5"),
    (dict(name="momentum", momentum=1.0), "opt.momentum=1.0"),
    (dict(name="gd", learning_rate=-0.1), "opt.learning_rate=-0.1.*> 0"),
    (dict(name="gd", learning_rate=0.0), "opt.learning_rate=0.0"),
    (dict(name="gd", weight_decay=-1.0), "opt.weight_decay=-1.0.*>= 0"),
    (dict(name="adam", eps=-1e-8), "opt.eps"),
    (dict(name="momentum", nesterov=1), "opt.nesterov=1.*allowed values: True, False"),
    (dict(name="rmsprop", bias_correction="yes"), "opt.bias_correction"),
    (dict(name="gd", learning_rate="big"), "opt.learning_rate='big'.*a number"),
    (dict(name="gd", schedule=dict(name="step")),
     "opt.schedule.name='step'.*'constant', 'warmup', 'cosine', 'wsd'"),
    (dict(name="gd", schedule=dict(name="cosine")), "opt.schedule.total_steps=0.*required"),
    (dict(name="gd", schedule=dict(name="wsd", warmup_steps=5)), "opt.schedule.total_steps"),
    (dict(name="gd", schedule=dict(name="cosine", total_steps=5, warmup_steps=5)),
     "opt.schedule.warmup_steps=5"),
    (dict(name="gd", schedule=dict(name="wsd", total_steps=10, warmup_steps=9)),
     "opt.schedule.warmup_steps=9.*decay_fraction"),
    (dict(name="gd", schedule=dict(name="warmup")), "opt.schedule.warmup_steps=0"),
    (dict(name="gd", schedule=dict(warmup_steps=10)), "opt.schedule.warmup_steps=10.*constant"),
    (dict(name="gd", schedule=dict(name="warmup", warmup_steps=-1)),
     "opt.schedule.warmup_steps=-1.*integer >= 0"),
    (dict(name="gd", schedule=dict(name="warmup", warmup_steps=2.5)),
     "opt.schedule.warmup_steps=2.5.*an integer"),
    (dict(name="gd", schedule=dict(final_fraction=1.5)), "opt.schedule.final_fraction=1.5"),
    (dict(name="gd", schedule=dict(decay_fraction=-0.5)), "opt.schedule.decay_fraction=-0.5"),
    (dict(name="gd", schedule=dict(warmup=3)),
     "opt.schedule: unknown field.*warmup.*allowed fields: decay_fraction, final_fraction, "
     "name, total_steps, warmup_steps"),
])
def test_config_errors(cfg, match):
  with pytest.raises(ConfigError, match=match):
    optimizers.validate(cfg)
  with pytest.raises(ConfigError, match=match):
    optimizers.build(cfg)


def test_config_error_via_configdict_and_check_hparam():
  cfg = optimizers.default_config("adam")
  cfg.b2 = 1.0
  with pytest.raises(ConfigError, match="opt.b2"):
    optimizers.build(cfg)
  with pytest.raises(ConfigError, match="sweep.opt.learning_rate"):
    optimizers.check_hparam("learning_rate", -1.0, field="sweep.opt.learning_rate")
  with pytest.raises(ConfigError, match="opt.name"):
    optimizers.default_config("nadam")


def _perp_np(g, w, rescale=False):
  g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
  out = g - (np.sum(g * w) / np.sum(w * w)) * w
  return out * np.linalg.norm(g) / np.linalg.norm(out) if rescale else out


@pytest.mark.parametrize("name,rescale", [("gd", False), ("adamw", False), ("gd", True)])
def test_perpgrad_steps_use_the_orthogonal_gradient(name, rescale):
  # perpgrad=True equals the plain optimizer fed the projected gradients (numpy projection;
  # with perpgrad_rescale each tensor's projection scaled back to the norm of its gradient)
  plain = optimizers.build(cfg_for(name, sched=None))
  perp = optimizers.build(cfg_for(name, sched=None, perpgrad=True, perpgrad_rescale=rescale))
  params = params0()
  s_plain, s_perp = plain.init(params), perp.init(params)
  for c in range(3):
    g = grad_fn(params, c)
    g_perp = {k: jnp.asarray(_perp_np(g[k], params[k], rescale)) for k in g}
    if rescale:
      for k in g:
        np.testing.assert_allclose(np.linalg.norm(g_perp[k]), np.linalg.norm(g[k]), rtol=1e-12)
    u_ref, s_plain = plain.update(g_perp, s_plain, params)
    u, s_perp = perp.update(g, s_perp, params)
    for k in params:
      np.testing.assert_allclose(u[k], u_ref[k], rtol=1e-12, atol=1e-15)
      np.testing.assert_allclose(np.sum(np.asarray(g_perp[k]) * np.asarray(params[k])), 0,
                                 atol=1e-12)
    params = optax.apply_updates(params, u)


def test_perpgrad_optax_transformation():
  params = params0()
  g = grad_fn(params, 0)
  tx = optax.chain(optimizers.perpgrad(), optax.sgd(0.5))
  u, _ = tx.update(g, tx.init(params), params)
  for k in params:
    np.testing.assert_allclose(u[k], -0.5 * _perp_np(g[k], params[k]), rtol=1e-12)
  zero = {"w": jnp.zeros((2, 3)), "b": jnp.ones(3)}       # w = 0: the gradient is kept
  out, _ = optimizers.perpgrad().update(g, optax.EmptyState(), zero)
  np.testing.assert_allclose(out["w"], g["w"])
  with pytest.raises(ValueError, match="perpgrad needs params"):
    optimizers.perpgrad().update(g, optax.EmptyState())
  out, _ = optimizers.perpgrad(rescale=True).update(g, optax.EmptyState(), params)
  for k in params:
    np.testing.assert_allclose(out[k], _perp_np(g[k], params[k], rescale=True), rtol=1e-12)
  with pytest.raises(ConfigError, match="opt.perpgrad_rescale=True is not allowed with "
                                        "opt.perpgrad=False"):
    optimizers.build(dict(name="gd", perpgrad_rescale=True))


@pytest.mark.parametrize("b1", [0.0, 0.5, 0.9, 0.99])
def test_adam_threshold_is_where_the_frozen_preconditioner_iteration_turns_unstable(b1):
  # Adam with a frozen preconditioner on a quadratic, along an eigenvector of P^-1 H with
  # eigenvalue h: m' = b1 m + (1 - b1) h x, x' = x - m'. Its spectral radius crosses 1 at
  # h = (2 + 2 b1)/(1 - b1) (Cohen et al. 2022, Eq. 2), 38 at b1 = 0.9.
  thr = optimizers.stability_factor(dict(name="adam", b1=b1))

  def radius(h):
    A = np.array([[1 - (1 - b1) * h, -b1], [(1 - b1) * h, b1]])
    return np.max(np.abs(np.linalg.eigvals(A)))

  assert radius(0.999 * thr) < 1 < radius(1.001 * thr)


@pytest.mark.parametrize("cfg", [
    dict(name="gd"), dict(name="momentum", momentum=0.9),
    dict(name="momentum", momentum=0.9, nesterov=True), dict(name="momentum", momentum=0.5),
    dict(name="momentum", momentum=0.5, nesterov=True),
    # eps >> sqrt(nu) freezes P at eps / lr: the constant-preconditioner limit
    dict(name="adam", b1=0.9, eps=1e6), dict(name="rmsprop", eps=1e6)])
def test_stability_factor_is_where_the_optimizer_turns_unstable(cfg):
  # the engine's own updates on f(w) = 0.5 lam w^2 (float64): bounded just below
  # lam / P = c, growing without bound just above
  c = optimizers.stability_factor(cfg)
  lr = 0.1
  P = cfg.get("eps", 1.0) / lr if cfg["name"] in ("adam", "rmsprop") else 1 / lr
  opt = optimizers.build(dict(cfg, learning_rate=lr))

  def final(lam):
    def step(carry, _):
      w, s = carry
      u, s = opt.update({"w": lam * w}, s, {"w": w})
      return (w + u["w"], s), None
    # tiny, so that even Adam's transient (~1e16 from its bias-corrected first steps) keeps
    # the gradients far below eps: P stays eps / lr
    w0 = jnp.asarray(1e-200, jnp.float64)
    (w, _), _ = jax.lax.scan(step, (w0, opt.init({"w": w0})), None, length=2000)
    return abs(float(w)) / 1e-200

  assert final(0.99 * c * P) < 10          # x64 is on for the tests (conftest)
  assert final(1.01 * c * P) > 1e3


@pytest.mark.parametrize("name", ["rmsprop", "scalar_rmsprop"])
def test_nu_init_first_grad_starts_nu_at_the_first_squared_gradient(name):
  # nu_init='first_grad': the first update takes nu_prev = g_0^2 (what the central flows'
  # public code and the old real run did by setting the state), later updates are unchanged
  rng = np.random.RandomState(0)
  params = {"a": jnp.asarray(rng.randn(3, 2)), "b": jnp.asarray(rng.randn(4))}
  g = [jax.tree.map(lambda x: jnp.asarray(rng.randn(*x.shape)), params) for _ in range(2)]
  cfg = dict(name=name, learning_rate=0.1, b2=0.9)
  first, zeros = optimizers.build(dict(cfg, nu_init="first_grad")), optimizers.build(cfg)
  s, s0 = first.init(params), zeros.init(params)
  sq = (jax.tree.map(lambda x: x * x, g[0]) if name == "rmsprop" else
        sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(g[0])))
  u, s = first.update(g[0], s, params)
  u_ref, s_ref = zeros.update(g[0], s0._replace(nu=sq), params)     # nu set by hand
  for a, b in ((u, u_ref), (s.nu, s_ref.nu)):
    jax.tree.map(np.testing.assert_array_equal, a, b)
  jax.tree.map(np.testing.assert_array_equal, first.update(g[1], s, params)[0],
               zeros.update(g[1], s_ref, params)[0])
  assert first.adaptive and not optimizers.build(dict(name="gd")).adaptive
  with pytest.raises(ValueError, match="opt.nu_init"):
    optimizers.validate(dict(cfg, nu_init="ones"))
