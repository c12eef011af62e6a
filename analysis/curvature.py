"""Curvature of the loss: Hessian products, top eigenpairs, sharpness, traces and spectra.

Edge-of-stability theory (Cohen et al. 2021, "Gradient Descent on Neural Networks Typically
Occurs at the Edge of Stability") tracks the sharpness S(w) = lambda_max(H(w)), the LARGEST
ALGEBRAIC eigenvalue of the loss Hessian: gradient descent with step size eta is stable on a
quadratic only while S < 2 / eta. A large negative eigenvalue (a saddle direction) is never
sharpness, so everything here orders eigenvalues algebraically (never by magnitude, unlike the
gradient flow's step-size control in dynamics/flow.py). For adaptive methods with diagonal
preconditioner P (dynamics.optimizers: the step is -P^{-1} d) the relevant quantity is the
preconditioned sharpness lambda_max(P^{-1} H) = lambda_max(P^{-1/2} H P^{-1/2}) (Cohen et al.
2022, "Adaptive Gradient Methods at the Edge of Stability"); for minibatch SGD the batch
sharpness E_B[g_B^T H_B g_B / ||g_B||^2] and the mean of lambda_max(H_B) (Andreyev &
Beneventano 2024, "Edge of Stochastic Stability").

Every function takes a `loss_fn(params, batch) -> scalar` over a params PYTREE, is jit- and
vmap-compatible (fixed iteration counts, lax loops, no Python control flow on traced values)
and computes in the params' dtype (float64 params give float64 results). Internally vectors
are flat (jax.flatten_util.ravel_pytree); eigenvectors come back as pytrees whose leaves have
a leading [k] axis.

    e = top_eigenpairs(program.batch_loss, params, batch, k=3, num_iters=30)
    e.eigenvalues            # [3], descending
    e.eigenvectors           # params-shaped, each leaf [3, ...]
    e = top_eigenpairs(program.batch_loss, params2, batch, k=3, num_iters=10,
                       v0=e.eigenvectors)        # warm start from the previous vectors
"""
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

# The eigen-solvers (re-exported: Eigen and lanczos are part of this module's API).
from analysis.lanczos import (  # noqa: F401
    Eigen, Track, _top_lanczos, _top_lobpcg, _tridiagonal, lanczos, track_step)

_HI = jax.lax.Precision.HIGHEST

# Relative size of the random perturbation added to a warm start (see top_eigenpairs).
WARM_START_NOISE = 1e-3


def _check_count(name, value, lo=1):
  """ValueError unless value is an int (not a bool) >= lo (1: positive, 0: non-negative)."""
  if not isinstance(value, int) or isinstance(value, bool) or value < lo:
    kind = "positive" if lo == 1 else "non-negative"
    raise ValueError(f"{name}={value!r} must be a {kind} integer")


# ---- products ------------------------------------------------------------------------------
def _hvp_one(loss_fn, params, v, batch):
  return jax.jvp(lambda p: jax.grad(loss_fn)(p, batch), (params,), (v,))[1]


