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
  loss_fn, params, batch = problem
  eta, T, T0 = 0.5, 200, 30
  S0 = float(curvature.top_eigenpairs(loss_fn, params, batch, k=1, num_iters=60)
             .eigenvalues[0])
  assert S0 > 2 / eta     # unstable at initialization: GD catapults first, then sits at EoS

  def gd(p, n):
    def body(p, _):
      l, g = jax.value_and_grad(loss_fn)(p, batch)
      return jax.tree.map(lambda a, b: a - eta * b, p, g), (l, ravel_pytree(p)[0])
    return jax.lax.scan(body, p, None, length=n)

  # the flows start from GD's iterate after the catapult (the central flow describes the
  # oscillation around the edge, not the escape from an unstable start)
  p0, _ = jax.jit(lambda p: gd(p, T0))(params)
  _, (gd_loss, gd_w) = jax.jit(lambda p: gd(p, T + 1))(p0)
  run = jax.jit(lambda p, thr: cf.gd_central_flow(loss_fn, p, batch, eta, T, k=3,
                                                    threshold=thr), static_argnums=1)
  p_cf, logs = run(p0, cf.THRESHOLD)
  p_gf, flow = run(p0, np.inf)                # no active direction: the stable (gradient) flow
  S = np.asarray(logs.sharpness) * eta / 2
  assert np.all(np.abs(S[25:] - 1) < 1e-3)    # pinned at 2/eta
  assert np.asarray(flow.sharpness)[-1] * eta / 2 > 1.1      # gradient flow sharpens past it
  assert np.all(np.asarray(flow.X) == 0)
  # predicted time-averaged loss against GD's loss averaged over a 10-step window
  avg = np.convolve(np.asarray(gd_loss), np.ones(10) / 10, mode="same")
  ratio = np.asarray(logs.predicted_loss)[10:T - 10] / avg[10:T - 10]
  assert 0.9 < np.median(ratio) < 1.1 and np.all((ratio > 0.6) & (ratio < 1.6))
  # GD's midpoint (w_{T-1} + 2 w_T + w_{T+1}) / 4 is far closer to the central flow
  mid = (gd_w[T - 1] + 2 * gd_w[T] + gd_w[T + 1]) / 4
  d_cf = float(jnp.linalg.norm(mid - ravel_pytree(p_cf)[0]))
  d_gf = float(jnp.linalg.norm(mid - ravel_pytree(p_gf)[0]))
  assert d_cf < d_gf / 5, (d_cf, d_gf)
