"""The sharpness tracker (sharpness_probe(method='track'), analysis.lanczos.track_step): one
LOBPCG block iteration per call, against dense eigen-decompositions (float64, via conftest)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from analysis import curvature as cv
from analysis import lanczos
from analysis.lanczos import Track, track_step
from test_curvature import _run_probes, _stacked, dense_hessian, make_mlp, mlp_loss


# ---- a slowly changing random symmetric matrix, matrix-free ---------------------------------
def _drifting(n=200, seed=0):
  """A(t) = A0 + t E: top eigenvalues 10, 9, 8.5 over a bulk in [-3, 1], E symmetric with
  ||E|| ~ 0.04 (the top eigenvalue moves by ~0.3% per step)."""
  rng = np.random.default_rng(seed)
  u, _ = np.linalg.qr(rng.normal(size=(n, n)))
  w = np.linspace(-3.0, 1.0, n)
  w[-3:] = (8.5, 9.0, 10.0)
  e = rng.normal(size=(n, n))
  return (u * w) @ u.T, 0.01 * (e + e.T) / np.sqrt(n)


_STEP = jax.jit(lambda a, s, fill: track_step(lambda q: jnp.matmul(q, a), s, fill))


def _zeros(k, n):
  z = jnp.zeros((k, n))
  return Track(z, z, z)


def _fill(k, n, seed=1):
  return jnp.asarray(np.random.default_rng(seed).normal(size=(k, n)))


@pytest.mark.parametrize("k", [1, 2])
def test_track_follows_a_drifting_matrix_from_a_zero_start(k):
  a0, e = _drifting()
  n = a0.shape[0]
  s = _zeros(k, n)
  errs = []
  for t in range(60):
    a = a0 + t * e
    s, lam, res = _STEP(jnp.asarray(a), s, _fill(k, n))
    w = np.linalg.eigvalsh(a)[::-1][:k]
    errs.append(np.abs(np.asarray(lam) / w - 1))
    # the reported residual is that of the returned vectors and THIS step's matrix
    x, lam = np.asarray(s.x), np.asarray(lam)
    direct = np.linalg.norm(x @ a - lam[:, None] * x, axis=1) / np.abs(lam)
    np.testing.assert_allclose(np.asarray(res), direct, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1, rtol=1e-12)
  errs = np.array(errs)
  # Measured: from a random start the relative error falls below 1e-4 by step 6 (k = 1) / 7
  # (k = 2), and stays below 1.6e-5 from step 10 on (k = 2's second eigenvalue; 2e-6 for
  # k = 1) while the matrix keeps moving.
  assert errs[:3].max() > 1e-2                      # the start is far off: burn-in is real
  assert errs[10:].max() < 5e-5, errs[10:].max(axis=0)


def test_track_degenerate_blocks_give_no_nan():
  a0, _ = _drifting(n=50)
  a = jnp.asarray(a0)
  n, k = 50, 2
  top = np.linalg.eigvalsh(a0)[::-1][:k]
  x = jnp.asarray(np.linalg.qr(np.random.default_rng(2).normal(size=(n, k)))[0].T)
  r = jnp.asarray(np.random.default_rng(3).normal(size=(k, n)))
  starts = {
      "all zero": _zeros(k, n),
      "r = p = 0": Track(x, jnp.zeros((k, n)), jnp.zeros((k, n))),
      "p = 2 r": Track(x, r, 2 * r),
      "x = r = p": Track(x, x, x),
      "one zero row of x": Track(x.at[1].set(0.0), r, jnp.zeros((k, n))),
  }
  for name, s in starts.items():
    for _ in range(40):
      s, lam, res = _STEP(a, s, _fill(k, n))
      assert np.all(np.isfinite(np.asarray(lam))) and np.all(np.isfinite(np.asarray(res))), name
      assert all(np.all(np.isfinite(np.asarray(b))) for b in s), name
    np.testing.assert_allclose(np.asarray(lam), top, rtol=1e-8, err_msg=name)
  # the zero operator: eigenvalues 0, residuals 0, still no NaN
  s, lam, res = _STEP(jnp.zeros((n, n)), _zeros(k, n), _fill(k, n))
  assert np.all(np.asarray(lam) == 0) and np.all(np.asarray(res) == 0)
  assert all(np.all(np.isfinite(np.asarray(b))) for b in s)


# ---- a GD trajectory of a tiny MLP through the edge of stability -----------------------------
ETA = 0.5          # 2 / eta = 4: the sharpness (3.6 at init) dips, then rises past 4 by step
STEPS = 200        # ~50, to 6.3 at step 110; a catapult at 111-114 throws it to 3.9, after
                   # which it hovers at 3.9-4.4 (the edge of stability) oscillating each step


def gd_run():
  """params, batch and dense Hessians of the STEPS steps of GD at ETA from make_mlp()."""
  p, b = make_mlp()
  grad = jax.jit(jax.grad(mlp_loss))
  params, hessians = [], []
  for _ in range(STEPS):
    params.append(p)
    hessians.append(dense_hessian(mlp_loss, p, b))
    p = jax.tree.map(lambda w, g: w - ETA * g, p, grad(p, b))
  return params, b, hessians


@pytest.fixture(scope="module")
def trajectory():
  return gd_run()


def _track_along(trajectory, k, guard, memory=0, tol=0.0, num_iters=1, iterations=None):
  params, b, hessians = trajectory
  probe = cv.sharpness_probe(mlp_loss, k=k, method="track", cold_iters=40, guard=guard,
                             memory=memory, tol=tol, num_iters=num_iters)
  apply = jax.jit(probe.apply)
  s = probe.init(params[0], b)
  errs, key = [], jax.random.PRNGKey(0)
  for p, h in zip(params, hessians):
    s, m = apply(s, p, None, b, key)
    lam, res = np.asarray(m["eigenvalues"]), np.asarray(m["residual"])
    if iterations is not None:
      iterations.append(int(m["iterations"]))
      assert res.max() <= tol or iterations[-1] == num_iters     # converged, or the cap
    assert lam.shape == (k,) and res.shape == (k,)
    w = np.linalg.eigvalsh(h)[::-1][:k]
    errs.append(np.abs(lam / w - 1))
    x = np.asarray(s["track"].x)[:k]
    direct = np.linalg.norm(x @ h - lam[:, None] * x, axis=1) / np.abs(lam)
    np.testing.assert_allclose(res, direct, rtol=1e-8, atol=1e-12)
  return np.array(errs)


# Measured relative errors |lambda_i / lambda_i(dense) - 1| (max over the steps and the k):
#                         steps 5-99     10-99    100-129      130-199 (edge of stability)
#                         (sharpening)            (catapult)   max      median
# k=1                     6.5e-3         1.7e-4   0.70         0.105    4.3e-3
# k=1 guard 2             4.6e-4         1.8e-5   0.28         0.018    1.6e-3
# k=2                     6.1e-3         6.9e-5   0.65         0.024    1.9e-3
# k=1 memory 1            3.1e-3         8.0e-5   0.63         0.021    9.9e-4
# k=1 memory 2            1.2e-3         6.2e-5   0.57         4.9e-3   5.8e-5
# k=2 memory 2            1.2e-3         5.9e-6   0.42         6.5e-4   1.3e-5
# (warm Lanczos with 8 iterations per step, the eos_gd default: 2.7e-7, 0.020, 0.032.)
@pytest.mark.parametrize("k,guard,memory,sharpening,settled,eos", [
    (1, 0, 0, 2e-2, 5e-4, 0.2), (1, 2, 0, 2e-3, 5e-5, 0.05), (2, 0, 0, 2e-2, 2e-4, 0.06),
    (1, 0, 2, 4e-3, 2e-4, 0.015), (2, 0, 2, 4e-3, 2e-5, 2e-3)])
def test_track_along_gd_through_the_edge_of_stability(trajectory, k, guard, memory,
                                                      sharpening, settled, eos):
  errs = _track_along(trajectory, k, guard, memory)
  assert errs[0].max() < 1e-10                     # the cold solve at init, then one step
  assert errs[5:100].max() < sharpening, errs[5:100].max(axis=0)
  assert errs[10:100].max() < settled, errs[10:100].max(axis=0)
  assert errs[130:].max() < eos, errs[130:].max(axis=0)
  # and the catapult is where it lags most (the reason the residual is reported)
  assert errs[100:130].max() > 0.2


# With tol the block iteration repeats while the residual is above it (measured: memory 2,
# tol 1e-2: 1.38 iterations per step on average, at most 12, max error 8.1e-4 from step 5 on,
# catapult included; memory 0, tol 1e-3: 6.3 on average, max error 2.3e-5).
@pytest.mark.parametrize("memory,tol,bound,mean_iters", [(2, 1e-2, 3e-3, 2.0),
                                                          (0, 1e-3, 1e-4, 8.0)])
def test_track_with_tol_iterates_through_the_catapult(trajectory, memory, tol, bound,
                                                      mean_iters):
  iterations = []
  errs = _track_along(trajectory, 1, 0, memory, tol=tol, num_iters=20, iterations=iterations)
  iterations = np.array(iterations)
  assert errs[5:].max() < bound, errs[5:].max()
  assert 1 <= iterations.min() and iterations.max() <= 20
  assert 1 < iterations.mean() < mean_iters, iterations.mean()


def test_track_probe_vmapped_float32_and_every(trajectory):
  params, b64, hessians = trajectory
  p0, b = jax.tree.map(lambda x: x.astype(jnp.float32), (params[60], b64))
  members = [p0, jax.tree.map(lambda x: 0.5 * x, p0)]
  probe = cv.sharpness_probe(mlp_loss, k=1, method="track", every=2)   # random start
  outs, = _run_probes([probe], _stacked(members), None, b, calls=41)
  for m in outs:
    assert m["eigenvalues"].dtype == jnp.float32 and m["eigenvalues"].shape == (2, 1)
  assert np.all(np.isnan(np.asarray(outs[1]["eigenvalues"])))        # skipped call
  for i, p in enumerate(members):
    p = jax.tree.map(lambda x: x.astype(jnp.float64), p)
    w = np.linalg.eigvalsh(hessians[60] if i == 0 else dense_hessian(mlp_loss, p, b64))[-1]
    # 21 iterations on a fixed Hessian from a random start, in float32
    np.testing.assert_allclose(outs[40]["eigenvalues"][i, 0], w, rtol=1e-4)
    assert outs[40]["residual"][i, 0] < 1e-2


def test_track_preconditioned_probe_matches_dense(trajectory):
  params, b, hessians = trajectory
  members = [params[0], params[60]]
  P = [jax.tree.map(lambda x: jnp.full(x.shape, 2.0 + i, x.dtype), params[0]) for i in range(2)]
  pre = cv.sharpness_probe(mlp_loss, k=1, num_iters=60, method="track", tol=1e-8,
                           precondition_fn=lambda s, params: s["P"])
  outs, = _run_probes([pre], _stacked(members), {"P": _stacked(P)}, b, calls=2)
  for i, h in enumerate((hessians[0], hessians[60])):
    w = np.linalg.eigvalsh(h)[-1] / (2.0 + i)
    for m in outs:
      np.testing.assert_allclose(m["eigenvalues"][i, 0], w, rtol=1e-10)
      assert m["residual"][i, 0] <= 1e-8


def test_track_rejects_bad_settings():
  with pytest.raises(ValueError, match="method"):
    cv.sharpness_probe(mlp_loss, method="power")
  with pytest.raises(ValueError, match="guard"):
    cv.sharpness_probe(mlp_loss, method="track", guard=-1)


# ---- warm Lanczos that stops at a residual tolerance ---------------------------------------
def test_lanczos_until_stops_at_the_first_step_under_tol():
  a0, e = _drifting()
  a = jnp.asarray(a0 + 5 * e)
  mv = lambda x: a @ x
  rng = np.random.default_rng(3)
  w, u = np.linalg.eigh(np.asarray(a))
  starts = [u[:, -1] + 0.05 * rng.normal(size=a.shape[0]) / 14, rng.normal(size=a.shape[0])]
  for k, tol in ((1, 1e-3), (2, 1e-6)):
    for v0 in starts:
      theta, vec, res, j = lanczos.lanczos_until(mv, jnp.asarray(v0), 60, k, tol)
      j = int(j)
      # the same steps as plain Lanczos: the Ritz values of its first j steps, and j is the
      # first step count whose top-k residuals (computed directly) are all <= tol
      for m in range(k, j + 1):
        al, be, basis = lanczos.lanczos(mv, jnp.asarray(v0), m)
        t, y = np.linalg.eigh(np.asarray(lanczos._tridiagonal(al, be)))
        x = (y[:, ::-1][:, :k].T @ np.asarray(basis))
        direct = np.linalg.norm(x @ np.asarray(a) - t[::-1][:k, None] * x, axis=1)
        direct = direct / np.abs(t[::-1][:k])
        assert (direct.max() <= tol) == (m == j), (k, tol, m, j, direct)
      np.testing.assert_allclose(np.asarray(theta), t[::-1][:k], rtol=1e-12)
      np.testing.assert_allclose(np.asarray(res), direct, rtol=1e-6, atol=1e-14)
      np.testing.assert_allclose(np.asarray(theta), w[::-1][:k], rtol=tol)
  # vmapped members stop at their own step and keep their own result
  batched = jax.jit(jax.vmap(lambda v: lanczos.lanczos_until(mv, v, 60, 1, 1e-6)))
  out = batched(jnp.asarray(np.stack(starts)))
  for i, v0 in enumerate(starts):
    one = lanczos.lanczos_until(mv, jnp.asarray(v0), 60, 1, 1e-6)
    assert int(out[3][i]) == int(one[3])
    np.testing.assert_allclose(np.asarray(out[0][i]), np.asarray(one[0]), rtol=1e-12)
  assert int(out[3][0]) < int(out[3][1])                 # the warm start stopped sooner


# Measured: tol 1e-3 stops after 6.3 steps on average (at most 16), max relative error 9.8e-6
# from step 5 on, the catapult included; Lanczos-8 (the eos_gd default) errs by 0.02-0.03 there.
def test_lanczos_probe_with_tol_through_the_catapult(trajectory):
  params, b, hessians = trajectory
  probe = cv.sharpness_probe(mlp_loss, k=1, num_iters=30, cold_iters=40, tol=1e-3)
  apply = jax.jit(probe.apply)
  s, key, errs, iters = probe.init(params[0], b), jax.random.PRNGKey(0), [], []
  for i, (p, h) in enumerate(zip(params, hessians)):
    s, m = apply(s, p, None, b, jax.random.fold_in(key, i))
    iters.append(int(m["iterations"]))
    res = float(m["residual"][0])
    assert res <= 1e-3 or iters[-1] == 30
    x = np.asarray(ravel_pytree(jax.tree.map(lambda v: v[0], s["vectors"]))[0])
    lam = float(m["eigenvalues"][0])
    np.testing.assert_allclose(res, np.linalg.norm(h @ x - lam * x) / abs(lam), rtol=1e-6)
    errs.append(abs(lam / np.linalg.eigvalsh(h)[-1] - 1))
  errs, iters = np.array(errs), np.array(iters)
  assert errs[5:].max() < 1e-4, errs[5:].max()
  assert 1 <= iters.min() and 1 < iters.mean() < 8, iters.mean()


def test_cold_probe_is_a_fresh_solve_at_every_call(trajectory):
  params, b, _ = trajectory
  probe = cv.sharpness_probe(mlp_loss, k=1, num_iters=30, warm=False)
  s = probe.init(params[50])
  for i, p in enumerate(params[50:53]):
    key = jax.random.PRNGKey(i)
    s, m = probe.apply(s, p, None, b, key)
    cold = cv.top_eigenpairs(mlp_loss, p, b, k=1, num_iters=30, key=key)
    np.testing.assert_array_equal(np.asarray(m["eigenvalues"]), np.asarray(cold.eigenvalues))


def test_tol_and_warm_reject_the_methods_they_do_not_apply_to(trajectory):
  params, b, _ = trajectory
  with pytest.raises(ValueError, match="tol"):
    cv.top_eigenpairs(mlp_loss, params[0], b, method="lobpcg", tol=1e-3)
  with pytest.raises(ValueError, match="warm=False"):
    cv.sharpness_probe(mlp_loss, method="track", warm=False)
  with pytest.raises(ValueError, match="tol"):
    cv.sharpness_probe(mlp_loss, tol=1e-3, precondition_fn=lambda s, p: s)
