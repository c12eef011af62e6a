"""Central flows of GD, scalar RMSProp and RMSProp (Cohen, Damian, Talwalkar, Kolter, Lee,
"Understanding Optimization in Deep Learning with Central Flows", ICLR 2025; REFERENCE.md Sec. 2).

An optimizer is preconditioned GD, w <- w - P(nu)^{-1} g, with a state nu that follows
dnu/dt = c (E[g^2] - nu), c = (1 - b2) / b2 (analysis.flow_forms.FlowForm: GD has P = 1/eta and
no state). At the edge of stability it oscillates along the top eigenvectors of the effective
Hessian P^{-1/2} H P^{-1/2}, whose top eigenvalues sit at 2; on average it follows the central
flow. Time t counts optimizer steps. With u_i the k tracked unit eigenvectors of the effective
Hessian and v_i = P^{-1/2} u_i the weight-space directions (rows of V [k, n], so V P V^T = I),
the oscillation has covariance Sigma = V^T X V with X [k, k] >= 0, and

    dw/dt  = -P^{-1} [grad L + 0.5 grad_w <H(w), Sigma>]
    dnu/dt = c [grad L^2 + 4 P^2 diag(Sigma) - nu]      (scalar nu: ||grad L||^2 + 4 P^2 tr Sigma)

(E[g^2] = grad L^2 + diag(H Sigma H) with H v_i = 2 P v_i at the edge, so diag(H Sigma H) =
4 P^2 diag(Sigma); the paper's (4 nu / eta^2) diag(Sigma) when eps = 0). X solves, at every
substep of length dt, the semidefinite complementarity problem (analysis.central_flow_sdp) that
keeps the stability margin 2P - H on span(V) non-negative one substep ahead:

    A(X) = V (2P - H) V^T + dt V (2 dP/dt - dH/dt) V^T = A0 + B[X] >= 0,  X >= 0,  <X, A(X)> = 0.

With M = V H V^T (the tracked block of the effective Hessian), g_ij = grad_w(v_i^T H(w) v_j)
(third derivatives, by differentiating the Hessian-vector product with V held fixed),
dP/dt = a dnu/dt, a = dP/dnu = 1 / (2 eta sqrt(nu)), Q(d)_ij = sum_n v_in v_jn d_n:

    A0 = 2 I - M + dt [2 Q(a c (grad L^2 - nu)) + <g_ij, P^{-1} grad L>]
    B_ijlm = dt [2 sum_n a_n c 4 P_n^2 v_in v_jn v_ln v_mn + 0.5 <g_ij, P^{-1} g_lm>]

(scalar nu: the first term of B is 2 a c 4 P^2 (V V^T)_ij (V V^T)_lm). Both parts of B are Gram
tensors, so B is symmetric positive semi-definite and the problem is the convex QP
min_{X >= 0} 0.5 B[X, X] + <A0, X>. (Writing H v_i for 2 P v_i in E[g^2] is what keeps B
symmetric.) For GD (P = 1/eta, V = sqrt(eta) U) this is the GD flow of Sec. 3 with X scaled by
eta: Sigma = eta U X U^T.

Directions with effective eigenvalue M_ii below `threshold` (public code: 1.95) are inactive
and leave the problem: their rows and columns of A0 and B are zeroed and A0_ii is set to the
scale of the active block, so the problem splits into the active block and X = 0 on the rest
(and X is masked to exactly that). Raising A0_ii by a large constant instead would make the
solver's scale-relative tolerance meaningless for the active block (tested). k is fixed within
a call (a static shape); the log says when the smallest tracked effective eigenvalue is above
SATURATION (public code: add a direction when it is above 1.5), i.e. when k may be too small;
analysis.central_flow_processes.run_processes(..., k_max=) adds directions on that signal.

Predictions logged beside the real run: the time-averaged loss L + tr(X) (= L + 0.5 <H, Sigma>
with M = 2 I on the active block; the paper's L + tr(Sigma)/eta for GD), the time-averaged
squared gradient norm ||grad L||^2 + tr(H Sigma H), and the effective learning rate
eta / (sqrt(nu) + eps) (for RMSProp 1 / mean(P), the harmonic mean over coordinates, which
coordinates that never see a gradient, where eta / eps is huge, do not dominate).

Everything works on flat parameter vectors (jax.flatten_util.ravel_pytree) in the params'
dtype; float64 is recommended (the flow differentiates three times).
"""
import math
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from analysis import curvature
from analysis.central_flow_sdp import solve_psd_lcp
from analysis.flow_forms import FlowForm, flow_form

