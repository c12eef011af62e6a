"""GD's central flow: its terms against dense / finite-difference references, and its
predictions against real GD at the edge of stability on a small digits MLP (float64)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from analysis import central_flow as cf
from analysis import curvature
from dynamics import data, losses, models


@pytest.fixture(scope="module")
def problem():
  ds = data.load(dict(name="digits", n_train=200, n_test=0, classes=[0, 1, 2, 3]))
  model = models.build(dict(name="mlp", widths=(32,), activation="tanh"), in_dim=ds.in_dim,
                       out_dim=ds.out_dim)
  params = model.init(jax.random.PRNGKey(0), dtype=jnp.float64)
  batch = {"x": jnp.asarray(ds.x_train, jnp.float64), "y": jnp.asarray(ds.y_train)}
  loss_fn = lambda p, b: jnp.mean(losses.mse(model.apply(p, b["x"]), b["y"]))
  return loss_fn, params, batch


def test_terms_match_dense_hessian_and_finite_differences(problem):
  loss_fn, params, batch = problem
  flat, unravel = ravel_pytree(params)
  U = jnp.asarray(np.linalg.qr(np.random.RandomState(0).randn(flat.size, 2))[0].T)
  t = cf.terms(loss_fn, params, batch, U)
  f = lambda x: loss_fn(unravel(x), batch)
  H = np.asarray(jax.hessian(f)(flat))
  np.testing.assert_allclose(t.M, U @ H @ U.T, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(t.HU, U @ H, rtol=1e-10, atol=1e-12)
  # g_ij = grad_w (u_i^T H(w) u_j): central differences of M along a random direction
  v = jnp.asarray(np.random.RandomState(1).randn(flat.size))
  eps = 1e-5
  M = lambda x: U @ np.asarray(jax.hessian(f)(x)) @ U.T
  fd = (M(flat + eps * v) - M(flat - eps * v)) / (2 * eps)
  np.testing.assert_allclose(np.einsum("ijn,n->ij", t.g, v), fd, rtol=1e-6, atol=1e-9)
  A0, B, active = cf.sdcp_inputs(t, eta=0.5, dt=0.25)
  Bm = np.asarray(B).reshape(4, 4)
  assert np.linalg.eigvalsh(0.5 * (Bm + Bm.T)).min() > -1e-12       # a Gram tensor: PSD
  np.testing.assert_array_equal(active, 0.5 * np.diagonal(t.M) >= cf.THRESHOLD)


def test_central_flow_tracks_time_averaged_gd_at_the_edge_of_stability(problem):
  # GD, central flow and stable flow side by side, from GD's iterate after its catapult (the
  # central flow describes the oscillation at the edge, not the escape from an unstable start)
  from experiments.configs import central_flow_gd
  from experiments.figures import central_flow as fig_cf
  c = central_flow_gd.get_config("quick")
  loss_fn, params, batch = problem                 # the same network, data and init as c
  assert (c.n_train, tuple(c.widths), c.seed) == (200, (32,), 0)
  S0 = curvature.top_eigenpairs(loss_fn, params, batch, k=1, num_iters=60).eigenvalues[0]
  assert float(S0) > 2 / c.learning_rate     # unstable at initialization: GD catapults first
  r = fig_cf.processes(c)
  eta, T = r["eta"], c.steps
  S = np.asarray(r["cf"].sharpness) * eta / 2
  assert np.all(np.abs(S[25:] - 1) < 1e-3)    # pinned at 2/eta
  assert np.asarray(r["gf"].sharpness)[-1] * eta / 2 > 1.1   # gradient flow sharpens past it
  assert np.all(np.asarray(r["gf"].X) == 0)
  # predicted time-averaged loss against GD's loss averaged over a 10-step window
  avg = np.convolve(r["gd_loss"], np.ones(10) / 10, mode="same")
  ratio = np.asarray(r["cf"].predicted_loss)[10:T - 10] / avg[10:T - 10]
  assert 0.9 < np.median(ratio) < 1.1 and np.all((ratio > 0.6) & (ratio < 1.6))
  # GD's midpoint (w_{T-1} + 2 w_T + w_{T+1}) / 4 is far closer to the central flow
  assert r["dist_cf"][-1] < r["dist_gf"][-1] / 5, (r["dist_cf"], r["dist_gf"])
