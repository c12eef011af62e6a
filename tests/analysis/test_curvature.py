"""analysis.curvature against dense Hessians of tiny models (float64, via conftest)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from analysis import curvature as cv


# ---- tiny models ---------------------------------------------------------------------------
def mlp(p, x):
  return jnp.tanh(x @ p["w1"] + p["b1"][None]) @ p["w2"] + p["b2"][None]


def mse_of_outputs(out, y):
  return 0.5 * jnp.mean(jnp.sum(jnp.square(out - y), axis=1))


def mlp_loss(p, b):
  return mse_of_outputs(mlp(p, b["x"]), b["y"])


def make_mlp(seed=1, n=32, d=5, h=16, o=2, dtype=jnp.float64):
  """A 2-layer tanh MLP (130 params with the defaults) and a random regression batch."""
  k = jax.random.split(jax.random.PRNGKey(seed), 4)
  p = dict(w1=jax.random.normal(k[0], (d, h), dtype) / float(np.sqrt(d)), b1=jnp.zeros((h,), dtype),
           w2=jax.random.normal(k[1], (h, o), dtype) / 4, b2=jnp.zeros((o,), dtype))
  b = dict(x=jax.random.normal(k[2], (n, d), dtype), y=jax.random.normal(k[3], (n, o), dtype))
  return p, b


# A quadratic whose most negative eigenvalue (-10) is larger in magnitude than its largest (+3).
D_NEG = dict(a=jnp.array([-10.0, 3.0, 1.0, -0.5, 0.25, 2.0]),
             b=jnp.array([[0.5, -2.0], [1.5, 0.1], [-4.0, 0.0]]))


def quad_loss(p, batch):
  del batch
  return 0.5 * sum(jnp.sum(D_NEG[k] * jnp.square(p[k])) for k in p)


QUAD_PARAMS = dict(a=jnp.ones((6,)), b=jnp.ones((3, 2)))


@jax.jit
def _dense_hessian_mlp(p, b):
  flat, unravel = ravel_pytree(p)
  return jax.hessian(lambda f: mlp_loss(unravel(f), b))(flat)


def dense_hessian(loss_fn, p, b):
  if loss_fn is mlp_loss:
    return np.asarray(_dense_hessian_mlp(p, b))
  flat, unravel = ravel_pytree(p)
  return np.asarray(jax.hessian(lambda f: loss_fn(unravel(f), b))(flat))


def flat_vectors(tree):
  """[k, n] from an eigenvector pytree with a leading [k] axis."""
  return np.asarray(jax.vmap(lambda t: ravel_pytree(t)[0])(tree))


def assert_matches_dense(e, H, k, rtol=1e-6):
  w, U = np.linalg.eigh(H)
  w, U = w[::-1][:k], U[:, ::-1][:, :k]
  lam = np.asarray(e.eigenvalues)
  np.testing.assert_allclose(lam, w, rtol=rtol, atol=0)
  overlap = np.abs(np.sum(flat_vectors(e.eigenvectors) * U.T, axis=1))
  assert np.all(overlap > 1 - rtol), overlap
  assert np.all(np.asarray(e.residuals) < 1e-5), e.residuals


@pytest.fixture(scope="module")
def model():
  p, b = make_mlp()
  return p, b, dense_hessian(mlp_loss, p, b)


# ---- products ------------------------------------------------------------------------------
def test_hvp_matches_dense_and_chunks(model):
  p, b, H = model
  v = jax.tree.map(lambda x: jax.random.normal(jax.random.PRNGKey(3), x.shape, x.dtype), p)
  f = jax.jit(lambda p, v: (cv.hvp(mlp_loss, p, v, b), cv.hvp(mlp_loss, p, v, b, num_chunks=4)))
  hv, hv4 = f(p, v)
  want = H @ ravel_pytree(v)[0]
  np.testing.assert_allclose(ravel_pytree(hv)[0], want, rtol=0, atol=1e-10)
  np.testing.assert_allclose(ravel_pytree(hv4)[0], ravel_pytree(hv)[0], rtol=0, atol=1e-12)
  assert jax.tree.structure(hv4) == jax.tree.structure(p)
  with pytest.raises(ValueError, match="num_chunks"):
    cv.hvp(mlp_loss, p, v, b, num_chunks=5)


def test_ggn_vp_matches_dense(model):
  p, b, H = model
  flat, unravel = ravel_pytree(p)
  out = mlp(p, b["x"])
  J = jax.jit(jax.jacobian(lambda f: mlp(unravel(f), b["x"])))(flat).reshape(out.size, -1)
  Ho = jax.jit(jax.hessian(lambda o: mse_of_outputs(o.reshape(out.shape), b["y"])))(
      out.reshape(-1))
  G = np.asarray(J.T @ Ho @ J)
  v = jax.random.normal(jax.random.PRNGKey(4), flat.shape, flat.dtype)
  got = jax.jit(lambda v: cv.ggn_vp(mlp, mse_of_outputs, p, unravel(v), b))(v)
  np.testing.assert_allclose(ravel_pytree(got)[0], G @ v, rtol=0, atol=1e-10)
  # The GGN drops the network's second-order term: for the MLP it differs from the Hessian.
  assert np.max(np.abs(G - H)) > 1e-3


def test_ggn_equals_hessian_for_linear_model():
  k = jax.random.split(jax.random.PRNGKey(5), 4)
  p = dict(w=jax.random.normal(k[0], (4, 3)), c=jax.random.normal(k[1], (3,)))
  lin = lambda p, x: x @ p["w"] + p["c"][None]
  b = dict(x=jax.random.normal(k[2], (10, 4)), y=jax.random.normal(k[3], (10, 3)))
  v = jax.tree.map(lambda x: jnp.cos(jnp.arange(x.size, dtype=x.dtype)).reshape(x.shape), p)
  g, h = jax.jit(lambda p, v: (
      cv.ggn_vp(lin, mse_of_outputs, p, v, b),
      cv.hvp(lambda p, b: mse_of_outputs(lin(p, b["x"]), b["y"]), p, v, b)))(p, v)
  np.testing.assert_allclose(ravel_pytree(g)[0], ravel_pytree(h)[0], rtol=0, atol=1e-12)


# ---- Lanczos -------------------------------------------------------------------------------
def test_lanczos_breakdown_gives_no_nans():
  # 3 distinct eigenvalues: exact breakdown after 3 steps, then random restarts.
  d = jnp.array([2.0, 2.0, 2.0, -1.0, -1.0, 5.0, 5.0, 5.0, 5.0, 2.0])
  mv = lambda x: d * x
  f = jax.jit(lambda v0: cv.lanczos(mv, v0, 10))
  for v0 in (jnp.ones((10,)), jnp.zeros((10,))):
    a, bt, V = f(v0)
    assert a.shape == (10,) and bt.shape == (9,) and V.shape == (10, 10)
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(bt)) and np.all(np.isfinite(V))
    np.testing.assert_allclose(V @ V.T, np.eye(10), atol=1e-12)
    T = np.diag(a) + np.diag(bt, 1) + np.diag(bt, -1)
    np.testing.assert_allclose(np.linalg.eigvalsh(T), np.sort(d), atol=1e-10)
  assert abs(float(f(jnp.ones((10,)))[1][2])) < 1e-12        # the breakdown: beta set to 0
  # More steps than dimensions: still finite.
  a, bt, V = jax.jit(lambda v0: cv.lanczos(mv, v0, 13))(jnp.ones((10,)))
  assert np.all(np.isfinite(a)) and np.all(np.isfinite(V))


# ---- top eigenpairs ------------------------------------------------------------------------
@pytest.mark.parametrize("k,num_iters", [(1, 30), (5, 40)])
def test_top_eigenpairs_matches_dense(model, k, num_iters):
  p, b, H = model
  e = jax.jit(lambda p: cv.top_eigenpairs(mlp_loss, p, b, k=k, num_iters=num_iters))(p)
  assert_matches_dense(e, H, k)
  assert jax.tree.map(jnp.shape, e.eigenvectors) == jax.tree.map(lambda x: (k,) + x.shape, p)
  assert int(e.num_matvecs) == num_iters + k
  assert np.all(np.diff(np.asarray(e.eigenvalues)) <= 0)


@pytest.mark.parametrize("method", ["lanczos", "lobpcg"])
def test_largest_algebraic_not_magnitude(method):
  e = jax.jit(lambda p: cv.top_eigenpairs(quad_loss, p, None, k=2, num_iters=30,
                                          method=method))(QUAD_PARAMS)
  np.testing.assert_allclose(e.eigenvalues, [3.0, 2.0], rtol=1e-10)
  assert abs(float(e.eigenvectors["a"][0, 1])) > 1 - 1e-8   # the +3 direction
  assert np.all(np.isfinite(np.asarray(e.residuals)))


def test_lobpcg_shift_all_negative_exact_warm_start():
  # Without the shift, lobpcg_standard returns NaN here: the exact start leaves zero residual
  # columns, whose spurious zero Ritz values outrank the wanted -1 and -2.
  d = -jnp.arange(1.0, 13.0)
  e = jax.jit(lambda v0: cv.top_eigenpairs(None, jnp.ones((12,)), None, k=2, num_iters=5,
                                           v0=v0, matvec=lambda v: d * v, method="lobpcg",
                                           warm_start_noise=0.0))(jnp.eye(12)[:2])
  np.testing.assert_allclose(e.eigenvalues, [-1.0, -2.0], rtol=1e-12)
  assert np.all(np.asarray(e.residuals) < 1e-12)


@pytest.mark.parametrize("bottom", [0.0, -10.0])
def test_lobpcg_float32_runs_to_convergence_at_large_n(bottom):
  # float32, n = 20k, top eigenvalue 1, the rest in [bottom, 0.5]: lobpcg_standard's default
  # tolerance (eps 10 n (theta + |A v|)) stopped it after 1-5 iterations, 0.3% low here and
  # 75% low with the negative bulk (which raises the shift and so theta)
  n = 20000
  d = jnp.asarray(np.concatenate([[1.0], np.random.RandomState(0).uniform(bottom, 0.5, n - 1)]),
                  jnp.float32)
  e = jax.jit(lambda x: cv.top_eigenpairs(None, x, None, k=1, num_iters=100,
                                          matvec=lambda v: d * v, method="lobpcg"))(
      jnp.zeros(n, jnp.float32))
  np.testing.assert_allclose(e.eigenvalues[0], 1.0, rtol=1e-4)
  assert float(e.residuals[0]) <= 10 * np.sqrt(np.finfo(np.float32).eps) * (1 - bottom)


def test_lobpcg_on_the_zero_operator():
  e = jax.jit(lambda x: cv.top_eigenpairs(None, x, None, k=3, num_iters=20,
                                          matvec=lambda v: 0 * v, method="lobpcg"))(jnp.zeros(64))
  np.testing.assert_array_equal(e.eigenvalues, 0.0)
  np.testing.assert_array_equal(e.residuals, 0.0)


def test_lobpcg_matches_dense(model):
  p, b, H = model
  e = jax.jit(lambda p: cv.top_eigenpairs(mlp_loss, p, b, k=5, num_iters=60,
                                          method="lobpcg"))(p)
  assert_matches_dense(e, H, 5)
  assert int(e.num_matvecs) > 16


def test_warm_start_after_an_eigenvalue_crossing():
  # the tracked vector (9.5) has just been overtaken by another direction (10): 20 warm
  # iterations find 10 at once; 10 iterations may miss it at first but find it within 4 calls
  n = 2000
  d = jnp.asarray(np.concatenate([[10.0, 9.5], np.random.RandomState(0).uniform(-1, 9, n - 2)]))
  solve = jax.jit(lambda v0, key, m: cv.top_eigenpairs(
      None, jnp.zeros(n), None, k=1, num_iters=m, v0=v0, matvec=lambda v: d * v, key=key),
      static_argnums=2)
  tracked = jnp.zeros((1, n)).at[0, 1].set(1.0)
  for seed in range(8):
    assert float(solve(tracked, jax.random.PRNGKey(seed), 20).eigenvalues[0]) > 9.999
    v, found = tracked, []
    for call in range(5):
      e = solve(v, jax.random.PRNGKey(100 * seed + call), 10)
      v, found = e.eigenvectors, found + [float(e.eigenvalues[0])]
    assert found[3] > 9.98 and found[4] > 9.999, (seed, found)


def test_warm_start_needs_fewer_iterations(model):
  p, b, _ = model
  k = 3
  prev = jax.jit(lambda p: cv.top_eigenpairs(mlp_loss, p, b, k=k, num_iters=40))(p)
  prev = prev.eigenvectors
  noise = jax.tree.map(lambda x: 1e-3 * jax.random.normal(jax.random.PRNGKey(7), x.shape,
                                                          x.dtype), p)
  p1 = jax.tree.map(jnp.add, p, noise)
  w = np.linalg.eigvalsh(dense_hessian(mlp_loss, p1, b))[::-1][:k]
  f = jax.jit(lambda p, v0: cv.top_eigenpairs(mlp_loss, p, b, k=k, num_iters=5, v0=v0,
                                              key=jax.random.PRNGKey(1)))
  cold = f(p1, jax.tree.map(jnp.zeros_like, prev))     # zero vectors: a cold start
  warm = f(p1, prev)
  assert np.all(np.asarray(warm.residuals) < np.asarray(cold.residuals))
  assert np.max(np.asarray(warm.residuals)) < 1e-2
  err_warm = np.max(np.abs(np.asarray(warm.eigenvalues) / w - 1))
  err_cold = np.max(np.abs(np.asarray(cold.eigenvalues) / w - 1))
  assert err_warm < 1e-4 < err_cold


def test_preconditioned_sharpness_matches_dense(model):
  p, b, H = model
  # A params-shaped P with one scalar leaf (broadcast), like scalar_rmsprop.
  P = dict(w1=1.0 + jnp.abs(jnp.sin(jnp.arange(80.0)).reshape(5, 16)), b1=jnp.array(0.5),
           w2=jnp.full((16, 2), 3.0), b2=jnp.array([0.2, 4.0]))
  Pf = np.asarray(ravel_pytree(jax.tree.map(lambda q, x: jnp.broadcast_to(q, x.shape), P, p))[0])
  d = Pf ** -0.5
  e = jax.jit(lambda p, P: cv.preconditioned_sharpness(mlp_loss, p, b, P, k=2,
                                                       num_iters=40))(p, P)
  assert_matches_dense(e, d[:, None] * H * d[None, :], 2)
  # Same spectrum as P^{-1} H.
  np.testing.assert_allclose(e.eigenvalues[0], np.max(np.linalg.eigvals(H / Pf[:, None]).real),
                             rtol=1e-8)


def test_batch_sharpness_matches_dense(model):
  p, b, H_full = model
  batches = jax.tree.map(lambda x: x.reshape((4, 8) + x.shape[1:]), b)
  out = jax.jit(lambda p: cv.batch_sharpness(mlp_loss, p, batches, num_iters=40))(p)
  lam, dire = [], []
  flat, unravel = ravel_pytree(p)
  grad = jax.jit(jax.grad(lambda f, bi: mlp_loss(unravel(f), bi)))
  for i in range(4):
    bi = jax.tree.map(lambda x: x[i], batches)
    H = dense_hessian(mlp_loss, p, bi)
    g = np.asarray(grad(flat, bi))
    lam.append(np.linalg.eigvalsh(H)[-1])
    dire.append(g @ H @ g / (g @ g))
  np.testing.assert_allclose(out["per_batch_lambda_max"], lam, rtol=1e-8)
  np.testing.assert_allclose(out["per_batch_directional"], dire, rtol=1e-10)
  np.testing.assert_allclose(out["mean_lambda_max"], np.mean(lam), rtol=1e-8)
  np.testing.assert_allclose(out["directional"], np.mean(dire), rtol=1e-10)
  # Batch sharpness differs from the full-batch sharpness (it is a different quantity).
  assert abs(np.mean(lam) - np.linalg.eigvalsh(H_full)[-1]) > 1e-3


# ---- trace and density ---------------------------------------------------------------------
def test_hutchinson_trace(model):
  p, b, H = model
  tr = np.trace(H)
  f = jax.jit(cv.hutchinson_trace, static_argnums=(0, 4))
  est, se = f(mlp_loss, p, b, jax.random.PRNGKey(0), 100)
  assert 0 < se < 0.5 * abs(tr)
  assert abs(est - tr) < 3 * se
  est, se = f(mlp_loss, p, b, jax.random.PRNGKey(1), 2000)
  assert abs(est - tr) < 3 * se and abs(est / tr - 1) < 0.05


def _check_density(out, H, num_starts, num_iters, mean_rtol):
  grid, dens = np.asarray(out["grid"]), np.asarray(out["density"])
  assert out["nodes"].shape == (num_starts, num_iters) == out["weights"].shape
  np.testing.assert_allclose(np.sum(out["weights"], axis=1), 1.0, rtol=1e-10)
  assert np.all(dens >= 0)
  np.testing.assert_allclose(np.trapezoid(dens, grid), 1.0, atol=1e-6)
  mean = np.trapezoid(grid * dens, grid)
  np.testing.assert_allclose(mean, np.sum(out["nodes"] * out["weights"]) / num_starts,
                             rtol=1e-6)
  w = np.linalg.eigvalsh(H)
  np.testing.assert_allclose(mean, np.mean(w), rtol=mean_rtol)
  # The extreme nodes are the extreme eigenvalues (Lanczos converges there first).
  np.testing.assert_allclose([np.min(out["nodes"]), np.max(out["nodes"])], [w[0], w[-1]],
                             rtol=1e-6)


def test_spectral_density(model):
  p, b, H = model
  out = jax.jit(lambda p: cv.spectral_density(mlp_loss, p, b, jax.random.PRNGKey(2),
                                              num_iters=40, num_starts=16))(p)
  # For a random unit start v, v^T H v has mean tr(H) / n and standard deviation
  # sqrt(2 var(lambda) / (n + 2)): 19% of the mean for this MLP's outlier spectrum with 16
  # starts, so allow 3 of those standard deviations.
  w = np.linalg.eigvalsh(H)
  sd = np.sqrt(2 * np.var(w) / (w.size + 2) / 16)
  _check_density(out, H, 16, 40, mean_rtol=3 * sd / np.mean(w))
  # A well-conditioned quadratic (spectrum in [1, 2], n = 120): the mean within 2%.
  q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(120, 120)))
  A = (q * np.linspace(1.0, 2.0, 120)[None]) @ q.T
  quad = lambda p, _: 0.5 * p["w"].reshape(-1) @ (A @ p["w"].reshape(-1))
  out = jax.jit(lambda p: cv.spectral_density(quad, p, None, jax.random.PRNGKey(3),
                                              num_iters=30, num_starts=8))(
                                                  dict(w=jnp.ones((10, 12))))
  _check_density(out, A, 8, 30, mean_rtol=0.02)


# ---- the in-loop probe ---------------------------------------------------------------------
def _stacked(params_list):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *params_list)


def _run_probes(probes, params, opt_state, b, calls=2):
  """Each probe under one jit(vmap) over members, `calls` consecutive applications."""
  def member(params, opt_state, key):
    outs = []
    for j, probe in enumerate(probes):
      s = probe.init(params)
      outs.append([])
      for i in range(calls):
        s, m = probe.apply(s, params, opt_state, b, jax.random.fold_in(key, 10 * j + i))
        outs[-1].append(m)
    return outs
  keys = jax.random.split(jax.random.PRNGKey(0), jax.tree.leaves(params)[0].shape[0])
  return jax.jit(jax.vmap(member))(params, opt_state, keys)


def test_sharpness_probe_vmapped_matches_dense(model):
  p0, b, H0 = model
  members = [p0, jax.tree.map(lambda x: 1.5 * x, p0)]
  P = [jax.tree.map(lambda x: jnp.full(x.shape, 2.0 + i, x.dtype), p0) for i in range(2)]
  probe = cv.sharpness_probe(mlp_loss, k=2, num_iters=30)
  pre = cv.sharpness_probe(mlp_loss, k=1, num_iters=30,
                           precondition_fn=lambda s, params: s["P"])
  outs, outs_pre = _run_probes([probe, pre], _stacked(members), {"P": _stacked(P)}, b)
  for i, p in enumerate(members):
    w = np.linalg.eigvalsh(H0 if i == 0 else dense_hessian(mlp_loss, p, b))[::-1]
    for m in outs:                       # cold, then warm-started from the first call
      np.testing.assert_allclose(m["eigenvalues"][i], w[:2], rtol=1e-8)
      assert np.all(np.asarray(m["residual"][i]) < 1e-5)
    for m in outs_pre:
      np.testing.assert_allclose(m["eigenvalues"][i], w[0] / (2.0 + i), rtol=1e-8)


def test_sharpness_probe_float32_and_every(model):
  p64, b64, H0 = model
  p0, b = jax.tree.map(lambda x: x.astype(jnp.float32), (p64, b64))
  members = [p0, jax.tree.map(lambda x: 0.5 * x, p0)]
  probe = cv.sharpness_probe(mlp_loss, k=1, num_iters=20, every=2)
  outs, = _run_probes([probe], _stacked(members), None, b)
  for m in outs:
    assert m["eigenvalues"].dtype == jnp.float32 and m["residual"].dtype == jnp.float32
    assert m["eigenvalues"].shape == (2, 1)
  assert np.all(np.isnan(np.asarray(outs[1]["eigenvalues"])))     # skipped call
  for i, p in enumerate(members):
    p = jax.tree.map(lambda x: x.astype(jnp.float64), p)
    w = np.linalg.eigvalsh(H0 if i == 0 else dense_hessian(mlp_loss, p, b64))[-1]
    np.testing.assert_allclose(outs[0]["eigenvalues"][i, 0], w, rtol=1e-4)
    assert outs[0]["residual"][i, 0] < 1e-3


def test_errors(model):
  p, b, _ = model
  with pytest.raises(ValueError, match="method"):
    cv.top_eigenpairs(mlp_loss, p, b, method="power")
  with pytest.raises(ValueError, match="k=5"):
    cv.top_eigenpairs(mlp_loss, p, b, k=5, num_iters=3)
  with pytest.raises(ValueError, match="5 \\* k < n"):
    cv.top_eigenpairs(quad_loss, QUAD_PARAMS, None, k=3, method="lobpcg")
