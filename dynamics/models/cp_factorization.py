"""CP tensor factorization (Razin, Maman, Cohen 2021), pure functional.

The model holds an order-N tensor W [d, ..., d] as R rank-one components,
    W = sum_r a_r^(1) o ... o a_r^(N),   leaf 'factors' [N, d, R] (factors[n][:, r] = a_r^(n)),
and reads one scalar per example from N vectors x_1, ..., x_N in R^d (x [N_ex, N, d]):
    f(x) = <x_1 o ... o x_N, W> = sum_r prod_n <x_n, a_r^(n)>.
With one-hot rows x_n = e_{i_n} this is the entry W[i_1, ..., i_N], so the engine's mse loss on
the observed entries is the tensor-completion loss (Razin et al.'s network view: a locally
connected layer of R channels, product pooling, a sum). The features are the R channel
products prod_n <x_n, a_r^(n)> [N_ex, R] and the readout is ones [1, R].

Initialisation: every factor entry init_scale * N(0, 1) (Razin et al.'s Gaussian init of std
init_std: init_scale = 5e-3 is their small init). The dimension d is in_dim / order.

component_norms(params) [R]: ||a_r^(1) o ... o a_r^(N)||_F = prod_n ||a_r^(n)||, the quantity
whose one-at-a-time growth Razin et al. track; tensor(params): W itself.
"""
from typing import Any

import jax
import jax.numpy as jnp

from dynamics import tensor as tensor_lib
from dynamics.config_utils import ConfigError
from dynamics.fields import Field
from dynamics.models import common

NAME = "cp_factorization"

FIELDS = dict(
    **common.DIMS,
    order=Field(4, "order N of W (number of modes); inputs are [N_ex, order, d], d = "
                "in_dim / order", lo=2),
    components=Field(10, "R, the number of rank-one components", lo=1),
    init_scale=common.INIT_SCALE,
)


def _check(cfg) -> None:
  common.require_scalar_output(cfg, "<x_1 o ... o x_N, W>")
  if cfg.in_dim is not None and cfg.in_dim % cfg.order:
    raise ConfigError(f"model.order={cfg.order} is not allowed with model.in_dim="
                      f"{cfg.in_dim}; inputs are [N, order, d], so order must divide in_dim")


validate, default_config = common.declare(NAME, FIELDS, _check)


def init(key: jax.Array, cfg: Any, dtype=jnp.float32) -> dict:
  cfg, dtype, (in_dim, _) = common.prepare(validate, cfg, dtype)
  n, r = int(cfg.order), int(cfg.components)
  return {"factors": common.scaled_normal(key, (n, in_dim // n, r), float(cfg.init_scale), dtype)}


def factor_list(params: dict) -> list[jax.Array]:
  """The factor matrices A_1, ..., A_N [d, R] (dynamics.tensor's CP convention)."""
  f = params["factors"]
  return [f[n] for n in range(f.shape[0])]


def tensor(params: dict) -> jax.Array:
  """The end-to-end tensor W [d, ..., d] (N modes)."""
  return tensor_lib.cp_reconstruct(factor_list(params))


def component_norms(params: dict) -> jax.Array:
  """The Frobenius norm of every rank-one component, prod_n ||a_r^(n)||: [R]."""
  return tensor_lib.cp_component_norms(factor_list(params))


def readout(params: dict, cfg: Any = None):
  """The sum over the R channel products: (ones [1, R], None)."""
  return jnp.ones((1, params["factors"].shape[-1]), params["factors"].dtype), None


def apply(params: dict, x: jax.Array, cfg: Any = None, return_features: bool = False):
  """<x_1 o ... o x_N, W> per example: x [N_ex, N, d] (or flattened [N_ex, N * d]) -> [N_ex, 1]."""
  f = params["factors"]
  n, d, _ = f.shape
  x = jnp.asarray(x)
  if x.shape[1:] not in ((n, d), (n * d,)):
    raise ValueError(f"x has shape {x.shape}; the factors {f.shape} take [N_ex, {n}, {d}] "
                     f"(order x dimension; set model.order to the data's order)")
  x = x.reshape(x.shape[0], n, d).astype(f.dtype)
  feats = jnp.prod(jnp.einsum("bnd,ndr->bnr", x, f), axis=1)     # [N_ex, R] channel products
  out = jnp.sum(feats, axis=1, keepdims=True)
  return (out, feats) if return_features else out
