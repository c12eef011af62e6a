"""Curvature probes measured inside the compiled loop, against dense Hessians of kept params."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import tiny
from analysis import trajectory
from dynamics.config_utils import ConfigError
from analysis import probes as probes_lib
from dynamics import experiment
from dynamics import probes as dynamics_probes


def _dense_hessian(cfg, params):
  cfg = experiment.resolve(cfg)
  _, ds, _, _, _, program, _ = experiment.Experiment.from_config(cfg, resolved=True)
  batch = {"x": jnp.asarray(ds.x_train), "y": jnp.asarray(ds.y_train)}
  flat, unravel = ravel_pytree(params)
  return jax.hessian(lambda f: program.batch_loss(unravel(f), batch))(flat)


def _member(params, i):
  return {k: jnp.asarray(v[i]) for k, v in params.items()}


def test_sharpness_and_trace_probes_match_dense_hessian(tmp_path):
  cfg = tiny.config(steps=20, float64=True, lrs=(0.05, 0.3))
  cfg.probes.sharpness = dict(k=2, num_iters=40)
  cfg.probes.hessian_trace = dict(num_probes=200)
  t = trajectory.load(experiment.run(cfg, str(tmp_path / "r"), log=lambda *_: None))
  j = int(np.flatnonzero(t.steps == 20)[0])
  for i in range(2):
    H = _dense_hessian(cfg, _member(t.params(20), i))
    eig = np.linalg.eigvalsh(np.asarray(H))[::-1]
    np.testing.assert_allclose(t.metrics["sharpness/eigenvalues"][i, j], eig[:2], rtol=1e-6)
    np.testing.assert_allclose(t.metrics["sharpness/max"][i, j], eig[0], rtol=1e-6)
    est, se = t.metrics["hessian_trace/estimate"][i, j], t.metrics["hessian_trace/stderr"][i, j]
    assert abs(est - np.trace(np.asarray(H))) < 4 * se


def test_preconditioned_sharpness_probe_matches_dense(tmp_path):
  cfg = tiny.config(steps=10, float64=True, lrs=None)
  cfg.opt = type(cfg.opt)(dict(name="adam", learning_rate=0.01))
  cfg.probes.preconditioned_sharpness = dict(k=1, num_iters=40)
  t = trajectory.load(experiment.run(cfg, str(tmp_path / "a"), log=lambda *_: None))
  params = _member(t.params(10), 0)
  H = np.asarray(_dense_hessian(cfg, params))
  # P = (sqrt(nu_hat) + eps) / lr from the optimizer state kept at the same step
  opt = experiment.opt_lib(cfg.opt).build(experiment.resolve(cfg).opt)
  leaves = [jnp.asarray(x[0]) for x in t.opt_state_leaves(10)]
  template = jax.eval_shape(opt.init, params)
  state = jax.tree.unflatten(jax.tree.structure(template), leaves)
  P, _ = ravel_pytree(opt.preconditioner(state, params))
  s = 1 / np.sqrt(np.asarray(P))
  expected = np.linalg.eigvalsh(s[:, None] * H * s[None, :])[-1]
  j = int(np.flatnonzero(t.steps == 10)[0])
  np.testing.assert_allclose(t.metrics["preconditioned_sharpness/max"][0, j], expected, rtol=1e-6)
  # before the first update nu = 0 (P = eps / lr): no preconditioned sharpness yet
  assert t.steps[0] == 0 and np.isnan(t.metrics["preconditioned_sharpness/max"][0, 0])
  assert np.all(np.isfinite(t.metrics["preconditioned_sharpness/max"][0, 1:]))


def test_cold_solve_at_init_makes_cheap_warm_calls_accurate(tmp_path):
  cfg = tiny.config(steps=20, float64=True, lrs=(0.3,))
  cfg.probes.sharpness = dict(k=1, num_iters=6, cold_iters=40)
  t = trajectory.load(experiment.run(cfg, str(tmp_path / "w"), log=lambda *_: None))
  for step, rtol in ((0, 1e-8), (20, 1e-4)):
    j = int(np.flatnonzero(t.steps == step)[0])
    H = np.asarray(_dense_hessian(cfg, _member(t.params(step), 0)))
    np.testing.assert_allclose(t.metrics["sharpness/max"][0, j], np.linalg.eigvalsh(H)[-1],
                               rtol=rtol)
  # without the cold solve, 6 iterations from a random start are visibly off at step 0
  cfg.probes.sharpness = dict(k=1, num_iters=6, cold_iters=0)
  c = trajectory.load(experiment.run(cfg, str(tmp_path / "c"), log=lambda *_: None))
  H0 = np.asarray(_dense_hessian(cfg, _member(c.params(0), 0)))
  assert abs(c.metrics["sharpness/max"][0, 0] / np.linalg.eigvalsh(H0)[-1] - 1) > 1e-4


def test_tracked_sharpness_probe_matches_dense_hessian(tmp_path):
  # method='track' with a tolerance: block iterations until the residual is below 1e-7
  cfg = tiny.config(steps=20, float64=True, lrs=(0.05, 0.3))
  cfg.probes.sharpness = dict(k=2, num_iters=60, cold_iters=40, method="track", memory=2,
                              tol=1e-7)
  t = trajectory.load(experiment.run(cfg, str(tmp_path / "t"), log=lambda *_: None))
  for step in (0, 20):
    j = int(np.flatnonzero(t.steps == step)[0])
    for i in range(2):
      H = _dense_hessian(cfg, _member(t.params(step), i))
      eig = np.linalg.eigvalsh(np.asarray(H))[::-1]
      np.testing.assert_allclose(t.metrics["sharpness/eigenvalues"][i, j], eig[:2], rtol=1e-9)
      assert np.all(t.metrics["sharpness/residual"][i, j] <= 1e-7)
      assert 1 <= t.metrics["sharpness/iterations"][i, j] <= 60


def test_batch_sharpness_probe_of_one_full_batch_is_the_sharpness(tmp_path):
  # one "minibatch" holding every training example: lambda_max(H_B) is the full-batch
  # sharpness and g^T H g / ||g||^2 the Rayleigh quotient along the full gradient
  cfg = tiny.config(steps=20, float64=True, lrs=(0.3,))
  cfg.probes.batch_sharpness = dict(num_batches=1, num_iters=40)    # batch_size 0: full
  t = trajectory.load(experiment.run(cfg, str(tmp_path / "b"), log=lambda *_: None))
  j = int(np.flatnonzero(t.steps == 20)[0])
  params = _member(t.params(20), 0)
  H = np.asarray(_dense_hessian(cfg, params))
  _, ds, _, _, _, program, _ = experiment.Experiment.from_config(cfg)
  batch = {"x": jnp.asarray(ds.x_train), "y": jnp.asarray(ds.y_train)}
  g = np.asarray(ravel_pytree(jax.grad(program.batch_loss)(params, batch))[0])
  np.testing.assert_allclose(t.metrics["batch_sharpness/mean_lambda_max"][0, j],
                             np.linalg.eigvalsh(H)[-1], rtol=1e-6)
  np.testing.assert_allclose(t.metrics["batch_sharpness/directional"][0, j],
                             g @ H @ g / (g @ g), rtol=1e-6)


def test_batch_sharpness_probe_takes_the_training_batch_size(tmp_path):
  cfg = tiny.config(steps=20, lrs=None, batch_size=40)      # 120 training examples
  cfg.probes.batch_sharpness = dict(num_batches=4, batch_size=121)
  with pytest.raises(ConfigError, match=r"batch_sharpness.batch_size=121 .* at most the 120"):
    experiment.run(cfg, str(tmp_path / "s"), log=lambda *_: None)
  assert not (tmp_path / "s").exists()     # refused before anything was written
  # the default (0) is the training batch size: lambda_max(H_B) of one minibatch of 40
  cfg.train.float64 = True
  cfg.probes.batch_sharpness = dict(num_batches=1, num_iters=40)
  _, ds, model, _, _, program, _ = experiment.Experiment.from_config(cfg)
  params = model.init(jax.random.PRNGKey(3), dtype=np.float64)
  full = {"x": jnp.asarray(ds.x_train), "y": jnp.asarray(ds.y_train)}
  key = jax.random.PRNGKey(7)
  _, out = program.probes["batch_sharpness"].apply((), params, None, full, key)
  b = jax.tree.map(lambda v: v[0], probes_lib._minibatches(full, key, 40, 1))
  assert b["x"].shape[0] == 40 and len(np.unique(np.asarray(b["x"]), axis=0)) == 40
  flat, unravel = ravel_pytree(params)
  H = np.asarray(jax.hessian(lambda f: program.batch_loss(unravel(f), b))(flat))
  np.testing.assert_allclose(out["mean_lambda_max"], np.linalg.eigvalsh(H)[-1], rtol=1e-6)


def _adam_probe(opt_name="adam", **hp):
  from types import SimpleNamespace
  from dynamics import optimizers
  opt = optimizers.build(dict(name=opt_name, **hp))
  problem = SimpleNamespace(opt=opt)
  return opt, dynamics_probes.adam_moments({}, problem)


def test_adam_moments_probe_on_a_constructed_state():
  opt, probe = _adam_probe(learning_rate=0.1, b1=0.9, b2=0.99, eps=1e-8)
  mu = {"a": jnp.array([1e-3, 0.0, -2e-2], jnp.float32),
        "b": jnp.array([[5e-4, 1e-6]], jnp.float32)}
  nu = {"a": jnp.array([0.0, 0.0, 4e-4], jnp.float32), "b": jnp.array([[1e-6, 3e-9]], jnp.float32)}
  state = opt.init(mu)._replace(count=jnp.asarray(7, jnp.int32), mu=mu, nu=nu)
  out = probe(None, state, None)
  m = np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in mu.values()])
  v = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in nu.values()])
  step = np.abs(m / (1 - 0.9 ** 7)) / (np.sqrt(v / (1 - 0.99 ** 7)) + 1e-8)
  assert float(out["underflow_share"]) == pytest.approx(1 / 5)      # only a[0]: nu 0, mu not
  np.testing.assert_allclose(float(out["max_step"]), step.max(), rtol=1e-5)
  np.testing.assert_allclose(float(out["min_abs_nu"]), 3e-9, rtol=1e-6)


def test_adam_moments_probe_sees_a_float32_underflow_and_its_huge_step():
  # |g| = 1e-23: (1 - b2) g^2 = 1e-49 is below every float32 (normal or subnormal), so nu is
  # exactly 0 on any platform while mu = (1 - b1) g is not, and the step is lr * m_hat / eps.
  lr, eps = 0.01, 1e-25
  opt, probe = _adam_probe(learning_rate=lr, eps=eps, b2=0.999)
  params = {"w": jnp.ones((4,), jnp.float32)}
  g = {"w": jnp.array([1e-23, 1e-23, 1.0, 0.0], jnp.float32)}
  _, state = jax.jit(opt.update)(g, opt.init(params), params)
  out = probe(params, state, None)
  assert float(out["underflow_share"]) == pytest.approx(2 / 4)
  np.testing.assert_allclose(float(out["max_step"]), 1e-23 / eps, rtol=1e-5)    # 100, not ~1
  updates, _ = jax.jit(opt.update)(g, state, params)
  np.testing.assert_allclose(float(updates["w"][0]), -lr * 1e-23 / eps, rtol=1e-4)
  assert abs(float(updates["w"][2])) == pytest.approx(lr, rel=1e-3)


def test_adam_moments_probe_refuses_other_optimizers():
  with pytest.raises(ConfigError, match="opt.name 'adam' or 'adamw'.*'gd'"):
    _adam_probe("gd", learning_rate=0.1)
