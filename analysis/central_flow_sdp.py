"""The semidefinite complementarity problem that the central flow solves every substep.

Cohen, Damian, Talwalkar, Kolter, Lee, "Understanding Optimization in Deep Learning with Central
Flows" (ICLR 2025); REFERENCE.md Sec. 2. With k unstable directions U the flow needs a k x k
matrix X (Sigma = U X U^T) such that

    X >= 0,    A(X) = A0 + B[X] >= 0,    <X, A(X)> = 0                        (SDCP)

(>= 0: positive semidefinite; <.,.> the trace inner product; B[X]_ij = sum_lm B_ijlm X_lm a
linear map on symmetric matrices that is PSD as a quadratic form). Since <X, B[X]> >= 0, (SDCP)
is exactly the KKT system of the convex QP on the PSD cone

    min_X  f(X) = 0.5 <X, B[X]> + <A0, X>    subject to X >= 0,                  (QP)

with A(X) = grad f(X) the multiplier. If A0 >= 0, X = 0 solves it. The public PyTorch code
solves (QP) on the CPU with CVXPY/CVXOPT every substep; here it is solved on the device:
jit- and vmap-compatible (lax loops, no Python control flow on traced values), in the inputs'
dtype (float64 in, float64 out).

Algorithm (solve_psd_lcp), on the problem rescaled to ||A0||_F = 1 and lambda_max(B) = 1:
  1. FISTA (Beck & Teboulle 2009) with step 1/L, L = lambda_max(B) on symmetric matrices, the
     projection onto the PSD cone by eigh (clip negative eigenvalues), and the gradient-based
     adaptive restart of O'Donoghue & Candes (2015). Rate: f(X_t) - f* = O(L ||X*||^2 / t^2);
     with B >= mu I the restarted scheme converges linearly, about (1 - sqrt(mu / L)) per
     iteration. A lax.while_loop stops it when the gradient mapping L ||Y_t - X_{t+1}||_F falls
     below tol ||A0||_F, or after num_iters iterations.
  2. A safeguarded semismooth Newton polish (Sun & Sun 2002; Zhao, Sun & Toh 2010) on the
     Moreau form of (SDCP): with Z = X - A(X) / L, X = Pi_+(Z) and A(X) / L = Pi_+(-Z), so
     (SDCP) is G(Z) = Z - Pi_+(Z) + (A0 + B[Pi_+(Z)]) / L = 0; (I - J + B J / L) dZ = -G(Z) with
     J the generalized Jacobian of Pi_+ (a k(k+1)/2 linear system). A step is kept only if it
     lowers ||G||_F, so it never loses FISTA's accuracy. With B > 0 every such system is
     nonsingular and the iteration converges locally quadratically (Pi_+ is strongly
     semismooth): to rounding in 1-4 steps from FISTA's tolerance. The unit step of the same
     map, Z - G(Z), is one projected-gradient step.
Defaults: num_iters=500 FISTA iterations at most, tol=sqrt(eps) of the dtype (1.5e-8 in
float64, 3.5e-4 in float32) and newton_iters=4. On random instances (k = 2..5, mu / L from
1e-2 to 1e-3) FISTA stops after 10-250 iterations and the polish accepts 1-4 steps, ending at a
relative residual ~1e-15 in float64 (~kappa eps when kappa = L / mu is large); 500 leaves room
for harder instances, and where FISTA runs out (kappa ~ 1e5-1e6) the Newton steps still reach
1e-11 to 1e-9. Each FISTA iteration costs one k x k eigh and one k^2 x k^2 matvec, a Newton step two
eighs and an n x n solve. Not differentiable (a while_loop): X enters the flow as a value.

    X, info = solve_psd_lcp(A0_kxk, B_kkkk)
    info.min_eig_AX, info.complementarity        # ~0: the KKT residuals
    Xs, infos = jax.vmap(solve_psd_lcp)(A0_bxkxk, B_bxkkkk)
"""
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

_HI = jax.lax.Precision.HIGHEST

# Defaults of solve_psd_lcp (see the module docstring for why).
NUM_ITERS = 500
NEWTON_ITERS = 4