def hvp(loss_fn: Callable, params: Any, v: Any, batch: Any, num_chunks: int = 1) -> Any:
  """Hessian-vector product H v, forward-over-reverse (Pearlmutter 1994).

  Args:
    loss_fn: loss_fn(params, batch) -> scalar.
    params: pytree at which the Hessian is taken.
    v: pytree with the params' structure.
    batch: the batch passed to loss_fn. With num_chunks > 1 a pytree (e.g. dict) of arrays
      that all share a leading example axis of size N.
    num_chunks: with num_chunks > 1 the batch is split into num_chunks equal chunks, processed
      one at a time by lax.scan (memory of one chunk), and their HVPs are summed with weights
      chunk_size / N. Exact when loss_fn is the mean of per-example losses.

  Returns:
    H v, a pytree with the params' structure.

  Raises:
    ValueError: num_chunks is not a positive integer, or N is not divisible by num_chunks.
  """
  _check_count("num_chunks", num_chunks)
  if num_chunks == 1:
    return _hvp_one(loss_fn, params, v, batch)
  leaves = jax.tree.leaves(batch)
  if not leaves or any(jnp.ndim(x) < 1 for x in leaves):
    raise ValueError(f"num_chunks={num_chunks} needs a batch of arrays with a leading example "
                     "axis")
  sizes = {jnp.shape(x)[0] for x in leaves}
  if len(sizes) != 1:
    raise ValueError(f"num_chunks={num_chunks}: the batch's arrays have different leading "
                     f"sizes {sorted(sizes)}")
  n = sizes.pop()
  if n % num_chunks:
    raise ValueError(f"num_chunks={num_chunks} must divide the batch size {n}")
  c = num_chunks
  chunks = jax.tree.map(lambda x: jnp.reshape(x, (c, n // c) + jnp.shape(x)[1:]), batch)

  def body(acc, b):
    h = _hvp_one(loss_fn, params, v, b)
    return jax.tree.map(lambda a, hi: a + hi * jnp.asarray(1.0 / c, hi.dtype), acc, h), None

  acc0 = jax.eval_shape(lambda: _hvp_one(loss_fn, params, v, jax.tree.map(lambda x: x[0],
                                                                           chunks)))
  acc0 = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), acc0)
  return jax.lax.scan(body, acc0, chunks)[0]


def ggn_vp(apply_fn: Callable, loss_of_outputs: Callable, params: Any, v: Any,
           batch: Any) -> Any:
  """Generalized Gauss-Newton product G v = J^T H_out J v (Schraudolph 2002; Martens 2020).

  J is the Jacobian of outputs = apply_fn(params, x) with respect to params and H_out the
  Hessian of loss_of_outputs(outputs, y) with respect to the outputs. G is the Hessian with
  the second-order terms of the network dropped; it equals the Hessian for a model linear in
  its params, and is PSD for a convex loss_of_outputs.

  Args:
    apply_fn: apply_fn(params, x) -> outputs.
    loss_of_outputs: loss_of_outputs(outputs, y) -> scalar, the mean loss over the batch.
    params, v: pytrees of the same structure.
    batch: {'x': x, 'y': y} or a tuple (x, y).

  Returns:
    G v, a pytree with the params' structure.
  """
  x, y = (batch["x"], batch["y"]) if isinstance(batch, dict) else batch
  f = lambda p: apply_fn(p, x)
  outputs, f_vjp = jax.vjp(f, params)
  jv = jax.jvp(f, (params,), (v,))[1]
  hjv = jax.jvp(jax.grad(lambda o: loss_of_outputs(o, y)), (outputs,), (jv,))[1]
  return f_vjp(hjv)[0]


def _flat_operator(loss_fn, params, batch, matvec, num_chunks=1, P=None):
  """(flat params, unravel, flat matvec) for the Hessian of loss_fn or the given matvec A;
  with a preconditioner P (see _inv_sqrt_flat), for P^{-1/2} A P^{-1/2} instead."""
  if loss_fn is None and matvec is None:
    raise ValueError("give a loss_fn or a matvec")
  flat, unravel = ravel_pytree(params)
  if not jnp.issubdtype(flat.dtype, jnp.floating):
    raise ValueError(f"params must be floating point; got {flat.dtype}")
  tree_mv = matvec if matvec is not None else lambda v: hvp(loss_fn, params, v, batch, num_chunks)

  def mv(x):
    return ravel_pytree(tree_mv(unravel(x)))[0].astype(flat.dtype)

  if P is None:
    return flat, unravel, mv
  d = _inv_sqrt_flat(P, params, flat.dtype)
  return flat, unravel, lambda x: d * mv(d * x)


def top_eigenpairs(loss_fn: Optional[Callable], params: Any, batch: Any, k: int = 1,
                   num_iters: int = 30, v0: Any = None, key: Optional[jax.Array] = None,
                   matvec: Optional[Callable] = None, method: str = "lanczos",
                   num_chunks: int = 1, warm_start_noise: float = WARM_START_NOISE,
                   tol: float = 0.0) -> Eigen:
  """The k largest ALGEBRAIC eigenvalues of the Hessian (or of `matvec`) and their vectors.

  The sharpness of Cohen et al. 2021 is top_eigenpairs(...).eigenvalues[0]; a negative
  eigenvalue of larger magnitude is never returned in its place.

  method='lanczos': num_iters = m steps of Lanczos with full re-orthogonalization (m is
  clipped to n), then the top k Ritz pairs of T; m + k matvecs. From a single start vector
  Lanczos finds one vector per eigenspace: with repeated top eigenvalues use 'lobpcg'.
  method='lobpcg': jax.experimental.sparse.linalg.lobpcg_standard with at most num_iters
  iterations on the operator shifted to be positive semi-definite (see _top_lobpcg); needs
  5 k < n; stops early once every residual ||H v - lambda v|| is below sqrt(eps) times the
  spectrum's scale (eps of the dtype), which puts eigenvalues within ~eps ||H||^2 / gap.

  Warm start: v0 holds previous eigenvectors (pytree, leaves with a leading [j] axis, e.g. the
  last call's Eigen.eigenvectors). Lanczos starts from the normalized SUM of the j vectors
  plus a random unit vector times warm_start_noise: when those vectors (nearly) span the top
  of the spectrum, the first j Krylov steps capture that span and the rest refine it, so a
  few iterations suffice; the perturbation keeps the start from lying exactly in an invariant
  subspace and lets a newly risen eigenvalue enter, though not always at once: with 10
  iterations a direction that has just overtaken the tracked one (10 against 9.5, n = 2000)
  is often missed at the first call, with a small residual (the old pair is still an
  eigenpair), and caught within 2-4 calls; with 20 at the first (tested). lobpcg uses v0 as a
  block start (one column per vector, plus the same perturbation; then j must equal k). Zero
  vectors in v0 (e.g. a probe's initial state) give a random (cold) start.

  Args:
    loss_fn: loss_fn(params, batch) -> scalar (unused if matvec is given).
    params, batch: passed to loss_fn.
    k: number of eigenpairs (static).
    num_iters: Lanczos steps, or lobpcg's maximum number of iterations (static).
    v0: optional warm start (see above).
    key: PRNG key for the random start / perturbation (default PRNGKey(0)).
    matvec: optional operator v -> A v on params-shaped pytrees replacing the Hessian (e.g.
      lambda v: ggn_vp(apply_fn, loss_of_outputs, params, v, batch)); must be symmetric.
    method: 'lanczos' or 'lobpcg'.
    num_chunks: passed to hvp (Hessian only).
    warm_start_noise: relative size of the random perturbation of a warm start.
    tol: method 'lanczos' only: with tol > 0, stop as soon as the top-k relative residuals
      are all <= tol (at most num_iters steps; analysis.lanczos.lanczos_until); the
      residuals are then read off T, no product is spent on them, and num_matvecs is the
      number of steps made.

  Returns:
    Eigen (eigenvalues descending).
  """
  if method not in ("lanczos", "lobpcg"):
    raise ValueError(f"method={method!r} must be 'lanczos' or 'lobpcg'")
  if not tol >= 0 or (tol > 0 and method != "lanczos"):
    raise ValueError(f"tol={tol!r} must be >= 0, and 0 unless method='lanczos'")
  _check_count("k", k)
  flat, unravel, mv = _flat_operator(loss_fn, params, batch, matvec, num_chunks)
  key = jax.random.PRNGKey(0) if key is None else key
  if method == "lobpcg":
    return _top_lobpcg(mv, flat, unravel, k, num_iters, v0, key, warm_start_noise)
  return _top_lanczos(mv, flat, unravel, k, num_iters, v0, key, warm_start_noise, tol)


def _inv_sqrt_flat(P, params, dtype):
  """P^{-1/2} as a flat vector; P's leaves broadcast to the params' leaf shapes."""
  p_leaves = jax.tree.leaves(P)
  w_leaves, treedef = jax.tree.flatten(params)
  if len(p_leaves) != len(w_leaves):
    raise ValueError(f"P has {len(p_leaves)} leaves; params have {len(w_leaves)}")
  d = [jnp.broadcast_to(jnp.asarray(p, dtype), jnp.shape(w)) ** -0.5
       for p, w in zip(p_leaves, w_leaves)]
  return ravel_pytree(jax.tree.unflatten(treedef, d))[0].astype(dtype)


def preconditioned_sharpness(loss_fn: Optional[Callable], params: Any, batch: Any, P: Any,
                             k: int = 1, **kw) -> Eigen:
  """Top eigenpairs of P^{-1/2} H P^{-1/2} (Cohen et al. 2022, Adaptive EoS).

  P is the diagonal preconditioner of dynamics.optimizers (the step is -P^{-1} d), so the
  eigenvalues are those of P^{-1} H: eigenvalues[0] is compared with 2 (gd, P = 1 / eta),
  2 + 2 beta (heavy ball) or (2 + 2 b1) / (1 - b1) (adam).

  The eigenvectors are in the TRANSFORMED coordinates: u with P^{-1/2} H P^{-1/2} u = lambda u
  (unit norm). The corresponding right eigenvector of P^{-1} H is P^{-1/2} u, and of H P^{-1}
  it is P^{1/2} u. Warm starts (v0 in kw) must be given in the same transformed coordinates
  (e.g. the previous call's eigenvectors); residuals are those of the transformed operator.

  Args:
    loss_fn, params, batch: as top_eigenpairs (loss_fn None with matvec in kw: the operator
      P^{-1/2} A P^{-1/2} of that matvec).
    P: pytree with the params' structure; each leaf positive and broadcastable to the
      params leaf (scalar leaves allowed).
    k: number of eigenpairs.
    **kw: passed to top_eigenpairs (num_iters, v0, key, matvec, method, num_chunks, ...).

  Returns:
    Eigen of the preconditioned operator.
  """
  flat, unravel, mv = _flat_operator(loss_fn, params, batch, kw.pop("matvec", None),
                                     kw.pop("num_chunks", 1), P)
  pre_mv = lambda v: unravel(mv(ravel_pytree(v)[0].astype(flat.dtype)))
  return top_eigenpairs(None, params, None, k=k, matvec=pre_mv, **kw)


# ---- stochastic sharpness, traces, spectra -------------------------------------------------
def batch_sharpness(loss_fn: Callable, params: Any, batches: Any, num_iters: int = 20,
                    key: Optional[jax.Array] = None) -> dict:
  """Minibatch sharpness for SGD (Andreyev & Beneventano 2024, "Edge of Stochastic Stability").

  For each minibatch B (processed one at a time with lax.map): lambda_max(H_B) by Lanczos
  (top_eigenpairs, k=1) and the directional curvature g_B^T H_B g_B / ||g_B||^2 along the
  minibatch gradient g_B (0 where g_B = 0).

  Args:
    loss_fn, params: as top_eigenpairs.
    batches: pytree (e.g. dict) of arrays with a leading [num_batches] axis; batches[i] is a
      batch for loss_fn.
    num_iters: Lanczos steps per batch.
    key: PRNG key (default PRNGKey(0)); batch i uses fold_in(key, i).

  Returns:
    dict of arrays: mean_lambda_max (scalar, mean over batches of lambda_max(H_B)),
    directional (scalar, mean over batches of the directional curvature; the "batch
    sharpness"), per_batch_lambda_max [num_batches], per_batch_directional [num_batches].
  """
  key = jax.random.PRNGKey(0) if key is None else key
  flat = ravel_pytree(params)[0]
  nb = jax.tree.leaves(batches)[0].shape[0]
  tiny = jnp.finfo(flat.dtype).tiny

  def one(args):
    i, b = args
    e = top_eigenpairs(loss_fn, params, b, k=1, num_iters=num_iters,
                       key=jax.random.fold_in(key, i))
    g = jax.grad(loss_fn)(params, b)
    gf = ravel_pytree(g)[0]
    hg = ravel_pytree(hvp(loss_fn, params, g, b))[0]
    gg = jnp.sum(gf * gf)
    return e.eigenvalues[0], jnp.sum(gf * hg) / jnp.maximum(gg, tiny)

  lam, dire = jax.lax.map(one, (jnp.arange(nb), batches))
  return dict(mean_lambda_max=jnp.mean(lam), directional=jnp.mean(dire),
              per_batch_lambda_max=lam, per_batch_directional=dire)


def hutchinson_trace(loss_fn: Optional[Callable], params: Any, batch: Any, key: jax.Array,
                     num_probes: int = 100, matvec: Optional[Callable] = None
                     ) -> tuple[jax.Array, jax.Array]:
  """Hutchinson's trace estimator tr(H) ~ mean_i z_i^T H z_i, z_i Rademacher (Hutchinson 1989).

  Probes are processed one at a time (lax.map).

  Args:
    loss_fn, params, batch, matvec: as top_eigenpairs (matvec replaces the Hessian).
    key: PRNG key.
    num_probes: number of probes (>= 2, static).

  Returns:
    (estimate, standard_error): scalars; standard_error = std(samples, ddof=1) / sqrt(num).
  """
  if num_probes < 2:
    raise ValueError(f"num_probes={num_probes} must be >= 2")
  flat, _, mv = _flat_operator(loss_fn, params, batch, matvec)
  n, dtype = flat.shape[0], flat.dtype

  def one(kk):
    z = 2 * jax.random.bernoulli(kk, 0.5, (n,)).astype(dtype) - 1
    return jnp.sum(z * mv(z))

  samples = jax.lax.map(one, jax.random.split(key, num_probes))
  se = jnp.std(samples, ddof=1) / jnp.sqrt(jnp.asarray(num_probes, dtype))
  return jnp.mean(samples), se


def spectral_density(loss_fn: Optional[Callable], params: Any, batch: Any, key: jax.Array,
                     num_iters: int = 60, num_starts: int = 4, grid: Any = None,
                     sigma: Any = None, num_points: int = 512,
                     matvec: Optional[Callable] = None) -> dict:
  """Hessian eigenvalue density by stochastic Lanczos quadrature (Golub & Welsch 1969;
  Ubaru, Chen & Saad 2017; Ghorbani, Krishnan & Xiao 2019).

  For each of num_starts random unit Gaussian starts v, Lanczos (full re-orthogonalization,
  num_iters steps clipped to n) gives T = Y diag(theta) Y^T; the quadrature nodes are the
  Ritz values theta and the weights the squared first components Y[0, :]^2 (they sum to 1),
  so sum_i w_i f(theta_i) ~ v^T f(H) v. The density is the average over starts of
  sum_i w_i N(x; theta_i, sigma^2): it integrates to 1 and its mean sum w theta estimates
  tr(H) / n.

  Args:
    loss_fn, params, batch, matvec: as top_eigenpairs (matvec replaces the Hessian).
    key: PRNG key.
    num_iters: Lanczos steps per start (static).
    num_starts: random starts (static), processed one at a time.
    grid: optional 1-d array of evaluation points; default num_points points spanning
      [min node - 5 sigma, max node + 5 sigma].
    sigma: Gaussian smoothing width; default 1% of the node range (max - min), or 1% of
      max(|node|, 1) when all nodes coincide.
    num_points: size of the default grid (static).

  Returns:
    dict(grid [num_points], density [num_points], nodes [num_starts, m],
    weights [num_starts, m]) with m = min(num_iters, n).
  """
  flat, _, mv = _flat_operator(loss_fn, params, batch, matvec)
  n, dtype = flat.shape[0], flat.dtype
  m = min(int(num_iters), n)

  def one(kk):
    k1, k2 = jax.random.split(kk)
    alphas, betas, _ = lanczos(mv, jax.random.normal(k1, (n,), dtype), m, key=k2)
    theta, y = jnp.linalg.eigh(_tridiagonal(alphas, betas))
    return theta, jnp.square(y[0, :])

  nodes, weights = jax.lax.map(one, jax.random.split(key, num_starts))
  lo, hi = jnp.min(nodes), jnp.max(nodes)
  if sigma is None:
    span = hi - lo
    sigma = jnp.where(span > 0, 0.01 * span, 0.01 * jnp.maximum(jnp.abs(hi), 1.0))
  sigma = jnp.asarray(sigma, dtype)
  if grid is None:
    grid = jnp.linspace(lo - 5 * sigma, hi + 5 * sigma, num_points, dtype=dtype)
  grid = jnp.asarray(grid, dtype)
  z = (grid[:, None] - jnp.reshape(nodes, (1, -1))) / sigma
  gauss = jnp.exp(-0.5 * z * z) / (sigma * jnp.sqrt(2 * jnp.pi).astype(dtype))
  density = jnp.matmul(gauss, jnp.reshape(weights, (-1,)), precision=_HI) / num_starts
  return dict(grid=grid, density=density, nodes=nodes, weights=weights)


# ---- in-loop probe -------------------------------------------------------------------------
def sharpness_probe(loss_fn: Callable, k: int = 1, num_iters: int = 20, every: int = 1,
                    precondition_fn: Optional[Callable] = None, method: str = "lanczos",
                    cold_iters: int = 0, guard: int = 0, memory: int = 0,
                    tol: float = 0.0, warm: bool = True):
  """A dynamics.train.Probe reporting the top-k (preconditioned) Hessian eigenvalues.

  The probe's state carries the previous eigenvectors, so each measurement warm-starts from
  the last one (see top_eigenpairs) and num_iters can stay small once training is under way;
  the first measurement starts cold (the state starts at zero vectors).

  method='track' instead carries a block (x, r, p) from call to call and makes ONE block
  iteration of LOBPCG per call on the current Hessian (analysis.lanczos.track_step): one
  batched product with 3k vectors per call (more with guard and memory; repeated only with
  tol > 0), where Lanczos makes num_iters + k sequential ones. Its eigenvalues are Rayleigh
  quotients and its residuals exact ones of the current Hessian, like Lanczos'; how close
  they are to the eigenvalues depends on how far the Hessian moved since the last call (see
  docs/notes/edge_of_stability.md for the accuracy measured against dense Hessians). With
  cold_iters the tracker starts from a cold Lanczos solve at init (and its residuals, one
  more batched product); without, from fixed random vectors, and it needs a few calls to
  converge. `guard` extra vectors in the block (k + guard tracked, the top k reported; the
  product is then one of 3 (k + guard) vectors) speed up convergence when the top
  eigenvalues are close or the Hessian moves fast (LOBPCG's rate depends on the gap to the
  first eigenvalue outside the block).

  Args:
    loss_fn: loss_fn(params, batch) -> scalar, e.g. Program.batch_loss; the probe gets the
      full training batch.
    k: number of eigenvalues.
    num_iters: Lanczos steps per measurement ('lanczos', 'lobpcg'); with 'track', the most
      block iterations per measurement when tol > 0 (otherwise unused: one iteration).
    every: measure at every `every`-th call (calls 0, every, 2 every, ...); other calls report
      NaN and keep the vectors. Implemented with lax.cond: under vmap with members whose call
      counts differ the condition is batched and both branches run.
    warm: method 'lanczos': False starts every measurement cold, from the probe's fresh random
      vector, instead of from the last eigenvectors (a reference for the warm methods; the
      cost of num_iters steps every time).
    precondition_fn: optional precondition_fn(opt_state, params) -> P (e.g.
      lambda s, p: opt.preconditioner(s, p)); then the eigenvalues are those of
      P^{-1/2} H P^{-1/2} (preconditioned_sharpness) and the carried vectors are in its
      transformed coordinates.
    method: 'lanczos', 'lobpcg' or 'track'.
    cold_iters: if > 0, `init(params, batch)` solves once from a cold start with this many
      iterations (Hessian probes only; Lanczos for 'track'), so every in-loop call is warm
      and `num_iters` can be small (5-10; see top_eigenpairs on eigenvalue crossings): the
      cold solve is paid once, not at every step.
    guard: extra vectors tracked beyond k (method 'track' only).
    memory: the vectors and residuals of this many previous calls join the block (method
      'track' only; see _tracker).
    tol: with tol > 0 each measurement stops as soon as the largest relative residual of
      the top k is <= tol, up to num_iters iterations, and the metrics gain 'iterations'
      (the count made; a lax.while_loop, under vmap until every member is done). 'lanczos'
      (Hessian probes only): warm Lanczos steps (top_eigenpairs' tol); 'track': block
      iterations on the same Hessian. The residual is small between sudden changes of the
      Hessian (catapults), so extra iterations are paid where they are needed.

  Returns:
    Probe(init, apply); metrics {'eigenvalues': [k], 'residual': [k]} in the params' dtype.
  """
  from dynamics.train import Probe
  _check_count("every", every)
  if method not in ("lanczos", "lobpcg", "track"):
    raise ValueError(f"method={method!r} must be 'lanczos', 'lobpcg' or 'track'")
  cold = cold_iters and precondition_fn is None
  if not warm and method != "lanczos":
    raise ValueError(f"warm=False needs method='lanczos'; got method={method!r}")
  if tol and method == "lanczos" and precondition_fn is not None:
    raise ValueError(f"tol={tol!r} with method='lanczos' needs a Hessian probe "
                     "(precondition_fn=None)")
  if method == "track":
    init, measure = _tracker(loss_fn, k, guard, memory, precondition_fn,
                             cold_iters if cold else 0, tol, num_iters)
  else:
    def init(params, batch=None):
      vecs = jax.tree.map(lambda p: jnp.zeros((k,) + jnp.shape(p), jnp.result_type(p)),
                          params)
      if cold and batch is not None:
        e = top_eigenpairs(loss_fn, params, batch, k=k, num_iters=cold_iters,
                           key=jax.random.PRNGKey(0), method=method)
        vecs = jax.tree.map(lambda new, old: new.astype(old.dtype), e.eigenvectors, vecs)
      return {"vectors": vecs, "count": jnp.zeros((), jnp.int32)}

    def measure(pstate, params, opt_state, batch, key):
      kw = dict(k=k, num_iters=num_iters, v0=pstate["vectors"] if warm else None, key=key,
                method=method)
      if precondition_fn is None:
        e = top_eigenpairs(loss_fn, params, batch, tol=tol, **kw)
      else:
        e = preconditioned_sharpness(loss_fn, params, batch,
                                     precondition_fn(opt_state, params), **kw)
      vecs = jax.tree.map(lambda new, old: new.astype(old.dtype), e.eigenvectors,
                          pstate["vectors"])
      metrics = {"eigenvalues": e.eigenvalues, "residual": e.residuals}
      if tol > 0:
        metrics["iterations"] = e.num_matvecs.astype(e.eigenvalues.dtype)
      return {"vectors": vecs}, metrics

  def apply(pstate, params, opt_state, batch, key):
    if every == 1:
      carried, metrics = measure(pstate, params, opt_state, batch, key)
    else:
      shapes = jax.eval_shape(measure, pstate, params, opt_state, batch, key)[1]

      def skip(pstate, *_):
        return ({name: v for name, v in pstate.items() if name != "count"},
                jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), shapes))

      carried, metrics = jax.lax.cond(pstate["count"] % every == 0, measure, skip,
                                      pstate, params, opt_state, batch, key)
    return dict(carried, count=pstate["count"] + 1), metrics

  return Probe(init=init, apply=apply)


