"""Matrix factorization models for matrix sensing and completion, pure functional.

The model holds a matrix W [rows, cols] in factored form and reads one scalar per example:
    f(X) = <X, W> = sum_ab X_ab W_ab,   X [rows, cols] (or flattened, [rows * cols]),
so with sensing matrices X = A_i the engine's loss (1/N) sum_i 0.5 (f(A_i) - y_i)^2 is the
matrix-sensing loss (1/2m) sum_i (<A_i, W> - y_i)^2 (Jin et al. 2023), and with one-hot
matrices X = e_a e_b^T it is the matrix-completion loss on the observed entries.

factorization (k = width):
  symmetric:  W = U U^T, leaf 'U' [d, k] (rows = cols = d).
  asymmetric: W = U V^T, leaves 'U' [rows, k], 'V' [cols, k].
  deep:       W = W_N ... W_2 W_1 (N = depth), leaves 'W1' [k, cols], 'Wl' [k, k],
              'WN' [rows, k]; depth 1 is the single matrix 'W1' [rows, cols].
Initialisation (c = init_scale): every entry of every factor is c * N(0, 1) (Jin et al. 2023:
U_0 = alpha N(0, 1)); the small-initialisation regime is init_scale << 1 (e.g. 1e-3).

init_scale contract: c multiplies EVERY initial parameter array (as for every model).
Features (return_features) are the flattened inputs [N, rows * cols]; readout is the
end-to-end matrix flattened, [1, rows * cols], so out = features @ readout^T.

Key paths: symmetric: U from key; asymmetric: k_U, k_V = jax.random.split(key);
deep: k_1..k_N = jax.random.split(key, N), W_l from k_l.
"""
import math
from typing import Any

import jax
import jax.numpy as jnp

from dynamics.config_utils import ConfigError
from dynamics.fields import Field
from dynamics.models import common

NAME = "matrix_factorization"
FACTORIZATIONS = ("symmetric", "asymmetric", "deep")

FIELDS = dict(
    **common.DIMS,
    factorization=Field("symmetric", "symmetric U U^T, asymmetric U V^T or deep W_N...W_1",
                        choices=FACTORIZATIONS),
    rows=Field(None, "rows of W (None: square, sqrt(in_dim)); cols = in_dim / rows",
               kind="int", lo=1),
    width=Field(8, "inner dimension k of the factors (hidden width of 'deep')", lo=1),
    depth=Field(3, "number of factors N of 'deep' (symmetric, asymmetric: 2)", lo=1),
    init_scale=common.INIT_SCALE,
)


def _shape(cfg) -> tuple[int, int]:
  """(rows, cols) of W, or a ConfigError naming the field that does not fit in_dim."""
  in_dim = int(cfg.in_dim)
  if cfg.rows is None:
    d = math.isqrt(in_dim)
    if d * d != in_dim:
      raise ConfigError(f"model.in_dim={in_dim} is not a square and model.rows is None; set "
                        f"model.rows to a divisor of in_dim (W is rows x in_dim / rows)")
    return d, d
  if in_dim % cfg.rows:
    raise ConfigError(f"model.rows={cfg.rows} is not allowed with model.in_dim={in_dim}; "
                      f"it must divide in_dim (W is rows x in_dim / rows)")
  return int(cfg.rows), in_dim // int(cfg.rows)


validate, default_config = common.declare(
    NAME, FIELDS, lambda cfg: common.check_factorization(cfg, "<X, W>", _shape, "U U^T"))


def init(key: jax.Array, cfg: Any, dtype=jnp.float32) -> dict:
  cfg, dtype, _ = common.prepare(validate, cfg, dtype)
  rows, cols = _shape(cfg)
  k, c = int(cfg.width), float(cfg.init_scale)
  normal = lambda key, shape: common.scaled_normal(key, shape, c, dtype)
  if cfg.factorization == "symmetric":
    return {"U": normal(key, (rows, k))}
  if cfg.factorization == "asymmetric":
    k_u, k_v = jax.random.split(key)
    return {"U": normal(k_u, (rows, k)), "V": normal(k_v, (cols, k))}
  n = int(cfg.depth)
  dims = [cols] + [k] * (n - 1) + [rows]          # W_l maps dims[l-1] -> dims[l]
  keys = jax.random.split(key, n)
  return {f"W{l}": normal(keys[l - 1], (dims[l], dims[l - 1])) for l in range(1, n + 1)}


def matrix(params: dict) -> jax.Array:
  """The end-to-end matrix W [rows, cols]: U U^T, U V^T or W_N ... W_1 (from the leaf names)."""
  if set(params) == {"U"}:
    return params["U"] @ params["U"].T
  if set(params) == {"U", "V"}:
    return params["U"] @ params["V"].T
  n = len(params)
  if sorted(params) != sorted(f"W{l}" for l in range(1, n + 1)):
    raise ValueError(f"matrix_factorization params must be U, (U, V) or W1..WN; got "
                     f"{sorted(params)}")
  w = params["W1"]
  for l in range(2, n + 1):
    w = params[f"W{l}"] @ w
  return w


def readout(params: dict, cfg: Any = None):
  """The end-to-end matrix as a linear readout of the flattened inputs: ([1, rows*cols], None)."""
  return matrix(params).reshape(1, -1), None


def apply(params: dict, x: jax.Array, cfg: Any = None, return_features: bool = False):
  """<X_i, W> for each example: x [N, rows, cols] or [N, rows * cols] -> [N, 1]."""
  out, feats = common.inner_products(x, matrix(params), "W")
  return (out, feats) if return_features else out