class SDCPInfo(NamedTuple):
  """Residuals of an (SDCP) solution; all scalar arrays, so that they can leave jit / vmap.

  Attributes:
    min_eig_X: lambda_min(X) (>= 0 up to rounding).
    min_eig_AX: lambda_min(A0 + B[X]) (>= 0 at a solution).
    complementarity: |<X, A0 + B[X]>| (0 at a solution).
    residual: relative natural residual r = ||X - Pi_+(X - A(X) / L)||_F L / ||A0||_F, with
      L = lambda_max(B); 0 exactly at a solution, and when B >= mu I the error bound
      ||X - X*||_F <= (1 + 2 L / mu) r ||A0||_F / L holds.
    num_iters: int32, FISTA iterations used (0 when the shortcut A0 >= 0 applies).
    num_newton: int32, Newton steps accepted.
  """
  min_eig_X: jax.Array
  min_eig_AX: jax.Array
  complementarity: jax.Array
  residual: jax.Array
  num_iters: jax.Array
  num_newton: jax.Array


# ---- the operator B on symmetric matrices ---------------------------------------------------
def apply_B(B_kkkk: jax.Array, X_kxk: jax.Array) -> jax.Array:
  """B[X]_ij = sum_lm B_ijlm X_lm; B: [k, k, k, k], X: [k, k] -> [k, k]."""
  return jnp.einsum("ijlm,lm->ij", B_kkkk, X_kxk, precision=_HI)


def symmetrize_B(B_kkkk: jax.Array) -> jax.Array:
  """The part of B that (QP) sees: symmetric in (i, j), in (l, m) and under (ij) <-> (lm).

  For symmetric X, <X, B[X]> only depends on this part; a B that already has these symmetries
  (as the central flow's does) is returned unchanged up to rounding.
  """
  B = 0.5 * (B_kkkk + jnp.transpose(B_kkkk, (2, 3, 0, 1)))
  B = 0.5 * (B + jnp.transpose(B, (1, 0, 2, 3)))
  return 0.5 * (B + jnp.transpose(B, (0, 1, 3, 2)))


def _sym_basis(k, dtype):
  """[n, k, k], n = k(k+1)/2: an orthonormal basis of symmetric matrices (trace product)."""
  i, j = np.triu_indices(k)                  # the pairs i <= j, row by row
  E = np.zeros((i.size, k, k))
  E[np.arange(i.size), i, j] = E[np.arange(i.size), j, i] = np.where(i == j, 1.0, np.sqrt(0.5))
  return jnp.asarray(E, dtype)


def _svec(S_nkk, M_kxk):
  return jnp.einsum("aij,ij->a", S_nkk, M_kxk, precision=_HI)


def _smat(S_nkk, v_n):
  return jnp.einsum("a,aij->ij", v_n, S_nkk, precision=_HI)


def _sym(M):
  return 0.5 * (M + M.T)


# ---- the PSD cone ---------------------------------------------------------------------------
def psd_project(M_kxk: jax.Array) -> jax.Array:
  """Frobenius-nearest PSD matrix to sym(M): Q max(w, 0) Q^T from the eigh Q w Q^T of sym(M)."""
  w, Q = jnp.linalg.eigh(_sym(M_kxk))
  return _sym(jnp.matmul(Q * jnp.maximum(w, 0)[None, :], Q.T, precision=_HI))


