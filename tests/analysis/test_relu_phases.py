"""analysis.relu_phases on constructed curves and data: first crossings, the settled share and
alignment time, the escape time, the early growth rate against a numpy Euler integration of the
aligned neuron, the line fit, and the XOR Bayes accuracy against Monte Carlo."""
import math

import numpy as np
import pytest

from analysis import relu_phases as rp


def test_first_step_and_escape_time():
  steps = np.array([0, 2, 4, 6, 8])
  assert rp.first_step(steps, [False, False, True, False, True]) == 4.0
  assert math.isnan(rp.first_step(steps, [False] * 5))
  assert rp.escape_time(steps, [0.7, 0.69, 0.5, 0.34, 0.1]) == 6.0
  assert math.isnan(rp.escape_time(steps, [0.7, 0.69, 0.5, 0.4, 0.36]))
  with pytest.raises(ValueError, match="fraction=1.5 must lie in"):
    rp.escape_time(steps, np.ones(5), 1.5)
  with pytest.raises(ValueError, match="one shape"):
    rp.first_step(steps, [True])


def test_settled_share_and_alignment_time():
  mc = np.array([[0.1, 0.2, -0.5], [0.96, 0.5, -0.5], [0.97, 0.95, 0.2], [0.99, 0.99, 0.1]])
  dead = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 1], [0, 0, 1]])
  np.testing.assert_allclose(rp.settled_share(mc, dead, 0.95), [0, 1 / 3, 1, 1])
  assert rp.alignment_time([0, 10, 20, 30], mc, dead, 0.95) == 20.0
  assert math.isnan(rp.alignment_time([0, 10, 20, 30], mc, dead, 0.999))
  # a leading member axis
  assert rp.settled_share(np.stack([mc, mc]), np.stack([dead, dead]), 0.95).shape == (2, 4)


def test_growth_rate_against_the_aligned_neuron_ode():
  rng = np.random.default_rng(0)
  x = np.abs(rng.standard_normal((6, 3))) + 0.1
  y = np.array([1.0, 1.0, 1.0, -1.0, -1.0, -1.0])
  x[y < 0] *= -1
  lam = rp.growth_rates(x, y, "logistic")
  xp = x[y > 0].sum(0)
  assert lam[0] == pytest.approx(0.5 * np.linalg.norm(xp) / 6)
  assert rp.growth_rates(x, y, "mse")[1] == pytest.approx(np.linalg.norm(x[y < 0].sum(0)) / 6)
  # a neuron along x_+ with v = ||w|| under gradient flow of the mean logistic loss with f ~ 0:
  # dw/dt = v (1/N) sum y_i sigma(-y_i f_i) 1[w.x_i > 0] x_i, dv/dt likewise
  w, v, dt = 1e-6 * xp / np.linalg.norm(xp), 1e-6, 1e-3
  for _ in range(int(4 / dt)):
    f = v * np.maximum(x @ w, 0)
    g = y / (1 + np.exp(y * f)) / len(x)
    w, v = w + dt * v * (g * (x @ w > 0)) @ x, v + dt * g @ np.maximum(x @ w, 0)
  assert np.log(v / 1e-6) / 4 == pytest.approx(lam[0], rel=1e-3)
  with pytest.raises(ValueError, match="loss='hinge' is not allowed"):
    rp.growth_rates(x, y, "hinge")


def test_line_fit():
  x = np.array([1.0, 2.0, 3.0, 4.0])
  fit = rp.line_fit(x, 3 * x - 2)
  assert fit["slope"] == pytest.approx(3) and fit["intercept"] == pytest.approx(-2)
  assert fit["r2"] == pytest.approx(1)
  assert rp.line_fit(x, np.array([1.0, -1.0, 1.0, -1.0]))["r2"] < 0.3
  with pytest.raises(ValueError, match="n >= 2"):
    rp.line_fit([1.0], [2.0])


def test_xor_bayes_accuracy_against_monte_carlo():
  rng = np.random.default_rng(1)
  for a, eta in ((0.0, 0.0), (1.5, 0.0), (2.5, 0.2)):
    g = rng.standard_normal((2, 400_000))
    right = np.abs(a + g[0]) > np.abs(g[1])          # the rule |x.mu1| > |x.mu2| on +mu1
    flip = rng.random(g.shape[1]) < eta
    assert rp.xor_bayes_accuracy(a, 1.0, eta) == pytest.approx(np.mean(right != flip), abs=3e-3)
  assert rp.xor_bayes_accuracy(16.0, 2.0, 0.1) == pytest.approx(0.9, abs=1e-6)
  with pytest.raises(ValueError, match="label_noise=0.5 must lie in"):
    rp.xor_bayes_accuracy(1.0, 1.0, 0.5)
