"""Closed forms for linear networks and matrix factorization, in the engine's units.

Units. The engine's loss is L = (1/N) sum_i 0.5 ||f(x_i) - y_i||^2 and its time is
t = step x learning rate (GD's step k is the gradient flow dw/dt = -grad L at time k * eta,
dynamics/flow.py). Every formula below is derived for that L and that t, in float64 numpy.

1. Deep linear networks (Saxe, McClelland, Ganguli 2014). Column convention W_total [out, in]
   (deep_linear's row-convention end_to_end(params) is its transpose). With
   Sigma_xx = (1/N) X^T X and Sigma_yx = (1/N) Y^T X,
       L = 0.5 tr(W Sigma_xx W^T) - tr(W Sigma_yx^T) + const,  dL/dW = W Sigma_xx - Sigma_yx,
   so with whitened inputs (Sigma_xx = I) the gradient is W - Sigma_yx, Saxe's equations hold
   with tau = 1 in our time, and the mode strengths u_i = U_i^T W_total V_i of the teacher's
   SVD Sigma_yx = U diag(s) V^T evolve independently from a decoupled balanced start.
2. Incremental learning in symmetric matrix sensing (Jin et al. 2023).
3. Over-parameterised symmetric matrix sensing (Xiong et al. 2023): exp vs T^-2 convergence.
"""
import math
from typing import Optional, Sequence, Union

import numpy as np

ArrayLike = Union[float, Sequence[float], np.ndarray]


# ---- checks ----------------------------------------------------------------------------------

def _positive(name: str, x: ArrayLike) -> np.ndarray:
  x = np.asarray(x, dtype=np.float64)
  if x.size == 0 or not np.all(np.isfinite(x)) or np.any(x <= 0):
    raise ValueError(f"{name}={x!r} is not allowed; it must be finite and > 0")
  return x


def _depth(depth) -> int:
  if isinstance(depth, bool) or not float(depth).is_integer() or depth < 1:
    raise ValueError(f"depth={depth!r} is not allowed; it must be an integer >= 1")
  return int(depth)