def _fill(k, n, dtype):
  """[k, n] fixed random unit rows (numpy, seed 0): the tracker's start without a cold solve
  and its stand-in for zero rows (track_step's `fill`)."""
  f = np.random.default_rng(0).standard_normal((k, n))
  return jnp.asarray(f / np.linalg.norm(f, axis=1, keepdims=True), dtype)


def _tracker(loss_fn, k, guard, memory, precondition_fn, cold_iters, tol, max_iters):
  """init and measure of sharpness_probe(method='track'); the state is {'track': Track} of
  flat [b, n] blocks (b = k + guard) in the flat params' dtype and, with memory m > 0,
  'memory' [2 m b, n]: the x and r of the last m calls (newest first; zero rows before there
  were m calls), passed to track_step as `extra`. Memory is what follows gradient descent at
  the edge of stability, where the parameters oscillate with period 2 along the top
  eigenvector, so the Hessian of step t is close to that of step t - 2 and far from that of
  t - 1: with m = 2 the block holds the Ritz vectors and residuals of both."""
  _check_count("guard", guard, lo=0)
  _check_count("memory", memory, lo=0)
  if not tol >= 0:
    raise ValueError(f"tol={tol!r} must be >= 0")
  b = k + guard

  def block_operator(params, batch, opt_state):
    P = None if precondition_fn is None else precondition_fn(opt_state, params)
    flat, _, mv = _flat_operator(loss_fn, params, batch, None, P=P)
    return flat, jax.vmap(mv)

  def init(params, batch=None):
    flat = ravel_pytree(params)[0]
    x = _fill(b, flat.shape[0], flat.dtype)
    r = jnp.zeros_like(x)
    if cold_iters and batch is not None:
      e = top_eigenpairs(loss_fn, params, batch, k=b, num_iters=cold_iters,
                         key=jax.random.PRNGKey(0))
      x = jax.vmap(lambda t: ravel_pytree(t)[0])(e.eigenvectors).astype(flat.dtype)
      x = x / jnp.sqrt(jnp.sum(x * x, axis=1, keepdims=True))
      ax = block_operator(params, batch, None)[1](x)
      lam = jnp.sum(x * ax, axis=1)
      r = ax - lam[:, None] * x
    state = {"track": Track(x, r, jnp.zeros_like(x)), "count": jnp.zeros((), jnp.int32)}
    if memory:
      state["memory"] = jnp.zeros((2 * memory * b, x.shape[1]), x.dtype)
    return state

  def measure(pstate, params, opt_state, batch, key):
    del key
    flat, block_mv = block_operator(params, batch, opt_state)
    state = pstate["track"]
    fill, extra = _fill(b, flat.shape[0], flat.dtype), pstate.get("memory")
    new, lam, res = track_step(block_mv, state, fill, extra)
    metrics = {}
    if tol > 0:
      def again(c):
        i, s, _, _ = c
        return (i + 1,) + track_step(block_mv, s, fill, extra)

      def unconverged(c):
        return (c[0] < max_iters) & (jnp.max(c[3][:k]) > tol)

      iters, new, lam, res = jax.lax.while_loop(unconverged, again,
                                                (jnp.int32(1), new, lam, res))
      metrics["iterations"] = iters.astype(lam.dtype)
    carried = {"track": Track(*(a.astype(old.dtype) for a, old in zip(new, state)))}
    if memory:
      past = pstate["memory"]
      carried["memory"] = jnp.concatenate([state.x, state.r, past[:past.shape[0] - 2 * b]])
    return carried, dict(metrics, eigenvalues=lam[:k], residual=res[:k])

  return init, measure


