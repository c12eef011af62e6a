"""analysis.central_flow_sdp against a brute-force reference and the KKT conditions (float64).

The reference (brute_force_solve) shares no code with the solver: it factors X = L L^T
(Burer & Monteiro 2003) and minimizes the QP over the k x k matrix L with scipy's BFGS from many
random starts; its answer is accepted only after its own KKT residuals are checked in numpy.
"""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from analysis import central_flow_sdp as sdp

# One compiled program per (k, dtype, static arguments), shared by the tests.
_solve = jax.jit(sdp.solve_psd_lcp, static_argnames=("num_iters", "tol", "newton_iters"))


# ---- instances and references (numpy) -------------------------------------------------------
def sym_identity(k):
  """The identity on symmetric matrices as a [k, k, k, k] tensor."""
  e = np.eye(k)
  return 0.5 * (np.einsum("il,jm->ijlm", e, e) + np.einsum("im,jl->ijlm", e, e))


def make_instance(seed, k, ridge=0.1, num_terms=None):
  """A0 with mixed-sign eigenvalues; B = sum_r M_r (x) M_r + ridge * I (strongly convex)."""
  rng = np.random.default_rng(seed)
  Q, _ = np.linalg.qr(rng.normal(size=(k, k)))
  w = rng.normal(size=k)
  w[0] = -abs(w[0]) - 0.1
  if k > 1:
    w[1] = abs(w[1]) + 0.1
  A0 = (Q * w[None, :]) @ Q.T
  B = ridge * sym_identity(k)
  for _ in range(k * (k + 1) // 2 if num_terms is None else num_terms):
    M = rng.normal(size=(k, k))
    B = B + np.einsum("ij,lm->ijlm", M + M.T, M + M.T)
  return A0, B


def np_apply(B, X):
  return np.einsum("ijlm,lm->ij", B, X)


def kkt(A0, B, X):
  """(lambda_min(X), lambda_min(A(X)), <X, A(X)>) in numpy."""
  AX = A0 + np_apply(B, X)
  return np.linalg.eigvalsh(X)[0], np.linalg.eigvalsh(AX)[0], float(np.sum(X * AX))


def brute_force_solve(A0, B, restarts=12, seed=0):
  """argmin_X 0.5 <X, B[X]> + <A0, X> over PSD X, by X = L L^T and BFGS from many starts."""
  k = A0.shape[0]
  rng = np.random.default_rng(seed)

  def f(l):
    L = l.reshape(k, k)
    X = L @ L.T
    AX = A0 + np_apply(B, X)
    return 0.5 * np.sum(X * (AX + A0)), (2 * AX @ L).ravel()

  runs = [scipy.optimize.minimize(f, rng.normal(size=k * k), jac=True, method="BFGS",
                                  options=dict(gtol=1e-13, maxiter=5000))
          for _ in range(restarts)]
  L = min(runs, key=lambda r: r.fun).x.reshape(k, k)
  X = L @ L.T
  scale = np.linalg.norm(A0) * (1 + np.linalg.norm(X))
  mx, ma, c = kkt(A0, B, X)
  assert ma >= -1e-8 * scale and abs(c) <= 1e-8 * scale, "the reference itself did not converge"
  return X


def rank(X):
  w = np.linalg.eigvalsh(X)
  return int(np.sum(w > 1e-8 * max(w[-1], 1e-300)))


def assert_kkt(A0, B, X, tol=1e-10):
  scale = np.linalg.norm(A0) * (1 + np.linalg.norm(X))
  mx, ma, c = kkt(A0, B, np.asarray(X))
  assert mx >= -tol * (1 + np.linalg.norm(X)), mx
  assert ma >= -tol * scale, ma
  assert abs(c) <= tol * scale, c


CASES = [(k, s) for k in (1, 2, 3) for s in range(4)] + [(5, 0), (5, 1)]


# ---- tests ----------------------------------------------------------------------------------
def test_kkt_on_random_instances_of_every_rank():
  ranks = set()
  for k, seed in CASES:
    A0, B = make_instance(seed, k)
    X, info = _solve(A0, B)
    X = np.asarray(X)
    np.testing.assert_allclose(X, X.T, rtol=0, atol=1e-14)
    assert_kkt(A0, B, X)
    mx, ma, c = kkt(A0, B, X)
    np.testing.assert_allclose([info.min_eig_X, info.min_eig_AX, info.complementarity],
                               [mx, ma, abs(c)], rtol=1e-6, atol=1e-12)
    assert info.residual < 1e-10 and 0 < info.num_iters <= sdp.NUM_ITERS
    ranks.add((k, rank(X)))
  # The instances exercise the interior of faces of several ranks, not only rank 1.
  assert {(2, 1), (3, 1), (3, 2)} <= ranks and any(r >= 2 for kk, r in ranks if kk == 5), ranks


@functools.lru_cache(maxsize=None)
def reference(k, seed):
  return brute_force_solve(*make_instance(seed, k))


@pytest.mark.parametrize("fista_only", [False, True])
def test_matches_brute_force(fista_only):
  """Unique solution (B > 0): the defaults, and FISTA alone (no Newton polish, tight tol)."""
  opts = dict(num_iters=2000, tol=1e-12, newton_iters=0) if fista_only else {}
  worst = 0.0
  for k, seed in CASES:
    if k > 3:
      continue
    A0, B = make_instance(seed, k)
    X, _ = _solve(A0, B, **opts)
    X_ref = reference(k, seed)
    err = np.linalg.norm(np.asarray(X) - X_ref) / np.linalg.norm(X_ref)
    worst = max(worst, err)
  assert worst < 1e-6, worst


def test_planted_solutions_of_every_rank():
  """A0 = Lam - B[X*] with X* = V D V^T (rank r), Lam >= 0 with range orthogonal to V: then X*
  satisfies (SDCP) exactly, and is the unique solution since B > 0."""
  rng = np.random.default_rng(11)
  for k in (2, 3, 5):
    _, B = make_instance(k, k)
    for r in range(k + 1):
      Q, _ = np.linalg.qr(rng.normal(size=(k, k)))
      X_star = (Q[:, :r] * rng.uniform(0.5, 2, r)[None, :]) @ Q[:, :r].T
      Lam = (Q[:, r:] * rng.uniform(0.5, 2, k - r)[None, :]) @ Q[:, r:].T
      X, info = _solve(Lam - np_apply(B, X_star), B)
      np.testing.assert_allclose(X, X_star, rtol=0, atol=1e-9 * max(1, np.linalg.norm(X_star)))
      assert info.residual < 1e-10


def test_k1_closed_form():
  for a0, b in [(-2.0, 0.5), (-1e-3, 3.0), (0.7, 2.0), (0.0, 1.0)]:
    X, info = _solve(jnp.full((1, 1), a0), jnp.full((1, 1, 1, 1), b))
    np.testing.assert_allclose(X[0, 0], max(0.0, -a0 / b), rtol=1e-12, atol=0)
    assert info.min_eig_AX >= 0 and info.complementarity < 1e-14


def test_psd_A0_gives_exactly_zero():
  rng = np.random.default_rng(7)
  G = rng.normal(size=(3, 2))
  _, B = make_instance(3, 3)
  for A0 in (G @ G.T, G @ G.T + np.eye(3), np.zeros((3, 3))):      # singular, PD, zero
    for X_init in (None, np.eye(3)):
      X, info = _solve(A0, B, X_init=X_init)
      assert np.all(np.asarray(X) == 0) and int(info.num_iters) == 0
      assert info.complementarity == 0 and info.residual < 1e-15


def test_jit_and_vmap_match_one_by_one():
  pairs = [make_instance(s, 3) for s in range(4)]
  A0s = jnp.stack([p[0] for p in pairs])
  Bs = jnp.stack([p[1] for p in pairs])
  A0s = A0s.at[2].set(jnp.eye(3))                   # one member takes the shortcut
  counted = chex.assert_max_traces(sdp.solve_psd_lcp, n=1)
  batched = jax.jit(jax.vmap(counted))
  Xs, infos = batched(A0s, Bs)
  batched(A0s + 0.01, Bs)                           # new values, no new trace
  for i in range(4):
    X, info = _solve(A0s[i], Bs[i])
    np.testing.assert_allclose(Xs[i], X, rtol=1e-9, atol=1e-12)
    assert infos.min_eig_AX[i] >= -1e-10 and infos.residual[i] < 1e-10
  assert np.all(np.asarray(Xs[2]) == 0) and int(infos.num_iters[2]) == 0


def test_float32_in_float32_out():
  A0, B = make_instance(1, 3)
  X64, _ = _solve(A0, B)
  X, info = _solve(A0.astype(np.float32), B.astype(np.float32))
  assert X.dtype == jnp.float32 and info.residual.dtype == jnp.float32
  assert info.complementarity.dtype == jnp.float32
  np.testing.assert_allclose(X, X64, rtol=1e-4, atol=1e-4 * np.linalg.norm(X64))


def test_ill_conditioned_and_warm_start():
  """mu / L ~ 1e-5: FISTA runs out of iterations, the Newton polish still solves it."""
  A0, B = make_instance(5, 5, ridge=1e-3, num_terms=3)
  X, info = _solve(A0, B)
  assert_kkt(A0, B, X, tol=1e-8)
  assert info.residual < 1e-8 and int(info.num_newton) >= 1
  X2, info2 = _solve(A0, B, X_init=X)
  assert int(info2.num_iters) <= 3
  np.testing.assert_allclose(X2, X, rtol=0, atol=1e-8 * np.linalg.norm(X))


def test_only_the_symmetric_part_of_B_counts():
  A0, B = make_instance(2, 3)
  C = np.random.default_rng(0).normal(size=(3,) * 4)
  B_skew = B + (C - C.transpose(1, 0, 2, 3))         # antisymmetric in (i, j): invisible
  np.testing.assert_allclose(sdp.symmetrize_B(B_skew), B, rtol=0, atol=1e-12)
  np.testing.assert_allclose(_solve(A0, B_skew)[0], _solve(A0, B)[0], rtol=0, atol=1e-10)


def test_helpers_against_numpy():
  rng = np.random.default_rng(3)
  M = rng.normal(size=(4, 4))
  w, Q = np.linalg.eigh(0.5 * (M + M.T))
  P = np.asarray(sdp.psd_project(M))
  np.testing.assert_allclose(P, (Q * np.maximum(w, 0)) @ Q.T, rtol=0, atol=1e-13)
  np.testing.assert_allclose(sdp.psd_project(P), P, rtol=0, atol=1e-13)
  B, X = rng.normal(size=(4,) * 4), rng.normal(size=(4, 4))
  np.testing.assert_allclose(sdp.apply_B(B, X), np.einsum("ijlm,lm->ij", B, X), atol=1e-13)


def test_bad_shapes_raise():
  with pytest.raises(ValueError):
    sdp.solve_psd_lcp(jnp.zeros((2, 3)), jnp.zeros((2, 2, 2, 2)))
  with pytest.raises(ValueError):
    sdp.solve_psd_lcp(jnp.zeros((2, 2)), jnp.zeros((2, 2, 2)))
  with pytest.raises(ValueError):
    sdp.solve_psd_lcp(jnp.zeros((2, 2), jnp.int32), jnp.zeros((2, 2, 2, 2), jnp.int32))