def _modes(s: ArrayLike, u0: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
  """(s [k], u0 [k]) as float64: s >= 0 the teacher's singular values, u0 > 0 (broadcast)."""
  s = np.atleast_1d(np.asarray(s, dtype=np.float64))
  if s.ndim != 1 or not np.all(np.isfinite(s)) or np.any(s < 0):
    raise ValueError(f"s={s!r} is not allowed; it must be a vector of finite values >= 0")
  u0 = np.atleast_1d(_positive("u0", u0))
  if u0.shape not in ((1,), s.shape):
    raise ValueError(f"u0 has shape {u0.shape}; it must be a scalar or match s {s.shape}")
  return s, np.broadcast_to(u0, s.shape).copy()


def _times(t: ArrayLike) -> np.ndarray:
  t = np.atleast_1d(np.asarray(t, dtype=np.float64))
  if t.ndim != 1 or not np.all(np.isfinite(t)) or np.any(t < 0) or np.any(np.diff(t) < 0):
    raise ValueError(f"t={t!r} is not allowed; it must be a non-decreasing vector of times "
                     f">= 0")
  return t


def _orthonormal_columns(name: str, q: np.ndarray, tol: float = 1e-8) -> np.ndarray:
  q = np.asarray(q, dtype=np.float64)
  if q.ndim != 2 or np.abs(q.T @ q - np.eye(q.shape[1])).max() > tol:
    raise ValueError(f"{name} must be a matrix with orthonormal columns ({name}^T {name} = I)")
  return q


# ---- 1. Saxe et al. 2014: deep linear networks ------------------------------------------------

def input_output_svd(x: np.ndarray, y: np.ndarray, atol: float = 1e-6):
  """The teacher's SVD Sigma_yx = (1/N) Y^T X = U diag(s) V^T, refusing non-whitened inputs.

  Saxe's mode equations need Sigma_xx = (1/N) X^T X = I: otherwise dL/dW = W Sigma_xx - Sigma_yx
  couples the modes. Inputs whose Sigma_xx is singular cannot be whitened at all (N < in_dim or
  collinear features); whitened ones (linear_teacher with whiten=True) pass.

  Args:
    x: inputs [N, in_dim]; y: targets [N, out_dim].
    atol: the largest allowed |Sigma_xx - I| entry.

  Returns:
    (U [out_dim, k], s [k] descending, V [in_dim, k]), k = min(in_dim, out_dim).
  """
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  x = x.reshape(x.shape[0], -1)
  y = y.reshape(y.shape[0], -1)
  if y.shape[0] != x.shape[0]:
    raise ValueError(f"x has {x.shape[0]} examples and y {y.shape[0]}; they must match")
  n, d = x.shape
  sxx = x.T @ x / n
  rank = np.linalg.matrix_rank(sxx)
  if rank < d:
    raise ValueError(f"x cannot be whitened: Sigma_xx = X^T X / N has rank {rank} < in_dim "
                     f"{d} (N = {n}); Saxe's solutions need Sigma_xx = I")
  err = np.abs(sxx - np.eye(d)).max()
  if err > atol:
    raise ValueError(f"x is not whitened: max |Sigma_xx - I| = {err:.3g} > atol = {atol:g}; "
                     f"Saxe's solutions need Sigma_xx = I (whiten the inputs, e.g. "
                     f"linear_teacher with whiten=True)")
  u, s, vt = np.linalg.svd(y.T @ x / n, full_matrices=False)
  return u, s, vt.T


def mode_strengths(w_total: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """u_i = U_i^T W_total V_i: the network's strength on each teacher mode (Saxe et al. 2014).

  Args:
    w_total: the end-to-end map [out, in] in column convention (for deep_linear params:
      end_to_end(params).T); a leading batch axis [T, out, in] is allowed.
    u: the teacher's left singular vectors [out, k]; v: its right ones [in, k].

  Returns:
    [k] (or [T, k]): diag(U^T W_total V).
  """
  w = np.asarray(w_total, np.float64)
  u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
  if w.shape[-2:] != (u.shape[0], v.shape[0]) or u.shape[1] != v.shape[1]:
    raise ValueError(f"W_total {w.shape} must be [out, in] with U [out, k] {u.shape} and V "
                     f"[in, k] {v.shape}")
  return np.einsum("ok,...oi,ik->...k", u, w, v)


def saxe_curve(s: ArrayLike, u0: ArrayLike, t: ArrayLike) -> np.ndarray:
  """Mode strengths u_i(t) of a depth-2 linear network from a small balanced decoupled start.

  Derivation (our units). W = W2 W1 with W1 = Q diag(b1) V^T, W2 = U diag(b2) Q^T (Q with
  orthonormal columns). With Sigma_xx = I the flow dW1/dt = W2^T (Sigma_yx - W2 W1),
  dW2/dt = (Sigma_yx - W2 W1) W1^T keeps this form, with per mode db1/dt = b2 (s - b1 b2),
  db2/dt = b1 (s - b1 b2). For u = b1 b2 and b1 = b2 (balanced, conserved):
      du/dt = (b1^2 + b2^2)(s - u) = 2 u (s - u),
  Saxe's tau du/dt = 2u(s - u) with tau = 1 here (tau = 1/learning rate in steps). Solution
      u(t) = s e^{2st} / (e^{2st} - 1 + s/u0) = u0 / (e^{-2st} + u0 (1 - e^{-2st}) / s),
  evaluated in the second form (no overflow; s = 0 gives its limit u0 / (1 + 2 u0 t)).

  Args:
    s: singular values [k] (>= 0); u0: initial strengths (> 0), scalar or [k]; t: times [T].

  Returns:
    [T, k].
  """
  s, u0 = _modes(s, u0)
  t = _times(t)
  st = 2.0 * t[:, None] * s[None, :]
  decay = np.exp(-st)
  # (1 - e^{-2st}) / s, with its s -> 0 limit 2t
  safe_s = np.where(s > 0, s, 1.0)
  phi = np.where(s[None, :] > 0, -np.expm1(-st) / safe_s[None, :], 2.0 * t[:, None])
  return u0[None, :] / (decay + u0[None, :] * phi)


def learning_time(s: ArrayLike, u0: ArrayLike, uf: ArrayLike) -> np.ndarray:
  """Time for a depth-2 mode to grow from u0 to uf: t = (1/2s) ln[uf (s - u0) / (u0 (s - uf))].

  From saxe_curve (tau = 1: our time t = step x learning rate; in steps divide by the learning
  rate). Requires 0 < u0 < uf < s per mode.
  """
  s, u0, uf = (np.asarray(a, np.float64) for a in (s, u0, uf))
  _check_rise(s, u0, uf)
  return np.log(uf * (s - u0) / (u0 * (s - uf))) / (2.0 * s)


def _check_rise(s, u0, uf) -> None:
  if np.any(u0 <= 0) or not np.all(np.isfinite(u0)):
    raise ValueError(f"u0={u0!r} is not allowed; it must be > 0")
  if np.any(uf <= u0) or np.any(uf >= s):
    raise ValueError(f"uf={uf!r} is not allowed; it must lie strictly between u0={u0!r} and "
                     f"s={s!r} (a learning time is for a rising mode, 0 < u0 < uf < s)")


def mode_rate(u: ArrayLike, s: ArrayLike, depth: int) -> np.ndarray:
  """du/dt = N u^{2 - 2/N} (s - u): a mode of a depth-N balanced decoupled linear network.

  Derivation (our units, Sigma_xx = I). W = W_N ... W_1 with W_l = R_{l+1} diag(b_l) R_l^T,
  R_1 = V, R_{N+1} = U, the hidden R_l with orthonormal columns. Per mode
  db_l/dt = (prod_{m != l} b_m)(s - u), u = prod_l b_l, so
      du/dt = sum_l (prod_{m != l} b_m)^2 (s - u) = N u^{2 - 2/N} (s - u)
  when all b_l = u^{1/N} (balancedness b_l^2 - b_m^2 is conserved). N = 2 is Saxe's 2u(s - u);
  N = 1 (linear regression) is s - u.
  """
  n = _depth(depth)
  u = np.asarray(u, np.float64)
  return n * u ** (2.0 - 2.0 / n) * (np.asarray(s, np.float64) - u)


def deep_mode_curve(s: ArrayLike, u0: ArrayLike, t: ArrayLike, depth: int,
                    max_dt: Optional[float] = None) -> np.ndarray:
  """u_i(t) of a depth-N balanced decoupled linear network, by RK4 in float64.

  Integrates z = ln u, dz/dt = N u^{1 - 2/N} (s - u) (mode_rate / u: u stays > 0 and the small-u
  phase is resolved in relative terms; depth 1 integrates u itself). Closed forms exist for
  N = 1 (u = s + (u0 - s) e^{-t}) and N = 2 (saxe_curve); for N >= 3 the time t(u) is an
  incomplete Beta (hypergeometric) function of u with no closed-form inverse, hence the solver.

  Args:
    s: singular values [k]; u0: initial strengths, scalar or [k]; t: non-decreasing times [T].
    depth: N >= 1.
    max_dt: the largest RK4 step; default 0.01 / (N max(s, u0)^{2 - 2/N}), about 1/100 of the
      fastest local time scale (the linearisation at u = s).

  Returns:
    [T, k].
  """
  n = _depth(depth)
  s, u0 = _modes(s, u0)
  t = _times(t)
  if max_dt is None:
    top = max(float(np.max(s)), float(np.max(u0)))
    max_dt = 0.01 / (n * top ** (2.0 - 2.0 / n))
  max_dt = float(_positive("max_dt", max_dt))

  if n == 1:                       # du/dt = s - u is linear in u; in ln u it would be stiff
    rate, to_state, to_u = (lambda z: s - z), (lambda u: u), (lambda z: z)
  else:
    rate = lambda z: n * np.exp(z) ** (1.0 - 2.0 / n) * (s - np.exp(z))
    to_state, to_u = np.log, np.exp

  z, now, out = to_state(u0), 0.0, np.empty((t.size, s.size))
  for i, target in enumerate(t):
    steps = math.ceil((target - now) / max_dt) if target > now else 0
    h = (target - now) / steps if steps else 0.0
    for _ in range(steps):
      k1 = rate(z)
      k2 = rate(z + 0.5 * h * k1)
      k3 = rate(z + 0.5 * h * k2)
      k4 = rate(z + h * k3)
      z = z + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
    now = float(target)
    out[i] = to_u(z)
  return out


def deep_learning_time(s: ArrayLike, u0: ArrayLike, uf: ArrayLike, depth: int,
                       panels: int = 400, nodes: int = 12) -> np.ndarray:
  """Time for a depth-N mode to grow from u0 to uf: t = int_{u0}^{uf} du / (N u^{2-2/N} (s-u)).

  Quadrature after the substitution w = ln(u / (s - u)) (dw = s du / (u (s - u))):
      t = (1 / (N s)) int_{w0}^{wf} u(w)^{-(1 - 2/N)} dw,   u(w) = s / (1 + e^{-w}),
  a smooth integrand (composite Gauss-Legendre, `panels` x `nodes` points). For N = 2 the
  integrand is constant and t = (wf - w0) / (2s), Saxe's learning_time; for N = 1 it gives
  ln((s - u0) / (s - uf)). Requires 0 < u0 < uf < s per mode.

  Returns:
    t, with the broadcast shape of s, u0, uf.
  """
  n = _depth(depth)
  s, u0, uf = np.broadcast_arrays(*(np.asarray(a, np.float64) for a in (s, u0, uf)))
  _check_rise(s, u0, uf)
  w0, wf = np.log(u0 / (s - u0)), np.log(uf / (s - uf))
  x, wts = np.polynomial.legendre.leggauss(nodes)                        # on [-1, 1]
  edges = np.linspace(0.0, 1.0, panels + 1)
  frac = (edges[:-1, None] + 0.5 * (x[None, :] + 1.0) * np.diff(edges)[:, None]).reshape(-1)
  weight = (0.5 * wts[None, :] * np.diff(edges)[:, None]).reshape(-1)    # sums to 1
  w = w0[..., None] + (wf - w0)[..., None] * frac                        # [..., P]
  u = s[..., None] / (1.0 + np.exp(-w))
  integral = (wf - w0) * np.sum(weight * u ** (2.0 / n - 1.0), axis=-1)
  return integral / (n * s)


def balanced_decoupled_init(u: np.ndarray, v: np.ndarray, depth: int,
                            width: Union[int, Sequence[int]], scale: ArrayLike,
                            seed: int = 0) -> dict:
  """deep_linear params {'W1'..'WN'} (row convention) with W_total = U diag(scale) V^T exactly.

  Layer l (column convention) is R_{l+1} diag(scale^{1/N}) R_l^T with R_1 = V, R_{N+1} = U and
  R_2..R_N [width_l, k] random with orthonormal columns (QR of a Gaussian from `seed`): every
  layer has the same singular values (balanced: W_{l+1}^T W_{l+1} = W_l W_l^T) and the modes are
  decoupled, so under the flow each keeps this form with u_i following mode_rate (the modes
  outside U's span stay exactly 0). deep_linear's row-convention W_l is the transpose.

  Args:
    u: the teacher's left singular vectors [out, k]; v: its right ones [in, k].
    depth: N >= 1; width: one hidden width or a list of N - 1, each >= k.
    scale: the initial strength u0 of every mode (> 0), scalar or [k].
    seed: the draw of the hidden frames.

  Returns:
    {'W1': [in, h_1], ..., 'WN': [h_{N-1}, out]} float64 numpy arrays.
  """
  n = _depth(depth)
  u, v = _orthonormal_columns("U", u), _orthonormal_columns("V", v)
  k = u.shape[1]
  if v.shape[1] != k:
    raise ValueError(f"U {u.shape} and V {v.shape} must have the same number of columns k")
  widths = [int(width)] * (n - 1) if np.ndim(width) == 0 else [int(w) for w in width]
  if len(widths) != n - 1 or any(w < k for w in widths):
    raise ValueError(f"width={width!r} is not allowed; it must be one width or a list of "
                     f"depth - 1 = {n - 1} widths, each >= k = {k} (the teacher's modes)")
  scale = np.atleast_1d(_positive("scale", scale))
  if scale.shape not in ((1,), (k,)):
    raise ValueError(f"scale has shape {scale.shape}; it must be a scalar or [k] = [{k}]")
  root = np.broadcast_to(scale, (k,)) ** (1.0 / n)
  rng = np.random.default_rng(seed)
  frames = [v]
  for h in widths:
    q, r = np.linalg.qr(rng.standard_normal((h, k)))
    frames.append(q * np.sign(np.diag(r)))
  frames.append(u)
  # row convention: W_l = (R_{l+1} diag(root) R_l^T)^T = R_l diag(root) R_{l+1}^T
  return {f"W{l + 1}": (frames[l] * root) @ frames[l + 1].T for l in range(n)}


# ---- 2. Jin et al. 2023: incremental learning in symmetric matrix sensing ---------------------

def sensing_operator(a: np.ndarray, y: np.ndarray) -> np.ndarray:
  """M_hat = (1/m) sum_i y_i sym(A_i): the matrix that drives the small-initialisation phase.

  Loss L(U) = (1/2m) sum_i (<A_i, U U^T> - y_i)^2 (the engine's mse on matrix_sensing with the
  symmetric matrix_factorization model). With r_i = <A_i, U U^T> - y_i,
      grad_U L = (1/m) sum_i r_i (A_i + A_i^T) U,
  and near U = 0, r_i = -y_i + O(|U|^2), so the flow linearises to dU/dt = 2 M_hat U,
  U(t) = exp(2 M_hat t) U_0. For matrix_sensing data E[M_hat] = M*.

  Args:
    a: measurement matrices [m, d, d]; y: targets [m] or [m, 1].
  """
  a = np.asarray(a, np.float64)
  y = np.asarray(y, np.float64).reshape(-1)
  if a.ndim != 3 or a.shape[1] != a.shape[2] or a.shape[0] != y.size:
    raise ValueError(f"a must be [m, d, d] and y [m]; got a {a.shape} and y {y.shape}")
  m_hat = np.einsum("n,nab->ab", y, a) / y.size
  return 0.5 * (m_hat + m_hat.T)


def init_overlaps(g0: np.ndarray, vecs: np.ndarray) -> np.ndarray:
  """g_i: the squared distance of p_i = v_i^T G0 from span(p_1, ..., p_{i-1}).

  Args:
    g0: the initial factor divided by its scale, U_0 / alpha [d, k].
    vecs: eigenvectors of M_hat [d, n], columns in order of decreasing eigenvalue.

  Returns:
    [n]: the pivots R_ii^2 of the QR of P^T = (V^T G0)^T (0 where i > k). For G0 with iid
    N(0, 1) entries g_i ~ chi^2 with k - i + 1 degrees of freedom (mean k - i + 1).
  """
  p = _orthonormal_columns("vecs", vecs).T @ np.asarray(g0, np.float64)      # [n, k]
  n, k = p.shape
  pivots = np.diagonal(np.linalg.qr(p.T, mode="r")) ** 2          # R is [min(k, n), n]
  return np.concatenate([pivots, np.zeros(n - pivots.size)])


def appearance_steps(sigma: ArrayLike, alpha: float, lr: float, threshold: ArrayLike,
                     width: Optional[int] = None, overlaps: Optional[ArrayLike] = None,
                     discrete: bool = False) -> np.ndarray:
  """The step at which the i-th eigenvalue of U U^T reaches `threshold` (small init alpha).

  Derivation (linearised flow, sensing_operator). In M_hat's eigenbasis (sigma_1 > sigma_2
  > ...), U(t) = alpha V D(t) P with D = diag(e^{2 sigma_j t}) and P = V^T G0 (rows p_j), so
  U U^T has the eigenvalues of alpha^2 D P P^T D. Once the D_j are far apart (alpha -> 0),
  the i-th is alpha^2 D_i^2 g_i (the i-th pivot of the graded Gram matrix, init_overlaps) up to
  relative corrections O(D_{i+1}^2 / D_i^2 + D_i^2 / D_{i-1}^2). It reaches c at
      t_i = ln(c / (alpha^2 g_i)) / (4 sigma_i),   step_i = t_i / lr,
  i.e. step_i grows like ln(1/alpha) / (2 lr sigma_i) (appearance_slope). GD's linearisation
  U <- (I + 2 lr M_hat) U gives step_i = ln(c / (alpha^2 g_i)) / (2 ln(1 + 2 lr sigma_i))
  exactly (discrete=True). The threshold c must be small against sigma_i (e.g. sigma_i / 10)
  for the linearisation to hold up to the crossing. In the nonlinear dynamics the part of p_i
  orthogonal to the learned modes keeps growing at 2 sigma_i while those saturate, so the
  crossing moves by an alpha-independent number of steps and the slope in ln(1/alpha) stands.
  Modes with sigma_i <= 0 or g_i = 0 (i > width) never appear: inf.

  Args:
    sigma: eigenvalues of M_hat (or M*) [n], decreasing.
    alpha: the init scale (U_0 = alpha G0) > 0; lr: the learning rate > 0 (the flow's time is
      step * lr); threshold: c > 0, scalar or [n].
    width: k, for the typical overlaps g_i = max(k - i + 1, 0) (their means).
    overlaps: the exact g_i (init_overlaps) instead; one of width / overlaps is required.
    discrete: GD's exact linearised count instead of the flow's.

  Returns:
    [n] steps.
  """
  sigma = np.atleast_1d(np.asarray(sigma, np.float64))
  alpha, lr = float(_positive("alpha", alpha)), float(_positive("lr", lr))
  c = _positive("threshold", threshold)
  if np.any(np.diff(sigma) > 0):
    raise ValueError(f"sigma={sigma!r} is not allowed; it must be in decreasing order")
  if overlaps is None:
    if width is None or int(width) < 1:
      raise ValueError(f"width={width!r} is not allowed; give width >= 1 or the overlaps")
    g = np.maximum(int(width) - np.arange(sigma.size), 0).astype(np.float64)
  else:
    g = np.asarray(overlaps, np.float64)
    if g.shape != sigma.shape or np.any(g < 0):
      raise ValueError(f"overlaps must be [n] = {sigma.shape} values >= 0; got {g!r}")
  ok = (sigma > 0) & (g > 0)
  growth = (2.0 * np.log1p(2.0 * lr * np.where(ok, sigma, 1.0)) if discrete
            else 4.0 * lr * np.where(ok, sigma, 1.0))
  log_ratio = np.log(c / (alpha ** 2 * np.where(ok, g, 1.0)))
  return np.where(ok, log_ratio / growth, np.inf)


def appearance_slope(sigma: ArrayLike, lr: float, discrete: bool = False) -> np.ndarray:
  """d step_i / d ln(1/alpha) = 1 / (2 lr sigma_i) (flow) or 1 / ln(1 + 2 lr sigma_i) (GD).

  From appearance_steps: step_i = (ln(c / g_i) + 2 ln(1/alpha)) / (4 lr sigma_i).
  """
  sigma = _positive("sigma", np.atleast_1d(sigma))
  lr = float(_positive("lr", lr))
  return 1.0 / np.log1p(2.0 * lr * sigma) if discrete else 1.0 / (2.0 * lr * sigma)


def crossing_steps(steps: ArrayLike, values: np.ndarray, threshold: ArrayLike) -> np.ndarray:
  """The first step where each curve reaches `threshold`, interpolated linearly in log(value).

  Args:
    steps: [T] increasing; values: [T, n] positive curves (e.g. eigenvalues of U U^T, in
      decreasing order); threshold: scalar or [n].

  Returns:
    [n] steps; nan where a curve never reaches the threshold, steps[0] where it starts at or
    above it.
  """
  steps = np.asarray(steps, np.float64)
  values = np.asarray(values, np.float64)
  if values.ndim == 1:
    values = values[:, None]
  if values.shape[0] != steps.size or np.any(np.diff(steps) <= 0):
    raise ValueError(f"steps must be [T] increasing and values [T, n]; got {steps.shape}, "
                     f"{values.shape}")
  c = np.broadcast_to(_positive("threshold", threshold), values.shape[1:])
  out = np.full(values.shape[1], np.nan)
  for j in range(values.shape[1]):
    above = np.nonzero(values[:, j] >= c[j])[0]
    if above.size == 0:
      continue
    i = above[0]
    if i == 0:
      out[j] = steps[0]
      continue
    lo, hi = np.log(np.maximum(values[i - 1:i + 1, j], 1e-300))
    frac = (np.log(c[j]) - lo) / (hi - lo)
    out[j] = steps[i - 1] + frac * (steps[i] - steps[i - 1])
  return out


# ---- 3. Xiong et al. 2023: over-parameterisation slows GD ----------------------------------

def exact_rate(sigma: ArrayLike, lr: float, dimension: int) -> float:
  """Per-step factor of ||U U^T - M*||_F^2 near the optimum with width k = rank r (symmetric).

  Derivation (population loss 0.5 ||U U^T - M*||_F^2, which matrix_sensing's loss averages
  to: E[<A, D>^2] = ||D||_F^2). GD is U <- U - 2 lr (U U^T - M*) U; linearised at U* (U* U*^T =
  M*) the error E = U U^T - M* moves in the tangent space as
      E <- E - 2 lr (E M* + M* E),   so E_ab <- (1 - 2 lr (sigma_a + sigma_b)) E_ab
  in M*'s eigenbasis (sigma = 0 off its range; the null-null block is second order). Hence
  ||E||_F^2 decays geometrically with factor
      rho^2,  rho = max(|1 - 2 lr (sigma_a + sigma_b)| : a, b <= r; |1 - 2 lr sigma_a| : a <= r
      when d > r),
  which for small lr is (1 - 2 lr sigma_r)^2 ~ exp(-4 lr sigma_r) per step (the flow: e^{-4
  sigma_r t}), set by the smallest nonzero eigenvalue sigma_r. For finite m the empirical
  Hessian differs from the population one by O(sqrt(r d / m)).

  Args:
    sigma: the nonzero eigenvalues of M* [r]; lr > 0; dimension: d >= r.
  """
  sigma = _positive("sigma", np.atleast_1d(sigma))
  lr = float(_positive("lr", lr))
  if int(dimension) < sigma.size:
    raise ValueError(f"dimension={dimension!r} is not allowed; it must be >= the rank "
                     f"{sigma.size} (len(sigma))")
  factors = [np.abs(1.0 - 2.0 * lr * (sigma[:, None] + sigma[None, :])).max()]
  if int(dimension) > sigma.size:
    factors.append(np.abs(1.0 - 2.0 * lr * sigma).max())
  return float(max(factors) ** 2)


def overparameterized_error(steps: ArrayLike, lr: float, width: int, rank: int,
                            dimension: int, rho0: Optional[ArrayLike] = None) -> np.ndarray:
  """Late ||U U^T - M*||_F^2 for width k > rank r: sum_j (rho_j0^-2 + 4 lr T)^-2 -> q/(16 (lr T)^2).

  Derivation (population loss, flow dU/dt = -2 (U U^T - M*) U). Late in training U is, in M*'s
  eigenbasis and a rotated column basis, block diagonal [[R, 0], [0, N]] with R R^T -> M*_r
  exponentially and N [d - r, k - r] the over-parameterised part, which M* does not pull on:
  dN/dt = -2 N N^T N, so each singular value rho of N obeys d rho/dt = -2 rho^3,
      rho^2 = 1 / (rho_0^-2 + 4t),   ||E||_F^2 -> ||N N^T||_F^2 = sum_j rho_j^4,
  with t = lr * T (GD, rho <- rho (1 - 2 lr rho^2), adds only O(lr ln T) to rho^-2). Once
  4t >> rho_0^-2 this is q / (16 t^2), q = min(k - r, d - r): the sublinear T^-2 rate of Xiong
  et al. 2023, whatever the initialisation; before that (small init: rho_0 ~ alpha) the error
  sits on a plateau ~ sum rho_0^4 that ends at t ~ 1 / (4 rho_0^2).

  Args:
    steps: T (> 0; counted from where rho0 was measured, if given).
    lr: the learning rate; width, rank, dimension: k > r, r <= d.
    rho0: the singular values of N at step 0 (slow_singular_values, measured once the
      exponential phase is over); None for the leading asymptote q / (16 (lr T)^2).

  Returns:
    [T].
  """
  steps = np.atleast_1d(np.asarray(steps, np.float64))
  lr = float(_positive("lr", lr))
  k, r, d = int(width), int(rank), int(dimension)
  if not 1 <= r <= d:
    raise ValueError(f"rank={rank!r} is not allowed; it must be in [1, dimension={d}]")
  if k <= r:
    raise ValueError(f"width={width!r} is not allowed; the T^-2 tail needs width > rank={r} "
                     f"(width = rank converges geometrically: exact_rate)")
  if rho0 is None:
    q = min(k - r, d - r)
    return q / (16.0 * (lr * _positive("steps", steps)) ** 2)
  rho0 = _positive("rho0", np.atleast_1d(rho0))
  if np.any(steps < 0):
    raise ValueError(f"steps={steps!r} is not allowed; they must be >= 0")
  inv = rho0[None, :] ** -2.0 + 4.0 * lr * steps[:, None]
  return np.sum(inv ** -2.0, axis=1)


def slow_singular_values(u: np.ndarray, v_star: np.ndarray) -> np.ndarray:
  """The q = min(k - r, d - r) largest singular values of U's part outside range(M*).

  (I - V V^T) U holds N (overparameterized_error's slow block) and the components that decay
  geometrically; once those are gone its top q singular values are the rho_j.

  Args:
    u: the factor U [d, k]; v_star: M*'s eigenvectors of nonzero eigenvalue [d, r].
  """
  v = _orthonormal_columns("v_star", v_star)
  u = np.asarray(u, np.float64)
  d, k = u.shape
  r = v.shape[1]
  if v.shape[0] != d:
    raise ValueError(f"u [d, k] {u.shape} and v_star [d, r] {v.shape} must share d")
  q = min(k - r, d - r)
  if q < 1:
    raise ValueError(f"U {u.shape} has no over-parameterised part: width must be > rank {r} "
                     f"< dimension {d}")
  return np.linalg.svd(u - v @ (v.T @ u), compute_uv=False)[:q]


def _tail(steps, values, tail: float):
  steps = np.asarray(steps, np.float64).reshape(-1)
  values = np.asarray(values, np.float64).reshape(-1)
  if steps.shape != values.shape or steps.size < 2:
    raise ValueError(f"steps and values must be [T] with T >= 2; got {steps.shape}, "
                     f"{values.shape}")
  if not 0 < tail <= 1:
    raise ValueError(f"tail={tail!r} is not allowed; it must be in (0, 1]")
  start = min(int(math.floor((1.0 - tail) * steps.size)), steps.size - 2)
  s, v = steps[start:], values[start:]
  if np.any(v <= 0) or not np.all(np.isfinite(v)):
    raise ValueError("values must be finite and > 0 over the fitted tail (a log is taken)")
  return s, v


def loglog_slope(steps: ArrayLike, values: ArrayLike, tail: float = 0.5) -> float:
  """Least-squares slope of ln(values) against ln(steps) over the last `tail` of the points
  (-2 for the over-parameterised T^-2 tail)."""
  s, v = _tail(steps, values, tail)
  if np.any(s <= 0):
    raise ValueError("steps must be > 0 over the fitted tail (a log is taken)")
  return float(np.polyfit(np.log(s), np.log(v), 1)[0])


def geometric_rate(steps: ArrayLike, values: ArrayLike, tail: float = 0.5) -> float:
  """Per-step factor exp(slope of ln(values) against steps) over the last `tail` of the points
  (compare with exact_rate)."""
  s, v = _tail(steps, values, tail)
  return float(np.exp(np.polyfit(s, np.log(v), 1)[0]))
