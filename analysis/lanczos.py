"""Lanczos and LOBPCG on flat symmetric operators: the eigen-solvers behind analysis.curvature.

Operators are `mv(x) -> A x` on flat vectors [n] (analysis.curvature builds them from Hessian,
Gauss-Newton or preconditioned products over a params pytree); results come back as
curvature.Eigen with eigenvectors unravelled to pytrees. Fixed iteration counts and lax loops
throughout, so everything is jit- and vmap-compatible. Eigenvalues are ordered ALGEBRAICALLY
(largest first), never by magnitude.
"""
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

_HI = jax.lax.Precision.HIGHEST

# Lanczos iterations used by method='lobpcg' to estimate the bottom of the spectrum (shift).
LOBPCG_SHIFT_ITERS = 16


class Eigen(NamedTuple):
  """Top eigenpairs of a symmetric operator.

  Attributes:
    eigenvalues: [k], largest algebraic first (descending); the Rayleigh quotients of the
      returned vectors.
    eigenvectors: pytree with the params' structure, each leaf [k, *leaf_shape]; unit norm
      over the whole pytree; eigenvectors[j] belongs to eigenvalues[j]. Sign is arbitrary.
    residuals: [k], ||A v - lambda v|| / max(|lambda|, tiny) (relative residual; tiny is the
      smallest positive normal number of the dtype).
    num_matvecs: int32 scalar array, the operator products spent (an array so that Eigen can
      leave jit / vmap; constant for method='lanczos').
  """
  eigenvalues: jax.Array
  eigenvectors: Any
  residuals: jax.Array
  num_matvecs: jax.Array


# ---- Lanczos -------------------------------------------------------------------------------
def _norm(x):
  return jnp.sqrt(jnp.sum(x * x))


def _unit(x, fallback):
  """x / ||x||, or `fallback` where ||x|| is not above the dtype's tiny."""
  tiny = jnp.finfo(x.dtype).tiny
  nx = _norm(x)
  return jnp.where(nx > tiny, x / jnp.maximum(nx, tiny), fallback)


def _random_unit(key, n, dtype):
  r = jax.random.normal(key, (n,), dtype)
  return r / _norm(r)


def _orthogonalize(basis, w):
  """w minus its projection on the rows of basis; classical Gram-Schmidt, twice (Kahan)."""
  for _ in range(2):
    w = w - jnp.matmul(jnp.matmul(basis, w, precision=_HI), basis, precision=_HI)
  return w


