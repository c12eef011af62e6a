"""The central flow of gradient descent (Cohen, Damian, Talwalkar, Kolter, Lee, "Understanding
Optimization in Deep Learning with Central Flows", ICLR 2025; REFERENCE.md Sec. 2).

GD at the edge of stability oscillates along the top Hessian eigenvectors; on average it follows
the central flow (time t in optimizer steps, U the k tracked eigenvectors, orthonormal)

    dw/dt = -eta [grad L(w) + 0.5 grad_w <H(w), Sigma>],     Sigma = U X U^T,   X >= 0,

where X solves, every Euler substep of length dt, the semidefinite complementarity problem
(analysis.central_flow_sdp) that keeps the tracked block of the Hessian at the stability limit
one substep ahead:

    A(X) = 2/eta I - U^T H(w + dt dw/dt) U  (linearized in dt)  >= 0,   X >= 0,   <X, A(X)> = 0.

With M(w) = U^T H(w) U [k, k] and its gradient g_ij = grad_w (u_i^T H(w) u_j) (a third
derivative, by differentiating the Hessian-vector product with U held fixed):

    A(X) = A0 + B[X],   A0_ij = 2/eta d_ij - M_ij + dt eta <g_ij, grad L>,
                        B_ijlm = (dt eta / 2) <g_ij, g_lm>      (a Gram tensor: PSD),
    dw/dt = -eta [grad L + 0.5 sum_lm X_lm g_lm].

Directions whose eigenvalue is below `threshold`/eta (public code: effective eigenvalue 1.95
for "at the edge") are inactive: their row of A0 is raised so far that complementarity forces
X to zero there. Predictions logged beside the real run: time-averaged loss L(w) + tr(X)/eta
(oscillation of variance X along U with curvature 2/eta) and time-averaged squared gradient
norm ||grad L||^2 + sum_i X_ii ||H u_i||^2.

Everything works on flat parameter vectors (jax.flatten_util.ravel_pytree) and computes in
the params' dtype; float64 is recommended (the flow differentiates three times).
"""
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from analysis import curvature
from analysis.central_flow_sdp import solve_psd_lcp

_HI = jax.lax.Precision.HIGHEST
THRESHOLD = 1.95          # effective eigenvalue (eta * lambda) above which a direction is active
_INACTIVE = 1e6           # added to A0_ii of an inactive direction (times 2/eta)


class Terms(NamedTuple):
  """The central-flow terms at (w, U): shapes for k tracked directions and n parameters."""
  loss: jax.Array        # scalar
  grad: jax.Array        # [n]
  M: jax.Array           # [k, k], U^T H U
  g: jax.Array           # [k, k, n], g_ij = grad_w (u_i^T H(w) u_j)
  HU: jax.Array          # [k, n], H u_i


def terms(loss_fn: Callable, params: Any, batch: Any, U_kxn: jax.Array,
          third: bool = True) -> Terms:
  """Loss, gradient, M = U^T H U, its third-derivative gradient g and H U at params.

  third=False leaves g at zero (the stable flow needs no third derivatives).
  """
  flat, unravel = ravel_pytree(params)
  f = lambda x: loss_fn(unravel(x), batch)

  def hu(x):               # [k, n]: H(x) u_i for every tracked u_i (forward over reverse)
    return jax.vmap(lambda u: jax.jvp(jax.grad(f), (x,), (u,))[1])(U_kxn)

  def m(x):                # [k, k]: U^T H(x) U with U held fixed
    return jnp.matmul(U_kxn, hu(x).T, precision=_HI)

  loss, grad = jax.value_and_grad(f)(flat)
  HU = hu(flat)
  k = U_kxn.shape[0]
  g = jax.jacrev(m)(flat) if third else jnp.zeros((k, k, flat.size), flat.dtype)  # [k, k, n]
  return Terms(loss, grad, jnp.matmul(U_kxn, HU.T, precision=_HI), g, HU)


def sdcp_inputs(t: Terms, eta: float, dt: float, threshold: float = THRESHOLD):
  """(A0 [k, k], B [k, k, k, k], active [k]) of the complementarity problem (module docstring)."""
  k = t.M.shape[0]
  eye = jnp.eye(k, dtype=t.M.dtype)
  A0 = 2 / eta * eye - t.M + dt * eta * jnp.einsum("ijn,n->ij", t.g, t.grad, precision=_HI)
  B = 0.5 * dt * eta * jnp.einsum("ijn,lmn->ijlm", t.g, t.g, precision=_HI)
  active = eta * jnp.diagonal(t.M) >= threshold
  A0 = A0 + jnp.diag(jnp.where(active, 0.0, _INACTIVE * 2 / eta)).astype(A0.dtype)
  return 0.5 * (A0 + A0.T), B, active