_HI = jax.lax.Precision.HIGHEST
THRESHOLD = 1.95          # effective eigenvalue above which a direction is active
SATURATION = 1.5          # smallest tracked effective eigenvalue above which k may be too small
METHODS = ("euler", "heun")
EIG_METHODS = ("lanczos", "lobpcg")


def gd_form(eta: float) -> FlowForm:
  """The FlowForm of GD at learning rate eta (flow_form of that `opt` section)."""
  return flow_form(dict(name="gd", learning_rate=float(eta)))


class Terms(NamedTuple):
  """The central-flow terms at (w, V): shapes for k tracked directions and n parameters."""
  loss: jax.Array        # scalar
  grad: jax.Array        # [n]
  M: jax.Array           # [k, k], V H V^T
  g: jax.Array           # [k, k, n], g_ij = grad_w (v_i^T H(w) v_j)
  HV: jax.Array          # [k, n], H v_i


def terms(loss_fn: Callable, params: Any, batch: Any, V_kxn: jax.Array,
          third: bool = True) -> Terms:
  """Loss, gradient, M = V H V^T, its third-derivative gradient g and H V at params.

  g_ij = D^3 L(w)[v_i, v_j, .] is symmetric in (i, j), so only the k (k + 1) / 2 pairs i <= j
  are computed, each as a forward derivative along v_i of the Hessian-vector product along v_j
  (forward over forward over reverse), whose primal output is H v_j: the diagonal pairs give HV.
  (Reverse-differentiating M = V H(w) V^T instead costs k^2 backward passes through k HVPs
  each, 2.7x the FLOPs and 9x the time at k = 3, 14x the time at k = 6, on a small MLP on CPU.)
  third=False leaves g at zero (the stable flow needs no third derivatives).
  """
  flat, unravel = ravel_pytree(params)
  f = lambda x: loss_fn(unravel(x), batch)
  grad_f = jax.grad(f)
  k = V_kxn.shape[0]

  def hvp(x, v):           # H(x) v, forward over reverse
    return jax.jvp(grad_f, (x,), (v,))[1]

  loss, grad = jax.value_and_grad(f)(flat)
  if third:
    iu, ju = np.triu_indices(k)

    def pair(vi, vj):      # (H v_j, D^3 L[v_i, v_j, .])
      return jax.jvp(lambda x: hvp(x, vj), (flat,), (vi,))

    hv_pairs, g_pairs = jax.vmap(pair)(V_kxn[iu], V_kxn[ju])
    HV = hv_pairs[iu == ju]                      # the pairs (j, j), in order of j
    g = jnp.zeros((k, k, flat.size), flat.dtype).at[iu, ju].set(g_pairs).at[ju, iu].set(g_pairs)
  else:
    HV = jax.vmap(lambda v: hvp(flat, v))(V_kxn)
    g = jnp.zeros((k, k, flat.size), flat.dtype)
  return Terms(loss, grad, jnp.matmul(V_kxn, HV.T, precision=_HI), g, HV)


def _quad(V, d):
  """Q(d)_ij = sum_n v_in v_jn d_n; d a scalar or [n]."""
  if jnp.ndim(d) == 0:
    return d * jnp.matmul(V, V.T, precision=_HI)
  return jnp.einsum("in,jn,n->ij", V, V, d, precision=_HI)