def spectrum(traj, step: int, member: int = 0, top_k: int = 20, num_iters: int = 80,
             num_starts: int = 8, trace_probes: int = 100) -> dict:
  """The Hessian of a run's training loss at a kept step: top-k eigenvalues (Lanczos), the
  stochastic-Lanczos-quadrature density and Hutchinson's trace, with SLQ's own trace
  estimate n * sum_i w_i theta_i per start (Ghorbani, Krishnan & Xiao 2019) to check it.

  Args:
    traj: an analysis.trajectory.Trajectory (its loss, batch and kept params are used).
    step: a kept step; member: the sweep member.
    top_k, num_iters, num_starts, trace_probes: sizes of the three estimates; the random
      draws are keyed by `step`.
  """
  loss_fn, batch, params = traj.loss_fn(), traj.batch(), traj.params(step, member)
  k_slq, k_tr = jax.random.split(jax.random.PRNGKey(step))

  @jax.jit
  def measure(p):
    e = top_eigenpairs(loss_fn, p, batch, k=top_k, num_iters=5 * top_k)
    d = spectral_density(loss_fn, p, batch, k_slq, num_iters=num_iters, num_starts=num_starts)
    tr = hutchinson_trace(loss_fn, p, batch, k_tr, num_probes=trace_probes)
    return e.eigenvalues, e.residuals, d, tr

  top, res, d, (tr, tr_se) = jax.device_get(measure(params))
  n = sum(jnp.size(x) for x in jax.tree.leaves(params))
  per_start = n * np.sum(d["nodes"] * d["weights"], axis=1)
  return dict(top=top, residuals=res, grid=d["grid"], density=d["density"],
              nodes=d["nodes"], slq_trace=float(per_start.mean()),
              slq_trace_se=float(per_start.std(ddof=1) / np.sqrt(per_start.size)),
              trace=float(tr), trace_se=float(tr_se), n=n)


def stability_factor(opt_cfg: Any) -> float:
  """The c with which the run's optimizer is stable on a quadratic iff lambda_max(P^-1 H) < c
  (2 for GD, 2 + 2 beta for heavy-ball, 38 for Adam at b1 = 0.9): see
  dynamics.optimizers.stability_factor. `opt_cfg` is a run's opt section (traj.config['opt'])."""
  from dynamics import optimizers
  return optimizers.stability_factor(opt_cfg)