def _project_jacobian(S_nkk, Z_kxk):
  """Pi_+(Z) and the n x n matrix, in the basis S, of a generalized Jacobian J of Pi_+ at Z.

  J[H] = Q (Omega o (Q^T H Q)) Q^T with Omega_ij = (w_i^+ - w_j^+) / (w_i - w_j), and 1 or 0
  for equal eigenvalues that are positive or not (Zhao, Sun & Toh 2010, Sec. 2).
  """
  w, Q = jnp.linalg.eigh(_sym(Z_kxk))
  wp = jnp.maximum(w, 0)
  X = _sym(jnp.matmul(Q * wp[None, :], Q.T, precision=_HI))
  d = w[:, None] - w[None, :]
  close = jnp.abs(d) <= 1e3 * jnp.finfo(w.dtype).eps * jnp.max(jnp.abs(w))
  both = ((w[:, None] > 0) & (w[None, :] > 0)).astype(w.dtype)
  omega = jnp.where(close, both, (wp[:, None] - wp[None, :]) / jnp.where(close, 1, d))
  T_nkk = jnp.einsum("ki,akl,lj->aij", Q, S_nkk, Q, precision=_HI)   # Q^T E_a Q
  J_nxn = jnp.einsum("aij,ij,bij->ab", T_nkk, omega, T_nkk, precision=_HI)
  return X, J_nxn


# ---- the solver -----------------------------------------------------------------------------
def _fista(A0, B, X0, num_iters, tol):
  """FISTA with adaptive restart for (QP) with lambda_max(B) = 1 (unit step)."""

  def cond(c):
    it, _, _, _, r = c
    return (it < num_iters) & (r > tol)

  def body(c):
    it, X, Y, theta, _ = c
    X_new = psd_project(Y - A0 - apply_B(B, Y))
    # Restart when the step and the momentum disagree (O'Donoghue & Candes 2015, Sec. 3.2).
    restart = jnp.vdot(Y - X_new, X_new - X) > 0
    theta_new = 0.5 * (1 + jnp.sqrt(1 + 4 * theta * theta))
    beta = jnp.where(restart, 0, (theta - 1) / theta_new)
    Y_new = X_new + beta * (X_new - X)
    theta_new = jnp.where(restart, jnp.ones_like(theta), theta_new)
    r = jnp.sqrt(jnp.sum(jnp.square(Y - X_new)))                  # gradient mapping, step 1
    return it + 1, X_new, Y_new, theta_new, r

  one = jnp.ones((), X0.dtype)
  init = (jnp.zeros((), jnp.int32), X0, X0, one, jnp.full((), jnp.inf, X0.dtype))
  it, X, _, _, _ = jax.lax.while_loop(cond, body, init)
  return X, it


def _newton(A0, B, B_nxn, S_nkk, X, num_steps):
  """Safeguarded semismooth Newton on G(Z) = Z - Pi_+(Z) + A0 + B[Pi_+(Z)] (lambda_max(B) = 1)."""
  n = S_nkk.shape[0]
  eye = jnp.eye(n, dtype=X.dtype)

  def G(Z):
    P = psd_project(Z)
    return Z - P + A0 + apply_B(B, P)

  def body(_, c):
    Z, g_norm, accepted = c
    P, J = _project_jacobian(S_nkk, Z)
    g = Z - P + A0 + apply_B(B, P)
    M = eye - J + jnp.matmul(B_nxn, J, precision=_HI)
    Z_try = Z - _smat(S_nkk, jnp.linalg.solve(M, _svec(S_nkk, g)))
    g_try = jnp.sqrt(jnp.sum(jnp.square(G(Z_try))))
    ok = g_try < g_norm                                   # False for NaN (a singular M)
    return (jnp.where(ok, Z_try, Z), jnp.where(ok, g_try, g_norm),
            accepted + ok.astype(jnp.int32))

  Z0 = X - A0 - apply_B(B, X)
  g0 = jnp.sqrt(jnp.sum(jnp.square(G(Z0))))
  Z, _, accepted = jax.lax.fori_loop(0, num_steps, body, (Z0, g0, jnp.zeros((), jnp.int32)))
  return psd_project(Z), accepted