def lanczos(matvec: Callable, v0: jax.Array, num_iters: int,
            key: Optional[jax.Array] = None) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Lanczos tridiagonalization with full re-orthogonalization (Lanczos 1950; Parlett 1998).

  Builds an orthonormal basis V of the Krylov space {v0, A v0, A^2 v0, ...} with
  T = V A V^T tridiagonal. Each new vector is re-orthogonalized against the whole stored
  basis by classical Gram-Schmidt applied twice ("twice is enough"), so the Ritz values carry
  no spurious copies. On breakdown (beta below ~100 eps times the largest |alpha| or beta seen,
  i.e. an invariant subspace was found) beta is set to 0 and the iteration continues from a
  random vector (a Gaussian vector from `key`, cyclically shifted by the step index, so no
  random numbers are drawn inside the loop) orthogonalized against the basis (in a lax.cond:
  outside vmap it is computed only on breakdown): T becomes block diagonal and each of its
  eigenvalues is still a Ritz value of A. Only if num_iters > n (the space is exhausted)
  are the extra basis vectors zero, which gives zero diagonal entries in T (spurious zero
  Ritz values): keep num_iters <= n.

  Args:
    matvec: x -> A x on flat vectors [n] (A symmetric).
    v0: [n] start vector (need not be normalized; if zero, a random start from key is used).
    num_iters: number of iterations m (static); exactly m matvecs are made.
    key: PRNG key for restarts (default PRNGKey(0)).

  Returns:
    (alphas [m], betas [m - 1], V [m, n]): T = diag(alphas) + diag(betas, +-1) and the
    orthonormal basis (rows), all in v0's dtype.
  """
  m = int(num_iters)
  if m < 1:
    raise ValueError(f"num_iters={m} must be >= 1")
  v0 = jnp.asarray(v0)
  if v0.ndim != 1 or not jnp.issubdtype(v0.dtype, jnp.floating):
    raise ValueError(f"v0 must be a flat floating-point vector; got {v0.shape} {v0.dtype}")
  basis, alphas, betas, _, _ = jax.lax.fori_loop(0, m, *_setup(matvec, v0, m, key))
  return alphas, betas[:m - 1], basis


def _setup(matvec, v0, m, key):
  """(step, initial carry) of an m-step run: the carry (basis, alphas, betas, v, scale) starts
  from v = v0 normalized, or from r0 if v0 = 0, r0 a random unit vector from key (default
  PRNGKey(0)) that restarts use too."""
  n, dtype = v0.shape[0], v0.dtype
  r0 = _random_unit(jax.random.PRNGKey(0) if key is None else key, n, dtype)
  carry = (jnp.zeros((m, n), dtype), jnp.zeros((m,), dtype), jnp.zeros((m,), dtype),
           _unit(v0, r0), jnp.zeros((), dtype))
  return _step_fn(matvec, r0), carry


def _step_fn(matvec, r0):
  """One Lanczos step i: (basis, alphas, betas, v, scale) -> the same after storing v as
  basis row i and computing alphas[i], betas[i] and the next vector (see lanczos)."""
  n, dtype = r0.shape[0], r0.dtype
  tiny = jnp.finfo(dtype).tiny
  tol = 100 * jnp.finfo(dtype).eps

  def step(i, carry):
    basis, alphas, betas, v, scale = carry
    basis = basis.at[i].set(v)
    w = matvec(v)
    alpha = jnp.sum(v * w)
    w = _orthogonalize(basis, w)
    beta = _norm(w)
    scale = jnp.maximum(scale, jnp.maximum(jnp.abs(alpha), beta))
    broke = beta <= tol * scale

    def restart(basis):
      # A fresh direction: the random vector r0 rotated by i, orthogonalized to the basis.
      r = _orthogonalize(basis, jnp.roll(r0, i))
      r = r / jnp.maximum(_norm(r), tiny)
      return jnp.where(i + 1 < n, r, jnp.zeros_like(r))   # the space is exhausted: zero

    v_next = jax.lax.cond(broke, restart, lambda _: w / jnp.maximum(beta, tiny), basis)
    alphas = alphas.at[i].set(alpha)
    betas = betas.at[i].set(jnp.where(broke, jnp.zeros_like(beta), beta))
    return basis, alphas, betas, v_next, scale

  return step


def _top_ritz(alphas, betas, j, k):
  """The top-k Ritz pairs after j steps of a run whose T is stored padded to m = len(alphas):
  (theta [k] descending, y [m, k], relative residuals [k]). Rows j.. of T are pushed below the
  spectrum; the residual of pair i is betas[j - 1] |y[j - 1, i]| / |theta_i| (exact for the
  Ritz pair of an orthonormal basis; betas[j - 1] = 0 after a breakdown)."""
  m, dtype = alphas.shape[0], alphas.dtype
  tiny = jnp.finfo(dtype).tiny
  idx = jnp.arange(m)
  off = jnp.where(idx[:-1] < j - 1, betas[:-1], 0)
  t = _tridiagonal(jnp.where(idx < j, alphas, 0), off)
  shift = 1 + 2 * jnp.sqrt(jnp.sum(t * t))
  t = t - jnp.diag(jnp.where(idx < j, 0, shift).astype(dtype))
  theta, y = jnp.linalg.eigh(t)
  theta, y = theta[::-1][:k], y[:, ::-1][:, :k]
  last = betas[jnp.maximum(j - 1, 0)]
  res = jnp.abs(last * y[jnp.maximum(j - 1, 0)]) / jnp.maximum(jnp.abs(theta), tiny)
  return theta, y, res


def lanczos_until(matvec: Callable, v0: jax.Array, max_iters: int, k: int, tol: float,
                  key: Optional[jax.Array] = None):
  """Lanczos (as `lanczos`, same steps) that stops as soon as the top-k Ritz pairs' relative
  residuals ||A y - theta y|| / |theta| are all <= tol, after at least k steps, or after
  max_iters steps. The residuals come from T (betas[j - 1] times the last component of the
  Ritz vector), so no product is spent on them: a warm start that is already an eigenvector
  to within tol costs max(k, 1) products. A lax.while_loop: under vmap it runs until every
  member has stopped (the members that stopped keep their result).

  Returns:
    (theta [k] descending, vectors [k, n] (the Ritz vectors, unit rows), residuals [k],
    steps: the number of products made, int32).
  """
  m = int(max_iters)
  if not 1 <= k <= m:
    raise ValueError(f"k={k} must lie in [1, max_iters={m}]")
  v0 = jnp.asarray(v0)
  if m > v0.shape[0]:
    raise ValueError(f"max_iters={m} must be <= n={v0.shape[0]}")
  step, carry = _setup(matvec, v0, m, key)

  def more(c):
    j, _, alphas, betas, _, _ = c
    res = _top_ritz(alphas, betas, j, k)[2]
    return (j < m) & ((j < k) | (jnp.max(res) > tol))

  def body(c):
    j, *rest = c
    return (j + 1,) + step(j, tuple(rest))

  j, basis, alphas, betas, _, _ = jax.lax.while_loop(more, body, (jnp.int32(0),) + carry)
  theta, y, res = _top_ritz(alphas, betas, j, k)
  return theta, jnp.matmul(y.T, basis, precision=_HI), res, j


def _tridiagonal(alphas, betas):
  return jnp.diag(alphas) + jnp.diag(betas, 1) + jnp.diag(betas, -1)


def _row_norms(a):
  return jnp.sqrt(jnp.sum(a * a, axis=1))


def _sorted_ritz(x, ax):
  """Rayleigh quotients lam of the unit rows x [k, n] (ax = A x), with the pairs sorted by
  them (descending): (lam, x, r = A x - lam x, relative residuals ||r|| / max(|lam|, tiny))."""
  lam = jnp.sum(x * ax, axis=1)
  order = jnp.argsort(-lam)
  lam, x, ax = lam[order], x[order], ax[order]
  r = ax - lam[:, None] * x
  return lam, x, r, _row_norms(r) / jnp.maximum(jnp.abs(lam), jnp.finfo(x.dtype).tiny)


def _finish(mv, unravel, vectors, num_matvecs):
  """Eigen from approximate eigenvectors [k, n]: Rayleigh quotients, sorting, residuals."""
  vectors = vectors / jnp.maximum(_row_norms(vectors), jnp.finfo(vectors.dtype).tiny)[:, None]
  lam, vectors, _, res = _sorted_ritz(vectors, jax.vmap(mv)(vectors))
  return Eigen(eigenvalues=lam, eigenvectors=jax.vmap(unravel)(vectors), residuals=res,
               num_matvecs=jnp.asarray(num_matvecs + vectors.shape[0], jnp.int32))


def _flat_block(v0, n, dtype):
  """v0 (pytree, leaves with a leading [j] axis) as [j, n]."""
  block = jax.vmap(lambda t: ravel_pytree(t)[0])(v0).astype(dtype)
  if block.ndim != 2 or block.shape[1] != n:
    raise ValueError(f"v0 must have the params' structure with a leading [k] axis on every "
                     f"leaf; it flattens to {block.shape}, expected [k, {n}]")
  return block


def _start(flat, v0, key, noise):
  """Lanczos' start vector: the normalized sum of v0's rows plus noise times a random unit
  vector (key), or that random vector alone when v0 is None or sums to zero."""
  n, dtype = flat.shape[0], flat.dtype
  r = _random_unit(key, n, dtype)
  if v0 is None:
    return r
  s = jnp.sum(_flat_block(v0, n, dtype), axis=0)
  return _unit(s, jnp.zeros_like(s)) + noise * r


def _top_lanczos(mv, flat, unravel, k, num_iters, v0, key, noise, tol=0.0):
  n = flat.shape[0]
  m = min(int(num_iters), n)
  if not 1 <= k <= m:
    raise ValueError(f"k={k} must lie in [1, min(num_iters, n)] = [1, {m}]")
  k_start, k_restart = jax.random.split(key)
  start = _start(flat, v0, k_start, noise)
  if tol > 0:
    theta, vectors, res, steps = lanczos_until(mv, start, m, k, tol, key=k_restart)
    return Eigen(eigenvalues=theta, eigenvectors=jax.vmap(unravel)(vectors), residuals=res,
                 num_matvecs=steps)
  alphas, betas, basis = lanczos(mv, start, m, key=k_restart)
  _, y = jnp.linalg.eigh(_tridiagonal(alphas, betas))
  y = y[:, ::-1][:, :k]                                       # top k Ritz vectors of T
  vectors = jnp.matmul(y.T, basis, precision=_HI)             # [k, n]
  return _finish(mv, unravel, vectors, m)


def _top_lobpcg(mv, flat, unravel, k, num_iters, v0, key, noise):
  from jax.experimental.sparse.linalg import lobpcg_standard
  n, dtype = flat.shape[0], flat.dtype
  if not 0 < 5 * k < n:
    raise ValueError(f"method='lobpcg' needs 0 < 5 * k < n; got k={k}, n={n}")
  k_shift, k_start, k_restart = jax.random.split(key, 3)
  # Shift: lobpcg_standard keeps the k LARGEST ALGEBRAIC Ritz values of each Rayleigh-Ritz
  # step (eigh, descending), but zero columns that its basis truncation leaves give spurious
  # zero Ritz values (and zero X columns) once the wanted eigenvalues are not positive, and
  # its convergence test assumes theta >= 0. So we run it on A + s I with s > -lambda_min(A):
  # s = max(0.1 (t_max - t_min) - t_min, 0.1 a), a = max(|t_max|, |t_min|) (1 if A = 0),
  # from the extreme Ritz values t of a short Lanczos run (Ritz values lie inside the
  # spectrum; the margin covers t_min's error).
  ms = min(LOBPCG_SHIFT_ITERS, n)
  r0 = jax.random.normal(k_shift, (n,), dtype)
  a, b, _ = lanczos(mv, r0, ms, key=k_restart)
  t = jax.lax.stop_gradient(jnp.linalg.eigvalsh(_tridiagonal(a, b)))
  scale = jnp.maximum(jnp.abs(t[-1]), jnp.abs(t[0]))
  scale = jnp.where(scale > 0, scale, 1.0).astype(dtype)
  shift = jnp.maximum(0.1 * (t[-1] - t[0]) - t[0], 0.1 * scale).astype(dtype)
  # lobpcg_standard stops when every ||A v - theta v|| < tol 10 n (theta + ||A v||) (theta on
  # the shifted operator, ~ 2 (t_max + s) on the right). Its default tol = eps makes that
  # ~20 n eps (t_max + s): 0.1 (t_max + s) in float32 at n = 50k, a stop after 1-5
  # iterations with eigenvalues off by 10%. Ask instead for ||A v - lambda v|| <=
  # sqrt(eps) ||A|| (~ a), which gives eigenvalues to ~eps ||A||^2 / gap.
  rtol = float(jnp.finfo(dtype).eps) ** 0.5
  tol = rtol * scale / (10 * n * 2 * (jnp.maximum(t[-1], 0) + shift))
  rand = jax.random.normal(k_start, (n, k), dtype)
  rand = rand / jnp.sqrt(jnp.sum(rand * rand, axis=0, keepdims=True))
  if v0 is None:
    x0 = rand
  else:
    block = _flat_block(v0, n, dtype)
    if block.shape[0] != k:
      raise ValueError(f"method='lobpcg' needs v0 with a leading axis of k={k}; got "
                       f"{block.shape[0]}")
    x0 = block.T + noise * rand      # a block start: one column per previous eigenvector

  def shifted(x):                    # [n, c] -> [n, c]
    return jax.vmap(mv, in_axes=1, out_axes=1)(x) + shift * x

  _, u, iters = lobpcg_standard(shifted, x0, m=int(num_iters), tol=tol)
  # Matvecs: the shift's Lanczos, A X at start, 4k per iteration (A [X, P, R] and A X).
  used = ms + k + 4 * k * jnp.asarray(iters, jnp.int32)
  return _finish(mv, unravel, u.T, used)


# ---- tracking: one block iteration per call ------------------------------------------------
class Track(NamedTuple):
  """State of track_step: flat blocks [k, n] carried from one call to the next.

  Attributes:
    x: the eigenvector estimates (orthonormal rows; a zero row: none yet).
    r: their residuals A x - lambda x at the last call (zero: none yet).
    p: the last update direction, the part of the new x outside the span of the old one
      (zero: none yet).
  """
  x: jax.Array
  r: jax.Array
  p: jax.Array


def _orthonormal_rows(s):
  """Orthonormal rows spanning the rows of s [m, n], as [m, n] with zero rows where s has
  fewer than m independent directions.

  SVQB (Stathopoulos & Wu 2002), twice: rows scaled to unit norm (zero rows stay zero), Gram
  matrix G = s s^T = V diag(d) V^T, rows V^T s / sqrt(d) for d > 100 m eps max(d) and zero
  rows for the rest (nearly dependent directions are dropped, never amplified beyond
  ~(100 m eps)^-1/2); the second pass restores the orthogonality the first loses to rounding.
  No NaN for any finite s, including s = 0.
  """
  m, dtype = s.shape[0], s.dtype
  tiny = jnp.finfo(dtype).tiny
  tol = 100 * m * jnp.finfo(dtype).eps
  for _ in range(2):
    nr = _row_norms(s)
    s = jnp.where((nr > tiny)[:, None], s / jnp.maximum(nr, tiny)[:, None], 0)
    d, v = jnp.linalg.eigh(jnp.matmul(s, s.T, precision=_HI))
    keep = d > tol * jnp.maximum(d[-1], tiny)
    c = v * jnp.where(keep, 1 / jnp.sqrt(jnp.maximum(d, tiny)), 0)[None, :]
    s = jnp.matmul(c.T, s, precision=_HI)
  return s


def track_step(block_mv: Callable, state: Track, fill: jax.Array,
               extra: Optional[jax.Array] = None) -> tuple[Track, jax.Array, jax.Array]:
  """One LOBPCG iteration (Knyazev 2001) on the current operator, from the carried block.

  The search space is span[x, r, p] (3k rows, plus the rows of `extra`): its orthonormal
  basis Q (_orthonormal_rows) is multiplied by the operator in ONE batched call block_mv(Q),
  then Rayleigh-Ritz on T = Q (A Q)^T gives the new x (the top-k Ritz vectors, in descending
  order of their Rayleigh quotients). A x_new is the same combination of the rows of A Q, so
  lambda (the Rayleigh quotients of x_new) and the residual r_new = A x_new - lambda x_new are
  those of the CURRENT operator with no further product. The new p is x_new minus its
  projection on the old x (Hetmaniuk & Lehoucq 2006). When A changes slowly between calls
  (training steps), x follows the top-k eigenvectors at one block product per call; r and p
  of the previous operator stay good search directions for the next.

  Degenerate blocks (zero r or p, or r parallel to p) lose those directions in Q (zero rows,
  kept out of the Ritz selection by a shift below the spectrum), and zero rows of x are
  replaced by the rows of `fill`, so no NaN ever appears.

  Args:
    block_mv: Q [m, n] -> A Q [m, n] (e.g. jax.vmap of a matvec), A symmetric.
    state: the carried Track (x, r, p each [k, n]).
    fill: [k, n] fixed vectors that stand in for zero rows of x (e.g. random unit vectors).
    extra: optional [j, n] further directions for the search space (e.g. the x and r of
      earlier calls; zero rows are dropped); they add j products to the batched call.

  Returns:
    (new state, eigenvalues [k] descending, relative residuals [k]:
    ||A x - lambda x|| / max(|lambda|, tiny)).
  """
  x, r, p = state
  k, dtype = x.shape[0], x.dtype
  tiny = jnp.finfo(dtype).tiny
  x = jnp.where((_row_norms(x) > tiny)[:, None], x, fill.astype(dtype))
  block = [x, r, p] + ([] if extra is None else [extra.astype(dtype)])
  q = _orthonormal_rows(jnp.concatenate(block, axis=0))
  aq = block_mv(q)
  t = jnp.matmul(q, aq.T, precision=_HI)
  t = 0.5 * (t + t.T)
  # zero rows of q (dropped directions) give zero rows of t: push them below the spectrum
  shift = 1 + 2 * jnp.sqrt(jnp.sum(t * t))
  t = t - jnp.diag(jnp.where(_row_norms(q) > 0.5, 0, shift).astype(dtype))
  _, y = jnp.linalg.eigh(t)
  y = y[:, ::-1][:, :k]                                        # top k Ritz vectors of t
  xn = jnp.matmul(y.T, q, precision=_HI)
  axn = jnp.matmul(y.T, aq, precision=_HI)
  nrm = jnp.maximum(_row_norms(xn), tiny)[:, None]
  lam, xn, rn, res = _sorted_ritz(xn / nrm, axn / nrm)
  xo = _orthonormal_rows(x)
  pn = xn - jnp.matmul(jnp.matmul(xn, xo.T, precision=_HI), xo, precision=_HI)
  return Track(xn, rn, pn), lam, res