def _grad_sq(form: FlowForm, grad):
  """grad L^2 per coordinate ([n], rmsprop) or ||grad L||^2 (scalar state)."""
  return jnp.sum(grad ** 2) if form.scalar else grad ** 2


def _lead(d, ndim):
  """A scalar as is, or [n] as [1, ..., 1, n] with `ndim` axes (explicit broadcasting)."""
  return d if jnp.ndim(d) == 0 else d.reshape((1,) * (ndim - 1) + (-1,))


def scale_rows(U_kxn, d):
  """U with every row multiplied by d (a scalar or [n]); V = scale_rows(U, P^{-1/2})."""
  return U_kxn * _lead(d, 2)


def sdcp_inputs(t: Terms, V: jax.Array, form: FlowForm, nu: jax.Array, dt: float,
                threshold: float = THRESHOLD):
  """(A0 [k, k], B [k, k, k, k], active [k]) of the complementarity problem (module docstring).

  Inactive directions (M_ii < threshold) are decoupled: zero rows and columns of A0 and B
  but A0_ii = ||active block of A0||_F (1 if that is 0), so X = 0 on them.
  """
  k = t.M.shape[0]
  p, a = form.p(nu), form.dp_dnu(nu)
  c = 0.0 if form.name == "gd" else (1 - form.b2) / form.b2      # of dnu/dt = c (E[g^2] - nu)
  pinv = 1 / p
  A0 = (2 * jnp.eye(k, dtype=t.M.dtype) - t.M
        + dt * (2 * _quad(V, a * c * (_grad_sq(form, t.grad) - nu))
                + jnp.einsum("ijn,n->ij", t.g, pinv * t.grad, precision=_HI)))
  B = 0.5 * dt * jnp.einsum("ijn,lmn->ijlm", t.g, t.g * _lead(pinv, 3), precision=_HI)
  if form.name != "gd":   # the state's response: more oscillation -> larger nu -> larger P
    w = a * c * 4 * p ** 2
    if form.scalar:
      G = jnp.matmul(V, V.T, precision=_HI)
      B = B + 2 * dt * w * jnp.einsum("ij,lm->ijlm", G, G)
    else:
      Z = V[:, None, :] * V[None, :, :] * _lead(jnp.sqrt(w), 3)      # [k, k, n]
      B = B + 2 * dt * jnp.einsum("ijn,lmn->ijlm", Z, Z, precision=_HI)
  active = jnp.diagonal(t.M) >= threshold
  m = active.astype(A0.dtype)
  mm = m[:, None] * m[None, :]
  A0 = 0.5 * (A0 + A0.T) * mm
  scale = jnp.sqrt(jnp.sum(A0 * A0))
  A0 = A0 + jnp.diag((1 - m) * jnp.where(scale > 0, scale, 1.0))
  B = B * mm[:, :, None, None] * mm[None, None, :, :]
  return A0, B, active


def rates(t: Terms, V: jax.Array, form: FlowForm, nu: jax.Array, X: jax.Array):
  """(dw/dt [n], dnu/dt) of the central flow with oscillation covariance V^T X V."""
  p = form.p(nu)
  dw = -(t.grad + 0.5 * jnp.einsum("lm,lmn->n", X, t.g, precision=_HI)) / p
  sigma = jnp.einsum("lm,ln,mn->n", X, V, V, precision=_HI)      # diag(Sigma)
  sq = _grad_sq(form, t.grad) + 4 * (jnp.sum(p ** 2 * sigma) if form.scalar
                                     else p ** 2 * sigma)
  return dw, form.dstate(nu, sq)


