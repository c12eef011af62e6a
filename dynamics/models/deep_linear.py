"""Deep linear network y = x W_1 W_2 ... W_L, pure functional.

Row-vector convention: W_l has shape [n_{l-1}, n_l] with n_0 = in_dim, n_l = widths[l-1],
n_L = out_dim, L = len(widths) + 1; leaves 'W1'..'WL'; no biases, no activations.
Features (return_features) are the last hidden representation x W_1 ... W_{L-1} [N, widths[-1]]
(the flattened input if widths = []).

Initialisations (c = init_scale):
  gaussian:   entries of W_l ~ c * N(0, 1/n_{l-1}).
  orthogonal: W_l = c * (semi-)orthogonal [n_{l-1}, n_l] matrix: QR of a Gaussian matrix with
              the sign fix Q <- Q diag(sign(diag R)) (Haar distributed); all singular values c.
  balanced:   (Arora, Cohen, Hazan 2018 / Arora, Cohen, Golowich, Hu 2019) draw the end-to-end
              matrix A [in_dim, out_dim] with entries N(0, 1/in_dim) (see `balanced_target`),
              take its thin SVD A = U S V^T (k = min(in_dim, out_dim)) and random matrices
              Q_l [n_l, k] with orthonormal columns for the hidden layers l = 1..L-1; then
                  W_1 = U S^(1/L) Q_1^T,  W_l = Q_{l-1} S^(1/L) Q_l^T,  W_L = Q_{L-1} S^(1/L) V^T,
              each times c. The product is W_1 ... W_L = c^L A exactly, and in our row-vector
              convention the balancedness condition
                  W_l^T W_l = W_{l+1} W_{l+1}^T   (= c^2 Q_l S^(2/L) Q_l^T),  l = 1..L-1,
              holds exactly. Requires every hidden width >= min(in_dim, out_dim).
  decoupled:  (Saxe, McClelland, Ganguli 2014) the balanced init aligned with the TRAINING DATA's
              input-output correlation Sigma_yx = (1/N) Y^T X = U diag(s) V^T (column
              convention, float64 numpy SVD of the data handed to build()): with the k modes of
              s > 1e-9 max(s) and random Q_l [n_l, k] with orthonormal columns,
                  W_1 = V Q_1^T,  W_l = Q_{l-1} Q_l^T,  W_L = Q_{L-1} U^T,
              each times c, so the end-to-end map is c^L V U^T: every teacher mode starts at
              strength u0 = c^L, every other direction at exactly 0, and the layers are
              balanced. On whitened inputs (Sigma_xx = I, e.g. linear_teacher with whiten=True)
              the modes then evolve independently (analysis.linear_theory.saxe_curve,
              deep_mode_curve); other inputs are refused. Requires every hidden width >= k.

Key paths: gaussian / orthogonal: k_1..k_L = jax.random.split(key, L), W_l from k_l.
decoupled: k_1..k_L = jax.random.split(key, L), Q_l from k_{l+1}.
balanced: k_A, k_1..k_{L-1} = jax.random.split(key, L); A = N(k_A, [in_dim, out_dim])
/ sqrt(in_dim), Q_l from k_l.
"""
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dynamics.fields import Field
from dynamics.config_utils import ConfigError
from dynamics.models import common

NAME = "deep_linear"
INITS = ("gaussian", "orthogonal", "balanced", "decoupled")


FIELDS = dict(
    **common.DIMS,
    widths=common.WIDTHS([16], "hidden widths; [] is a single matrix"),
    init=Field("gaussian", "gaussian, orthogonal, balanced or decoupled (from the data's SVD; "
               "module docstring)", choices=INITS),
    init_scale=common.INIT_SCALE,
)


def _check(cfg) -> None:
  if cfg.init == "balanced" and cfg.in_dim is not None and cfg.out_dim is not None:
    k = min(cfg.in_dim, cfg.out_dim)
    if any(w < k for w in cfg.widths):
      raise ConfigError(f"model.widths={list(cfg.widths)!r} is not allowed with "
                        f"model.init='balanced': every hidden width must be >= "
                        f"min(in_dim, out_dim) = {k}")


validate, default_config = common.declare(NAME, FIELDS, _check)


def _semi_orthogonal(key: jax.Array, n_in: int, n_out: int, dtype) -> jax.Array:
  """[n_in, n_out] with orthonormal rows or columns (all singular values 1), Haar distributed."""
  big, small = max(n_in, n_out), min(n_in, n_out)
  g = jax.random.normal(key, (big, small), dtype)
  q, r = jnp.linalg.qr(g)                    # q [big, small]
  d = jnp.sign(jnp.diagonal(r))
  d = jnp.where(d == 0, jnp.ones_like(d), d)
  q = q * d[None, :]
  return q if n_in >= n_out else q.T


def _balanced_a(k_a: jax.Array, in_dim: int, out_dim: int, dtype) -> jax.Array:
  return jax.random.normal(k_a, (in_dim, out_dim), dtype) / math.sqrt(in_dim)


def balanced_target(key: jax.Array, cfg: Any, dtype=jnp.float32) -> jax.Array:
  """The end-to-end matrix A [in_dim, out_dim] that init='balanced' factorises (init_scale 1)."""
  cfg, dtype, (in_dim, out_dim) = common.prepare(validate, cfg, dtype)
  return _balanced_a(jax.random.split(key, len(cfg.widths) + 1)[0], in_dim, out_dim, dtype)