def solve_psd_lcp(A0: jax.Array, B: jax.Array, num_iters: int = NUM_ITERS,
                  tol: Optional[float] = None, newton_iters: int = NEWTON_ITERS,
                  X_init: Optional[jax.Array] = None) -> tuple[jax.Array, SDCPInfo]:
  """Solves (SDCP): X >= 0, A0 + B[X] >= 0, <X, A0 + B[X]> = 0, via the QP on the PSD cone.

  FISTA with adaptive restart, then a safeguarded semismooth Newton polish (module docstring).
  Computes in the inputs' result dtype; jit- and vmap-compatible.

  Args:
    A0: [k, k] symmetric (only its symmetric part is used).
    B: [k, k, k, k], B[X]_ij = sum_lm B_ijlm X_lm, PSD as a quadratic form on symmetric
      matrices; only symmetrize_B(B) is used. (QP) has a unique solution when B > 0; when B is
      only PSD and A0 is not PSD a solution may not exist (e.g. B = 0).
    num_iters: most FISTA iterations (static).
    tol: FISTA stops when L ||Y_t - X_{t+1}||_F <= tol ||A0||_F; default sqrt(eps) of the
      dtype.
    newton_iters: Newton polish steps after FISTA (static; 0 turns the polish off).
    X_init: optional [k, k] warm start (e.g. the previous substep's X); projected onto the
      PSD cone first. Default 0.

  Returns:
    (X [k, k] symmetric PSD, SDCPInfo). X = 0 exactly when A0 >= 0 (shortcut).

  Raises:
    ValueError: shapes that are not [k, k] and [k, k, k, k], or non-floating inputs.
  """
  A0, B = jnp.asarray(A0), jnp.asarray(B)
  dtype = jnp.result_type(A0, B)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"A0 and B must be floating point; got {A0.dtype} and {B.dtype}")
  k = A0.shape[0] if A0.ndim == 2 else -1
  if A0.shape != (k, k) or B.shape != (k,) * 4:
    raise ValueError(f"A0 must be [k, k] and B [k, k, k, k]; got {A0.shape} and {B.shape}")
  num_iters, newton_iters = int(num_iters), int(newton_iters)
  tol = float(np.sqrt(jnp.finfo(dtype).eps)) if tol is None else float(tol)
  A0, B = _sym(A0.astype(dtype)), symmetrize_B(B.astype(dtype))
  zero_i = jnp.zeros((), jnp.int32)
  if k == 0:
    z = jnp.zeros((), dtype)
    return A0, SDCPInfo(z, z, z, z, zero_i, zero_i)
  tiny = jnp.finfo(dtype).tiny

  # Rescale to ||A0||_F = 1, lambda_max(B) = 1: X = (a / L) Xs solves (QP) iff Xs solves it
  # for (A0 / a, B / L) (f(X) = (a^2 / L) fs(Xs)).
  S_nkk = _sym_basis(k, dtype)
  B_nxn = jnp.einsum("akl,klmn,bmn->ab", S_nkk, B, S_nkk, precision=_HI)
  L = jnp.maximum(jnp.linalg.eigvalsh(B_nxn)[-1], tiny)
  a = jnp.maximum(jnp.sqrt(jnp.sum(A0 * A0)), tiny)
  A0s, Bs, Bs_nxn = A0 / a, B / L, B_nxn / L

  X0 = jnp.zeros_like(A0) if X_init is None else psd_project(
      jnp.asarray(X_init, dtype).reshape(k, k)) * (L / a)
  Xs, iters = _fista(A0s, Bs, X0, num_iters, tol)
  Xs, accepted = (_newton(A0s, Bs, Bs_nxn, S_nkk, Xs, newton_iters) if newton_iters > 0
                  else (Xs, zero_i))

  # Shortcut (REFERENCE.md Sec. 2): A0 >= 0 -> X = 0, exactly.
  shortcut = jnp.linalg.eigvalsh(A0)[0] >= 0
  X = jnp.where(shortcut, jnp.zeros_like(A0), Xs * (a / L))
  AX = A0 + apply_B(B, X)
  nat = X - psd_project(X - AX / L)
  info = SDCPInfo(
      min_eig_X=jnp.linalg.eigvalsh(X)[0],
      min_eig_AX=jnp.linalg.eigvalsh(AX)[0],
      complementarity=jnp.abs(jnp.vdot(X, AX)),
      residual=jnp.sqrt(jnp.sum(nat * nat)) * L / a,
      num_iters=jnp.where(shortcut, zero_i, iters),
      num_newton=jnp.where(shortcut, zero_i, accepted))
  return X, info
