"""Two-layer network f(x) = output_scale * sum_j v_j act(w_j . x), pure functional.

Leaves: w [m, in_dim] (row j is the input weight w_j) and v [m, out_dim] (row j is the output
weight v_j); no biases. In matrix form f(x) = output_scale * act(x w^T) v, and the features
(return_features) are act(x w^T) [N, m] (without output_scale).

Initialisation (c = init_scale, m = width):
  w_j ~ c * N(0, I / in_dim)
  balanced=False: v_j ~ c * N(0, I / m), or v_scale * N(0, I / m) when v_scale > 0 (a second
                  layer at its own scale: Xu et al. 2023's +-1/sqrt(m) output weights above a
                  tiny first layer; a swept init_scale still multiplies both layers)
  balanced=True:  v_j = c * ||w_j / c|| * u_j with u_j a uniformly random unit vector in
                  R^out_dim (a random sign when out_dim = 1), so ||v_j|| = ||w_j|| exactly
                  (|v_j| = ||w_j|| for out_dim = 1).
output_scale (a fixed multiplier, not a parameter) gives e.g. the mean-field scaling with
output_scale = 1/m.

Key path: k_w, k_v = jax.random.split(key); w from k_w; v (or the directions u_j, normalised
rows of a standard Gaussian [m, out_dim]) from k_v.
"""
import math
from typing import Any

import jax
import jax.numpy as jnp

from dynamics.fields import Field
from dynamics.models import common

NAME = "two_layer"


FIELDS = dict(
    **common.DIMS,
    width=Field(100, "m, the number of hidden units", lo=1),
    activation=common.ACTIVATION("relu"),
    init_scale=common.INIT_SCALE,
    balanced=Field(False, "||v_j|| = ||w_j|| at init"),
    v_scale=Field(0.0, "balanced=False: v_j ~ v_scale N(0, I/m) at init (0: init_scale)",
                  lo=0.0),
    output_scale=Field(1.0, "fixed output multiplier (1/m: mean-field)", lo=0, lo_open=True),
)
validate, default_config = common.declare(NAME, FIELDS)


def init(key: jax.Array, cfg: Any, dtype=jnp.float32) -> dict:
  cfg, dtype, (in_dim, out_dim) = common.prepare(validate, cfg, dtype)
  m = int(cfg.width)
  scale = float(cfg.init_scale)
  k_w, k_v = jax.random.split(key)
  w = jax.random.normal(k_w, (m, in_dim), dtype) / math.sqrt(in_dim)
  g = jax.random.normal(k_v, (m, out_dim), dtype)
  if cfg.balanced:
    w_norm = jnp.linalg.norm(w, axis=1, keepdims=True)
    v = scale * (w_norm * g / jnp.linalg.norm(g, axis=1, keepdims=True))
  else:
    v = (float(cfg.v_scale) or scale) * g / math.sqrt(m)
  return {"w": (scale * w).astype(dtype), "v": v.astype(dtype)}


def readout(params: dict, cfg: Any):
  """The output weights as a classifier of the features: (output_scale * v^T [out_dim, m], no
  bias)."""
  return cfg.output_scale * params["v"].T, None


def apply(params: dict, x: jax.Array, cfg: Any, return_features: bool = False):
  w, v = params["w"], params["v"]
  act = common.activation(cfg.activation)
  feats = act(common.flatten(x, w.dtype) @ w.T)
  out = feats @ v
  if cfg.output_scale != 1.0:
    out = cfg.output_scale * out
  return (out, feats) if return_features else out