WHITENED_ATOL = 1e-6    # the largest |Sigma_xx - I| entry init='decoupled' accepts


def teacher_modes(data: Any) -> tuple[np.ndarray, np.ndarray]:
  """(U [out_dim, k], V [in_dim, k]) of the training data's Sigma_yx = (1/N) Y^T X (float64,
  the k modes with s > 1e-9 max(s)), refusing inputs that are not whitened."""
  if data is None:
    raise ConfigError("model.init='decoupled' is built from the training data's input-output "
                      "SVD; build the model with its data (dynamics.models.build(..., data=))")
  x = np.asarray(data.x_train, np.float64).reshape(len(data.x_train), -1)
  y = np.asarray(data.y_train, np.float64).reshape(len(data.y_train), -1)
  n = x.shape[0]
  err = np.abs(x.T @ x / n - np.eye(x.shape[1])).max()
  if not err <= WHITENED_ATOL:
    raise ConfigError(f"model.init='decoupled' is not allowed on these inputs: max |Sigma_xx "
                      f"- I| = {err:.3g} > {WHITENED_ATOL:g}; the modes decouple only on "
                      f"whitened inputs (e.g. linear_teacher with data.whiten=True)")
  u, s, vt = np.linalg.svd(y.T @ x / n, full_matrices=False)
  k = int(np.sum(s > 1e-9 * s.max())) if s.size and s.max() > 0 else 0
  if k == 0:
    raise ConfigError("model.init='decoupled' needs a nonzero input-output correlation "
                      "(1/N) Y^T X; the training targets have none")
  return u[:, :k], vt[:k].T


def _decoupled(keys, dims, data, dtype) -> list:
  """The layers of init='decoupled' at scale 1 (module docstring), row convention."""
  u, v = teacher_modes(data)
  k = u.shape[1]
  if any(w < k for w in dims[1:-1]):
    raise ConfigError(f"model.widths={dims[1:-1]!r} is not allowed with model.init="
                      f"'decoupled': every hidden width must be >= the data's {k} modes")
  frames = ([jnp.asarray(v, dtype)] +
            [_semi_orthogonal(keys[l], dims[l], k, dtype) for l in range(1, len(dims) - 1)] +
            [jnp.asarray(u, dtype)])
  return [a @ b.T for a, b in zip(frames[:-1], frames[1:])]


def init(key: jax.Array, cfg: Any, dtype=jnp.float32, data: Any = None) -> dict:
  """The params; `data` (a Dataset: x_train, y_train) is read by init='decoupled' only."""
  cfg, dtype, (in_dim, out_dim) = common.prepare(validate, cfg, dtype)
  dims = common.layer_dims(cfg, in_dim, out_dim)
  n_layers = len(dims) - 1
  scale = float(cfg.init_scale)
  keys = jax.random.split(key, n_layers)
  if cfg.init == "decoupled":
    ws = _decoupled(keys, dims, data, dtype)
  elif cfg.init == "gaussian":
    ws = [jax.random.normal(keys[l], (dims[l], dims[l + 1]), dtype) / math.sqrt(dims[l])
          for l in range(n_layers)]
  elif cfg.init == "orthogonal":
    ws = [_semi_orthogonal(keys[l], dims[l], dims[l + 1], dtype) for l in range(n_layers)]
  else:
    a = _balanced_a(keys[0], in_dim, out_dim, dtype)
    u, s, vt = jnp.linalg.svd(a, full_matrices=False)       # u [in, k], s [k], vt [k, out]
    root = s ** (1.0 / n_layers)
    k = s.shape[0]
    qs = [_semi_orthogonal(keys[l], dims[l], k, dtype) for l in range(1, n_layers)]  # [n_l, k]
    left = [u] + qs                  # left frame of W_l
    right = qs + [vt.T]              # right frame of W_l
    ws = [(lf * root[None, :]) @ rf.T for lf, rf in zip(left, right)]
  return {f"W{l + 1}": (scale * w).astype(dtype) for l, w in enumerate(ws)}


def _n_layers(params: dict) -> int:
  n = len(params)
  if sorted(params) != sorted(f"W{l}" for l in range(1, n + 1)):
    raise ValueError(f"deep_linear params must be W1..WL, got {sorted(params)}")
  return n


def end_to_end(params: dict) -> jax.Array:
  """The product W_1 W_2 ... W_L [in_dim, out_dim]."""
  return functools.reduce(jnp.matmul, [params[f"W{l}"] for l in range(1, _n_layers(params) + 1)])


def readout(params: dict, cfg: Any = None):
  """The last layer as a classifier of the features: (W_L^T [out_dim, d], no bias)."""
  return params[f"W{_n_layers(params)}"].T, None


def layers(params: dict, x: jax.Array, cfg: Any = None) -> list:
  """The hidden representations x W_1, x W_1 W_2, ... (each [N, width]), first layer first."""
  h, out = common.flatten(x, params["W1"].dtype), []
  for l in range(1, _n_layers(params)):
    h = h @ params[f"W{l}"]
    out.append(h)
  return out


def apply(params: dict, x: jax.Array, cfg: Any = None, return_features: bool = False):
  hidden = layers(params, x)
  h = hidden[-1] if hidden else common.flatten(x, params["W1"].dtype)
  out = h @ params[f"W{_n_layers(params)}"]
  return (out, h) if return_features else out
