"""RK4 gradient flow against the closed-form flow of a quadratic, and inside the training loop."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tiny
from analysis import trajectory
from dynamics import flow
from dynamics.config_utils import ConfigError
from dynamics import experiment

D = jnp.array([10.0, 1.0, 0.1, -0.5], jnp.float64)  # one negative direction: the flow leaves it


def _quadratic(p):
  return 0.5 * jnp.sum(D * p["w"] ** 2) + 0.5 * jnp.sum(p["b"] ** 2)


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_rk4_flow_matches_closed_form_on_a_quadratic(alpha):
  gf = flow.GradientFlow(alpha=alpha, max_step=10.0, power_iters=20)
  p = {"w": jnp.ones(4, jnp.float64), "b": jnp.full((2,), 2.0, jnp.float64)}
  s = gf.init(p, jax.random.PRNGKey(0))
  step = jax.jit(lambda p, s: gf.step(_quadratic, p, s))
  for _ in range(60):
    _, p, s = step(p, s)
  t = float(s.time)
  np.testing.assert_allclose(float(s.sharpness), 10.0, rtol=1e-6)  # max |eigenvalue|
  np.testing.assert_allclose(t, 60 * alpha / 10.0, rtol=1e-6)        # dt = alpha / S
  exact_w = np.exp(-np.asarray(D) * t)
  exact_b = 2.0 * np.exp(-t)
  # RK4's local error is O((dt*lambda)^5): the slow and negative modes are exact to ~1e-5,
  # the stiff mode (dt*lambda = alpha) has decayed to ~e^-{6 alpha} either way.
  np.testing.assert_allclose(np.asarray(p["w"])[1:], exact_w[1:], rtol=2e-4 * alpha ** 4)
  np.testing.assert_allclose(np.asarray(p["b"]), exact_b, rtol=2e-4 * alpha ** 4)
  assert abs(float(p["w"][0]) - exact_w[0]) < 0.03 * alpha ** 4


def test_max_step_caps_the_step():
  gf = flow.GradientFlow(alpha=1.0, max_step=0.01, power_iters=3)
  p = {"w": jnp.ones(4, jnp.float64), "b": jnp.ones(2, jnp.float64)}
  loss, _, s = gf.step(_quadratic, p, gf.init(p, jax.random.PRNGKey(1)))
  np.testing.assert_allclose(float(loss), float(_quadratic(p)))     # the loss before the step
  np.testing.assert_allclose(float(s.time), 0.01)


def test_flow_runs_in_the_training_loop_and_decreases_the_loss(tmp_path):
  cfg = tiny.config(steps=30, lrs=None)
  cfg.opt = flow.default_config()
  cfg.opt.alpha = 0.5
  cfg.sweep.seed = (0, 1)
  t = trajectory.load(experiment.run(cfg, str(tmp_path / "gf"), log=lambda *_: None))
  loss, time = t.metrics["train_loss"], t.metrics["flow_time"]
  assert np.all(np.diff(loss, axis=1) < 0)          # gradient flow decreases the loss
  assert np.all(np.diff(time, axis=1) > 0)
  assert np.all(t.metrics["flow_sharpness"][:, 1:] > 0)


def test_flow_config_errors():
  cfg = tiny.config(lrs=None)
  cfg.opt = flow.default_config()
  cfg.opt.power_iters = 0
  with pytest.raises(ConfigError, match="opt.power_iters=0"):
    experiment.resolve(cfg)
  cfg.opt.power_iters = 3
  cfg.sweep.opt = {"learning_rate": [0.1]}
  with pytest.raises(ConfigError, match="sweep.opt.learning_rate cannot be swept"):
    experiment.resolve(cfg)