def effective_eigenvectors(loss_fn: Callable, params: Any, batch: Any, form: FlowForm,
                           nu: jax.Array, k: int, num_iters: int,
                           U_old: Optional[jax.Array] = None, eig_method: str = "lanczos"):
  """U [k, n] (flat, orthonormal): the top-k eigenvectors of the effective Hessian
  P(nu)^{-1/2} H P(nu)^{-1/2} at params; with U_old, warm-started from it and sign-aligned
  with it (<u_i, u_old_i> >= 0). The weight-space directions are scale_rows(U, P^{-1/2})."""
  flat, unravel = ravel_pytree(params)
  p_tree = unravel(jnp.broadcast_to(form.p(jnp.asarray(nu)), flat.shape))
  v0 = None if U_old is None else jax.vmap(unravel)(U_old)
  e = curvature.preconditioned_sharpness(loss_fn, params, batch, p_tree, k=k,
                                         num_iters=num_iters, v0=v0, method=eig_method)
  U = jax.vmap(lambda t: ravel_pytree(t)[0])(e.eigenvectors).astype(flat.dtype)
  if U_old is None:
    return U
  sign = jnp.where(jnp.sum(U * U_old, axis=1) < 0, -1.0, 1.0).astype(U.dtype)
  return U * sign[:, None]


class Step(NamedTuple):
  """One logged central-flow step (the state at its start)."""
  loss: jax.Array              # L(w)
  predicted_loss: jax.Array    # L(w) + tr(X): the predicted time-averaged loss
  predicted_grad_sq: jax.Array  # ||grad L||^2 + tr(H Sigma H)
  sharpness: jax.Array         # top tracked EFFECTIVE eigenvalue (GD: eta * S), vs 2
  eigenvalues: jax.Array       # [k] tracked effective eigenvalues (diagonal of M)
  effective_lr: jax.Array      # 1 / mean(P): eta / (sqrt(nu) + eps), harmonic mean (GD: eta)
  X: jax.Array                 # [k, k]
  num_active: jax.Array        # int
  saturated: jax.Array         # bool: smallest tracked eigenvalue >= SATURATION


