"""Linear-network and matrix-factorization theory against the engine's gradient flow and direct
integrations: Saxe curves, deep-network mode ODE, learning times, decoupled init, incremental
learning, over-parameterized rates, bad inputs."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from analysis import linear_theory as lt
from dynamics import data, losses
from dynamics.flow import GradientFlow
from dynamics.models import deep_linear

S = [3.0, 2.0, 1.0]


@pytest.fixture(scope="module")
def teacher():
  """Whitened linear-teacher data (float64) and its SVD as the theory reads it."""
  ds = data.load(dict(name="linear_teacher", in_dim=4, out_dim=3, n_train=16,
                      singular_values=S, seed=2))
  u, s, v = lt.input_output_svd(ds.x_train, ds.y_train)
  np.testing.assert_allclose(s, S, rtol=1e-12)
  return ds, u, s, v


def complete(q):
  """An orthonormal basis whose first columns are q's."""
  full = np.linalg.svd(q, full_matrices=True)[0]
  return np.concatenate([q, full[:, q.shape[1]:]], axis=1)


def engine_flow(ds, params, t_end, max_step=2e-3):
  """The engine's RK4 gradient flow (dynamics/flow.py) of the mse loss; returns the times and
  the end-to-end maps W_total [T, out, in] (column convention) and the final params."""
  x, y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
  loss_fn = lambda p: jnp.mean(losses.mse(deep_linear.apply(p, x), y))
  flow = GradientFlow(alpha=0.05, max_step=max_step, power_iters=2)
  params = {k: jnp.asarray(w) for k, w in params.items()}
  state = flow.init(params, jax.random.PRNGKey(0))

  def body(carry, _):
    _, p, st = flow.step(loss_fn, *carry)
    return (p, st), (st.time, deep_linear.end_to_end(p).T)

  (p, _), (times, ws) = jax.jit(lambda c: jax.lax.scan(
      body, c, None, length=int(math.ceil(t_end / max_step))))((params, state))
  return np.asarray(times), np.asarray(ws), p


@pytest.fixture(scope="module")
def depth2_run(teacher):
  ds, u, s, v = teacher
  u0 = np.array([1e-3, 2e-3, 5e-4])
  params = lt.balanced_decoupled_init(u, v, depth=2, width=5, scale=u0, seed=1)
  return u0, engine_flow(ds, params, t_end=7.0)


@pytest.fixture(scope="module")
def depth3_run(teacher):
  ds, u, s, v = teacher
  u0 = 1e-2
  params = lt.balanced_decoupled_init(u, v, depth=3, width=[4, 3], scale=u0, seed=3)
  return u0, engine_flow(ds, params, t_end=7.0)


def test_saxe_curve_matches_the_engine_flow(teacher, depth2_run):
  ds, u, s, v = teacher
  u0, (times, ws, _) = depth2_run
  modes = lt.mode_strengths(ws, u, v)
  theory = lt.saxe_curve(s, u0, times)
  assert modes[-1].min() > 0.99 * s.min()            # every mode was learned in the window
  np.testing.assert_allclose(modes, theory, rtol=0, atol=1e-6)
  # and the sigmoid is not trivially matched: halfway, modes are at very different stages
  mid = np.searchsorted(times, 2.0)
  assert theory[mid, 0] > 0.9 * s[0] and theory[mid, 2] < 0.1 * s[2]


def test_learning_time_against_the_curves(teacher, depth2_run):
  ds, u, s, v = teacher
  u0, (times, ws, _) = depth2_run
  uf = 0.5 * s
  t_learn = lt.learning_time(s, u0, uf)
  np.testing.assert_allclose(lt.saxe_curve(s, u0, t_learn).diagonal(), uf, rtol=1e-12)
  # stage-wise: learned in order of singular value
  assert np.all(np.diff(t_learn) > 0)
  measured = lt.crossing_steps(times, lt.mode_strengths(ws, u, v), uf)
  np.testing.assert_allclose(measured, t_learn, rtol=0, atol=1e-5)