def velocity(t: Terms, X: jax.Array, eta: float) -> jax.Array:
  """dw/dt = -eta [grad L + 0.5 sum_lm X_lm g_lm] (flat, [n])."""
  return -eta * (t.grad + 0.5 * jnp.einsum("lm,lmn->n", X, t.g, precision=_HI))


class Step(NamedTuple):
  """One logged central-flow step."""
  loss: jax.Array              # L(w)
  predicted_loss: jax.Array    # L(w) + tr(X)/eta: the predicted time-averaged loss
  predicted_grad_sq: jax.Array  # ||grad L||^2 + sum_i X_ii ||H u_i||^2
  sharpness: jax.Array         # top tracked eigenvalue (Rayleigh quotient of u_0)
  eigenvalues: jax.Array       # [k] tracked eigenvalues (diagonal of M)
  X: jax.Array                 # [k, k]
  num_active: jax.Array        # int


def gd_central_flow(loss_fn: Callable, params: Any, batch: Any, eta: float, num_steps: int,
                    k: int = 3, substeps: int = 4, lanczos_iters: int = 20,
                    threshold: float = THRESHOLD):
  """Integrates GD's central flow for num_steps optimizer steps of time 1 each.

  Each step: the top-k Hessian eigenvectors are refreshed by Lanczos warm-started from the
  previous ones (lanczos_iters iterations; a cold 3 x lanczos_iters solve at the start), then
  `substeps` Euler substeps of dt = 1/substeps, each solving the complementarity problem
  (warm-started from the previous X). jit-compatible (lax.scan).

  threshold is a Python float (static); float('inf') integrates the stable (gradient) flow
  with the same substeps and logging (X = 0 throughout).

  Returns:
    (params at the end, Step with a leading [num_steps] axis; entry s describes the state at
    the start of step s).
  """
  flat0, unravel = ravel_pytree(params)
  dt = 1.0 / substeps
  # threshold=inf: no direction can be active, X = 0: the stable (gradient) flow, for which
  # the third derivatives are skipped
  stable = not math.isfinite(threshold)

  def eig(flat, v0, iters):
    e = curvature.top_eigenpairs(loss_fn, unravel(flat), batch, k=k, num_iters=iters, v0=v0)
    return jax.vmap(lambda t: ravel_pytree(t)[0])(e.eigenvectors).astype(flat.dtype)

  U0 = eig(flat0, None, 3 * lanczos_iters)

  def substep(carry, _):
    flat, U, X = carry
    t = terms(loss_fn, unravel(flat), batch, U, third=stable is False)
    A0, B, active = sdcp_inputs(t, eta, dt, threshold)
    X, _ = solve_psd_lcp(A0, B, X_init=X)
    # only the small log leaves the scan (never g [k, k, n] per substep)
    log = Step(loss=t.loss, predicted_loss=t.loss + jnp.trace(X) / eta,
               predicted_grad_sq=jnp.sum(t.grad ** 2)
               + jnp.sum(jnp.diagonal(X) * jnp.sum(t.HU ** 2, axis=1)),
               sharpness=t.M[0, 0], eigenvalues=jnp.diagonal(t.M), X=X,
               num_active=jnp.sum(active.astype(jnp.int32)))
    return (flat + dt * velocity(t, X, eta), U, X), log

  def step(carry, _):
    flat, U_old, X = carry
    U = eig(flat, _as_tree(U_old, unravel), lanczos_iters)
    # carry X into the new basis (eigenvectors may swap order or sign): X <- R X R^T with
    # R = U U_old^T; only the solver's warm start, the solution itself is unique
    R = jnp.matmul(U, U_old.T, precision=_HI)
    X = jnp.matmul(jnp.matmul(R, X, precision=_HI), R.T, precision=_HI)
    (flat, U, X), logs = jax.lax.scan(substep, (flat, U, X), None, length=substeps)
    return (flat, U, X), jax.tree.map(lambda a: a[0], logs)   # the step's first substep

  X0 = jnp.zeros((k, k), flat0.dtype)
  (flat, _, _), logs = jax.lax.scan(step, (flat0, U0, X0), None, length=num_steps)
  return unravel(flat), logs


def _as_tree(U_kxn, unravel):
  """[k, n] flat vectors as a params-shaped pytree with a leading [k] axis (Lanczos warm start)."""
  return jax.vmap(unravel)(U_kxn)