def central_flow(loss_fn: Callable, params: Any, batch: Any, form: FlowForm, num_steps: int,
                 nu0: Optional[jax.Array] = None, k: int = 3, substeps: int = 4,
                 lanczos_iters: int = 20, threshold: float = THRESHOLD,
                 method: str = "euler", eig_method: str = "lanczos"):
  """Integrates the central flow of `form` for num_steps optimizer steps of time 1 each.

  Each step: the top-k eigenvectors of the effective Hessian P^{-1/2} H P^{-1/2} are refreshed
  by Lanczos warm-started from the previous ones (lanczos_iters iterations; a cold
  3 x lanczos_iters solve at the start) and sign-aligned with them; then `substeps` substeps
  of dt = 1/substeps, each solving the complementarity problem (warm-started from the previous
  X). method='euler' (the public code's) or 'heun' (second order: two solves per substep).
  jit-compatible (lax.scan).

  threshold is a Python float (static); float('inf') integrates the stable flow (X = 0, no
  third derivatives; for RMSProp nu still follows c (grad L^2 - nu)) with the same logging.

  Args:
    loss_fn: loss_fn(params, batch) -> scalar.
    params: pytree (its dtype is the computation's).
    batch: passed to loss_fn.
    form: analysis.flow_forms.FlowForm (flow_form(opt_cfg), or gd_form(eta)).
    num_steps: optimizer steps (static).
    nu0: the state at the start (scalar or [n] flat); default form.init_state(grad L).
    k: tracked directions; substeps, lanczos_iters: see above.
    threshold: effective eigenvalue above which a direction is active.
    method: 'euler' or 'heun'.
    eig_method: 'lanczos' or 'lobpcg' (a block method, as the public code's: better when
      several effective eigenvalues cluster at 2; lanczos_iters is then its iteration cap).

  Returns:
    (params at the end, nu at the end, Step with a leading [num_steps] axis).
  """
  for name, value, allowed in (("method", method, METHODS),
                               ("eig_method", eig_method, EIG_METHODS)):
    if value not in allowed:
      raise ValueError(f"{name}={value!r} is not allowed; allowed: {', '.join(allowed)}")
  flat0, unravel = ravel_pytree(params)
  if nu0 is None:
    nu0 = form.init_state(jax.grad(lambda x: loss_fn(unravel(x), batch))(flat0))
  nu0 = jnp.asarray(nu0, flat0.dtype)
  dt = 1.0 / substeps
  stable = not math.isfinite(threshold)

  def eig(flat, nu, U_old, iters):
    return effective_eigenvectors(loss_fn, unravel(flat), batch, form, nu, k, iters, U_old,
                                  eig_method)

  def stage(flat, nu, U, X):
    """Rates, the solved X and the log at (flat, nu) with U held fixed."""
    V = scale_rows(U, form.p(nu) ** -0.5)         # v_i = P^{-1/2} u_i
    t = terms(loss_fn, unravel(flat), batch, V, third=not stable)
    if stable:
      X, active = jnp.zeros_like(X), jnp.zeros((k,), bool)
    else:
      A0, B, active = sdcp_inputs(t, V, form, nu, dt, threshold)
      mm = (active[:, None] & active[None, :]).astype(X.dtype)
      X, _ = solve_psd_lcp(A0, B, X_init=X * mm)
      X = X * mm
    dw, dnu = rates(t, V, form, nu, X)
    eigs = jnp.diagonal(t.M)
    # only the small log leaves the scan (never g [k, k, n] per substep)
    log = Step(loss=t.loss, predicted_loss=t.loss + jnp.trace(X),
               predicted_grad_sq=jnp.sum(t.grad ** 2)
               + jnp.sum(X * jnp.matmul(t.HV, t.HV.T, precision=_HI)),
               sharpness=t.M[0, 0], eigenvalues=eigs,
               effective_lr=1 / jnp.mean(form.p(nu)), X=X,
               num_active=jnp.sum(active.astype(jnp.int32)), saturated=eigs[-1] >= SATURATION)
    return dw, dnu, X, log

  def substep(carry, _):
    flat, nu, U, X = carry
    dw, dnu, X, log = stage(flat, nu, U, X)
    if method == "heun":
      dw2, dnu2, X, _ = stage(flat + dt * dw, nu + dt * dnu, U, X)
      dw, dnu = 0.5 * (dw + dw2), 0.5 * (dnu + dnu2)
    return (flat + dt * dw, nu + dt * dnu, U, X), log

  def step(carry, _):
    flat, nu, U_old, X = carry
    U = eig(flat, nu, U_old, lanczos_iters)
    # carry X into the new basis (eigenvectors may swap order): X <- R X R^T, R = U U_old^T;
    # only the solver's warm start, the solution itself is unique
    R = jnp.matmul(U, U_old.T, precision=_HI)
    X = jnp.matmul(jnp.matmul(R, X, precision=_HI), R.T, precision=_HI)
    carry, log = substep((flat, nu, U, X), None)   # the step's log is its first substep's
    # the other substeps log nothing, so XLA drops what only the log reads (for the stable
    # flow every Hessian-vector product but the first substep's)
    carry, _ = jax.lax.scan(lambda c, _: (substep(c, None)[0], None), carry, None,
                            length=substeps - 1)
    return carry, log

  U0 = eig(flat0, nu0, None, 3 * lanczos_iters)
  X0 = jnp.zeros((k, k), flat0.dtype)
  (flat, nu, _, _), logs = jax.lax.scan(step, (flat0, nu0, U0, X0), None, length=num_steps)
  return unravel(flat), nu, logs


def gd_central_flow(loss_fn: Callable, params: Any, batch: Any, eta: float, num_steps: int,
                    **kw):
  """GD's central flow: central_flow(..., gd_form(eta), ...) without the (unused) state.

  Returns (params at the end, Step with a leading [num_steps] axis); Step.sharpness is the
  effective sharpness eta * S (2 at the edge of stability).
  """
  out, _, logs = central_flow(loss_fn, params, batch, gd_form(eta), num_steps, **kw)
  return out, logs