def test_deep_mode_ode_matches_a_depth3_engine_flow(teacher, depth3_run):
  ds, u, s, v = teacher
  u0, (times, ws, _) = depth3_run
  modes = lt.mode_strengths(ws, u, v)
  theory = lt.deep_mode_curve(s, u0, times, depth=3)
  assert modes[-1].min() > 0.99 * s.min()
  np.testing.assert_allclose(modes, theory, rtol=0, atol=1e-6)
  # depth 3 is not depth 2: the curves differ by far more than the tolerance
  assert np.abs(theory - lt.saxe_curve(s, u0, times)).max() > 0.1
  uf = 0.5 * s
  np.testing.assert_allclose(lt.crossing_steps(times, modes, uf),
                             lt.deep_learning_time(s, u0, uf, depth=3), rtol=0, atol=1e-5)


def test_deep_mode_curve_and_times_reduce_to_closed_forms():
  s, u0 = np.array([4.0, 1.5, 0.5, 0.0]), np.array([1e-4, 1e-2, 0.3, 0.2])
  t = np.linspace(0.0, 6.0, 13)
  np.testing.assert_allclose(lt.deep_mode_curve(s, u0, t, depth=2), lt.saxe_curve(s, u0, t),
                             rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(lt.deep_mode_curve(s, u0, t, depth=1),
                             s + (u0 - s) * np.exp(-t)[:, None], rtol=1e-9, atol=1e-12)
  # s = 0: u = u0 / (1 + 2 u0 t) for depth 2
  np.testing.assert_allclose(lt.saxe_curve(s, u0, t)[:, 3], 0.2 / (1 + 0.4 * t), rtol=1e-12)
  s, u0, uf = s[:3], u0[:3], np.array([3.9, 1.0, 0.45])
  np.testing.assert_allclose(lt.deep_learning_time(s, u0, uf, 2), lt.learning_time(s, u0, uf),
                             rtol=1e-12)
  np.testing.assert_allclose(lt.deep_learning_time(s, u0, uf, 1),
                             np.log((s - u0) / (s - uf)), rtol=1e-12)
  for depth in (3, 5):
    t_f = lt.deep_learning_time(s, u0, uf, depth)
    reached = np.array([lt.deep_mode_curve(s[i], u0[i], [t_f[i]], depth)[0, 0]
                        for i in range(3)])
    np.testing.assert_allclose(reached, uf, rtol=1e-8)


def test_mode_rate_is_the_curves_derivative():
  s, u0, t, h = np.array([3.0, 1.0]), 0.05, np.array([0.5, 1.0, 2.0]), 1e-4
  for depth in (1, 2, 3, 4):
    curve = lambda t: lt.deep_mode_curve(s, u0, t, depth)
    numeric = (curve(t + h) - curve(t - h)) / (2 * h)
    np.testing.assert_allclose(numeric, lt.mode_rate(curve(t), s, depth), rtol=1e-6,
                               atol=1e-9)


@pytest.mark.parametrize("run", ["depth2_run", "depth3_run"])
def test_decoupled_balanced_init_stays_decoupled(teacher, run, request):
  ds, u, s, v = teacher
  u0, (times, ws, final) = request.getfixturevalue(run)
  uf, vf = complete(u), complete(v)
  coupling = np.einsum("oa,toi,ib->tab", uf, ws, vf)            # [T, out, in]
  off = coupling.copy()
  k = u.shape[1]
  off[:, np.arange(k), np.arange(k)] = 0.0
  assert np.abs(off).max() < 1e-12
  assert coupling[-1].diagonal().min() > 0.5
  # balancedness W_l^T W_l = W_{l+1} W_{l+1}^T (row convention) holds along the flow too
  n = len(final)
  for l in range(1, n):
    a, b = np.asarray(final[f"W{l}"]), np.asarray(final[f"W{l + 1}"])
    np.testing.assert_allclose(a.T @ a, b @ b.T, rtol=0, atol=1e-10)
  # a generic small init is coupled: the test above could fail
  generic = deep_linear.init(jax.random.PRNGKey(0), dict(
      name="deep_linear", in_dim=4, out_dim=3, widths=[5], init_scale=0.1), jnp.float64)
  g = uf.T @ np.asarray(deep_linear.end_to_end(generic)).T @ vf
  g[np.arange(k), np.arange(k)] = 0.0
  assert np.abs(g).max() > 1e-4


def test_balanced_decoupled_init_is_exact(teacher):
  ds, u, s, v = teacher
  p = lt.balanced_decoupled_init(u, v, depth=4, width=6, scale=[0.1, 0.2, 0.3], seed=0)
  assert [p[f"W{l}"].shape for l in range(1, 5)] == [(4, 6), (6, 6), (6, 6), (6, 3)]
  w = deep_linear.end_to_end({k: jnp.asarray(x) for k, x in p.items()}).T
  np.testing.assert_allclose(np.asarray(w), (u * [0.1, 0.2, 0.3]) @ v.T, rtol=0, atol=1e-14)
  for l in range(1, 4):
    a, b = p[f"W{l}"], p[f"W{l + 1}"]
    np.testing.assert_allclose(a.T @ a, b @ b.T, rtol=0, atol=1e-14)


def rk4_linearized(m_hat, u0, t_end, dt):
  """dU/dt = 2 M_hat U by RK4; returns times and the eigenvalues of U U^T (squared singular
  values of U, accurate relative to the largest one's square root)."""
  f = lambda u: 2.0 * m_hat @ u
  n = int(round(t_end / dt))
  u, out = u0.copy(), [np.linalg.svd(u0, compute_uv=False) ** 2]
  for _ in range(n):
    k1 = f(u)
    k2 = f(u + 0.5 * dt * k1)
    k3 = f(u + 0.5 * dt * k2)
    k4 = f(u + dt * k3)
    u = u + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    out.append(np.linalg.svd(u, compute_uv=False) ** 2)
  return dt * np.arange(n + 1), np.array(out)


def test_appearance_times_against_the_integrated_linearized_ode():
  rng = np.random.default_rng(0)
  d, k = 5, 4
  sigma = np.array([3.0, 2.0, 4.0 / 3.0, 0.3, -0.4])
  q = np.linalg.qr(rng.standard_normal((d, d)))[0]
  m_hat = (q * sigma) @ q.T
  g0 = rng.standard_normal((d, k))
  alpha, c = 2e-7, 0.1
  times, eigs = rk4_linearized(m_hat, alpha * g0, t_end=6.0, dt=1e-3)
  evals, evecs = np.linalg.eigh(m_hat)
  order = np.argsort(evals)[::-1]
  g = lt.init_overlaps(g0, evecs[:, order])
  predicted = lt.appearance_steps(evals[order][:3], alpha, lr=1.0, threshold=c,
                                  overlaps=g[:3])
  measured = lt.crossing_steps(times, eigs[:, :3], c)
  np.testing.assert_allclose(measured, predicted, rtol=1e-4)
  # with lr, the same times in steps; the typical overlaps (width) differ only by ln(g) terms
  np.testing.assert_allclose(lt.appearance_steps(evals[order][:3], alpha, 0.01, c,
                                                 overlaps=g[:3]), predicted / 0.01, rtol=1e-12)
  typical = lt.appearance_steps(evals[order][:3], alpha, 1.0, c, width=k)
  np.testing.assert_allclose(typical - predicted,
                             np.log(g[:3] / [4, 3, 2]) / (4 * evals[order][:3]), rtol=1e-9)
  assert np.isinf(lt.appearance_steps([2.0, 1.0, -1.0], 1e-3, 0.1, 0.1, width=1)[1:]).all()


def test_appearance_slope_in_nonlinear_gd():
  """Population GD U <- U - 2 lr (U U^T - M*) U: the appearance step of each eigenvalue moves by
  appearance_slope(discrete=True) per unit of ln(1/alpha)."""
  rng = np.random.default_rng(1)
  d, k, lr, c = 4, 3, 0.02, 0.1
  sigma = np.array([2.0, 1.0])
  v = np.linalg.qr(rng.standard_normal((d, d)))[0][:, :2]
  m_star = (v * sigma) @ v.T
  g0 = rng.standard_normal((d, k))

  def appear(alpha, steps=1200):
    u, eigs = alpha * g0, []
    for _ in range(steps):
      eigs.append(np.linalg.eigvalsh(u @ u.T)[::-1][:2])
      u = u - lr * 2.0 * (u @ u.T - m_star) @ u
    return lt.crossing_steps(np.arange(steps), np.array(eigs), c)

  shift = appear(1e-6) - appear(1e-3)
  expected = lt.appearance_slope(sigma, lr, discrete=True) * math.log(1e3)
  np.testing.assert_allclose(shift, expected, rtol=2e-3)
  # the flow's slope 1/(2 lr sigma) is the small-lr limit, here a few percent away
  assert np.all(np.abs(lt.appearance_slope(sigma, lr) * math.log(1e3) / shift - 1) > 0.01)


def population_gd(d, k, sigma, lr, steps, alpha=0.1, seed=0, keep=()):
  """GD on 0.5 ||U U^T - M*||_F^2 (matrix sensing's population loss): the errors, M*'s range
  and U at the steps in `keep`."""
  rng = np.random.default_rng(seed)
  v = np.linalg.qr(rng.standard_normal((d, d)))[0][:, :len(sigma)]
  m_star = (v * sigma) @ v.T
  u = alpha * rng.standard_normal((d, k))
  errs, kept = [], {}
  for step in range(steps):
    if step in keep:
      kept[step] = u.copy()
    e = u @ u.T - m_star
    errs.append(np.sum(e * e))
    u = u - lr * 2.0 * e @ u
  return np.arange(steps), np.array(errs), v, kept


def test_exact_parameterization_is_geometric_at_the_predicted_rate():
  sigma, lr = np.array([2.0, 1.0]), 0.1
  steps, errs, _, _ = population_gd(d=5, k=2, sigma=sigma, lr=lr, steps=160)
  rate = lt.geometric_rate(steps[100:], errs[100:])
  np.testing.assert_allclose(rate, lt.exact_rate(sigma, lr, dimension=5), rtol=1e-3)
  np.testing.assert_allclose(lt.exact_rate(sigma, lr, 5), (1 - 2 * lr * 1.0) ** 2)
  # without a null space the slowest block is the range's own, 1 - 4 lr sigma_r
  np.testing.assert_allclose(lt.exact_rate(sigma, lr, 2), (1 - 4 * lr * 1.0) ** 2)


@pytest.mark.parametrize("alpha", [0.1, 1e-3])
def test_overparameterization_gives_the_inverse_square_tail(alpha):
  sigma, lr, d, k, t0 = np.array([2.0, 1.0]), 0.1, 5, 4, 2000
  steps, errs, v, kept = population_gd(d=d, k=k, sigma=sigma, lr=lr, steps=20000, alpha=alpha,
                                       keep=(t0,))
  rho0 = lt.slow_singular_values(kept[t0], v)
  assert rho0.shape == (2,)
  predicted = lt.overparameterized_error(steps[t0:] - t0, lr, k, 2, d, rho0=rho0)
  np.testing.assert_allclose(errs[t0:], predicted, rtol=1e-3)
  if alpha == 0.1:       # late enough that 4 lr T >> rho0^-2: the T^-2 law itself
    assert abs(lt.loglog_slope(steps[10000:], errs[10000:]) + 2.0) < 0.05
    np.testing.assert_allclose(errs[-1], lt.overparameterized_error(steps[-1], lr, k, 2, d),
                               rtol=0.05)
  else:                  # small init: still on the plateau sum rho0^4, slope near 0
    assert abs(lt.loglog_slope(steps[10000:], errs[10000:])) < 0.2
  # far slower than the exactly parameterized run at the same step
  assert errs[-1] > 1e6 * lt.exact_rate(sigma, lr, d) ** 200


def test_bad_inputs_name_the_argument(teacher):
  ds, u, s, v = teacher
  x = np.asarray(ds.x_train)
  with pytest.raises(ValueError, match=r"x is not whitened"):
    lt.input_output_svd(2.0 * x, ds.y_train)
  with pytest.raises(ValueError, match=r"x cannot be whitened.*rank 2 < in_dim 4"):
    lt.input_output_svd(x[:2], ds.y_train[:2])
  raw = data.load(dict(name="linear_teacher", in_dim=4, out_dim=3, n_train=16,
                       singular_values=S, whiten=False))
  with pytest.raises(ValueError, match=r"x is not whitened"):
    lt.input_output_svd(raw.x_train, raw.y_train)
  cases = [
      (lambda: lt.saxe_curve(S, 0.0, [1.0]), r"u0="),
      (lambda: lt.saxe_curve(S, -1e-3, [1.0]), r"u0="),
      (lambda: lt.saxe_curve(S, 1e-3, [2.0, 1.0]), r"t="),
      (lambda: lt.deep_mode_curve(S, 1e-3, [1.0], depth=0), r"depth=0"),
      (lambda: lt.deep_learning_time(S, 1e-3, 0.5, depth=1.5), r"depth=1.5"),
      (lambda: lt.learning_time(1.0, 1e-3, 1.0), r"uf="),
      (lambda: lt.balanced_decoupled_init(u, v, depth=0, width=3, scale=0.1), r"depth=0"),
      (lambda: lt.balanced_decoupled_init(u, v, depth=3, width=2, scale=0.1), r"width=2"),
      (lambda: lt.balanced_decoupled_init(u, v, depth=3, width=[4], scale=0.1), r"width="),
      (lambda: lt.balanced_decoupled_init(u, v, depth=2, width=3, scale=0.0), r"scale="),
      (lambda: lt.balanced_decoupled_init(2 * u, v, depth=2, width=3, scale=0.1), r"U must"),
      (lambda: lt.mode_strengths(np.zeros((4, 3)), u, v), r"W_total"),
      (lambda: lt.appearance_steps([2.0, 1.0], 0.0, 0.1, 0.1, width=2), r"alpha="),
      (lambda: lt.appearance_steps([2.0, 1.0], -1e-3, 0.1, 0.1, width=2), r"alpha="),
      (lambda: lt.appearance_steps([1.0, 2.0], 1e-3, 0.1, 0.1, width=2), r"sigma="),
      (lambda: lt.appearance_steps([2.0, 1.0], 1e-3, 0.1, 0.1), r"width=None"),
      (lambda: lt.exact_rate([3.0, 2.0, 1.0], 0.1, dimension=2), r"dimension=2"),
      (lambda: lt.overparameterized_error(10, 0.1, width=4, rank=6, dimension=5), r"rank=6"),
      (lambda: lt.overparameterized_error(10, 0.1, width=2, rank=2, dimension=5), r"width=2"),
      (lambda: lt.loglog_slope([1, 2, 3], [1.0, 0.0, -1.0]), r"values"),
      (lambda: lt.overparameterized_error(10, 0.1, 4, 2, 5, rho0=[0.1, 0.0]), r"rho0="),
  ]
  for call, pattern in cases:
    with pytest.raises(ValueError, match=pattern):
      call()
