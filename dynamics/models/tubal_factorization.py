"""Tubal tensor factorization (Karnik, Veselovska, Iwen, Krahmer 2024), pure functional.

The model holds a third-order tensor X [rows, cols, k] (k = tube, the third mode) as a
t-product of two factors (dynamics.tensor: FFT along the tubes, facewise products):
  symmetric:  X = U * U^T, leaf 'U' [n, R, k] (rows = cols = n);
  asymmetric: X = U * V^T, leaves 'U' [rows, R, k], 'V' [cols, R, k];
(R = width) and reads one scalar per example, f(A) = <A, X> = sum_abj A_abj X_abj, A [rows,
cols, k] (or flattened), so with Gaussian measurement tensors A_i the engine's mse loss is the
tubal sensing loss (1/2m) sum_i (<A_i, X> - y_i)^2.

Initialisation (c = init_scale):
  init='scaled': every entry c * N(0, 1/R), Karnik et al.'s U_0 = alpha U with U of iid
                 N(0, 1/R) entries (their code: alpha * randn(n, R, k) / sqrt(R); alpha = 1e-7);
  init='normal': every entry c * N(0, 1) (as matrix_factorization).
Key paths: symmetric: U from key; asymmetric: k_U, k_V = jax.random.split(key).

Features (return_features) are the flattened inputs [N, rows * cols * k]; readout is X
flattened, [1, rows * cols * k], so out = features @ readout^T. tensor(params) is X.
"""
import math
from typing import Any

import jax
import jax.numpy as jnp

from dynamics import tensor as tensor_lib
from dynamics.config_utils import ConfigError
from dynamics.fields import Field
from dynamics.models import common

NAME = "tubal_factorization"
FACTORIZATIONS = ("symmetric", "asymmetric")
INITS = ("scaled", "normal")

FIELDS = dict(
    **common.DIMS,
    factorization=Field("symmetric", "symmetric U * U^T or asymmetric U * V^T (t-products)",
                        choices=FACTORIZATIONS),
    tube=Field(4, "tube length k (third mode) of X [rows, cols, k]", lo=1),
    rows=Field(None, "rows of X (None: square, sqrt(in_dim / tube)); cols = in_dim / (rows "
               "* tube)", kind="int", lo=1),
    width=Field(8, "R: the factors are [rows, R, k] and [cols, R, k]", lo=1),
    init=Field("scaled", "'scaled': entries init_scale * N(0, 1/R) (Karnik et al. 2024); "
               "'normal': init_scale * N(0, 1)", choices=INITS),
    init_scale=common.INIT_SCALE,
)


def _shape(cfg) -> tuple[int, int, int]:
  """(rows, cols, k) of X, or a ConfigError naming the field that does not fit in_dim."""
  in_dim, k = int(cfg.in_dim), int(cfg.tube)
  if in_dim % k:
    raise ConfigError(f"model.tube={k} is not allowed with model.in_dim={in_dim}; it must "
                      f"divide in_dim (X is rows x cols x tube)")
  slab = in_dim // k
  if cfg.rows is None:
    n = math.isqrt(slab)
    if n * n != slab:
      raise ConfigError(f"model.in_dim={in_dim} / model.tube={k} = {slab} is not a square and "
                        f"model.rows is None; set model.rows to a divisor of {slab}")
    return n, n, k
  if slab % cfg.rows:
    raise ConfigError(f"model.rows={cfg.rows} is not allowed with model.in_dim={in_dim} and "
                      f"model.tube={k}; it must divide in_dim / tube = {slab}")
  return int(cfg.rows), slab // int(cfg.rows), k


validate, default_config = common.declare(
    NAME, FIELDS, lambda cfg: common.check_factorization(cfg, "<A, X>", _shape, "U * U^T"))


def init(key: jax.Array, cfg: Any, dtype=jnp.float32) -> dict:
  cfg, dtype, _ = common.prepare(validate, cfg, dtype)
  rows, cols, k = _shape(cfg)
  r = int(cfg.width)
  c = float(cfg.init_scale) / (math.sqrt(r) if cfg.init == "scaled" else 1.0)
  normal = lambda key, n: common.scaled_normal(key, (n, r, k), c, dtype)
  if cfg.factorization == "symmetric":
    return {"U": normal(key, rows)}
  k_u, k_v = jax.random.split(key)
  return {"U": normal(k_u, rows), "V": normal(k_v, cols)}


def tensor(params: dict) -> jax.Array:
  """The end-to-end tensor X [rows, cols, k]: U * U^T or U * V^T (from the leaf names)."""
  if set(params) not in ({"U"}, {"U", "V"}):
    raise ValueError(f"tubal_factorization params must be U or (U, V); got {sorted(params)}")
  u = params["U"]
  v = params.get("V", u)
  if u.shape[-2:] != v.shape[-2:] or u.ndim != v.ndim:
    raise ValueError(f"tubal_factorization: U has shape {u.shape} and V {v.shape}; U * V^T "
                     "needs U [rows, R, k] and V [cols, R, k] with the same width R and tube k")
  return tensor_lib.t_product(u, tensor_lib.t_transpose(v))


def readout(params: dict, cfg: Any = None):
  """X as a linear readout of the flattened inputs: ([1, rows * cols * k], None)."""
  return tensor(params).reshape(1, -1), None


def apply(params: dict, x: jax.Array, cfg: Any = None, return_features: bool = False):
  """<A_i, X> per example: x [N, rows, cols, k] or [N, rows * cols * k] -> [N, 1]."""
  t = tensor(params)
  x = jnp.asarray(x)
  if x.ndim > 2 and x.shape[1:] != t.shape:
    raise ValueError(f"x has shape {x.shape}; X is {t.shape} (rows, cols, tube)")
  out, feats = common.inner_products(x, t, "X")
  return (out, feats) if return_features else out
