"""The unconstrained features model (Mixon et al. 2020; Zhu et al. 2021; REFERENCE.md Sec. 4):
the N features h_i in R^d and the classifier W [C, d], b [C] are all free parameters,

    outputs_i = W h_i + b,

trained on the run's loss (cross_entropy or mse) plus this model's penalty

    lambda_W/2 ||W||_F^2 + lambda_H/2 ||H||_F^2 + lambda_b/2 ||b||^2
      + anchor_weight/(2N) ||H - H0||_F^2,

the last term the perturbed model of Tirer, Huang, Niles-Weed 2023 (features kept near a given
H0 = anchor_scale * N(0, 1) [N, d], drawn from PRNGKey(anchor_seed)); anchor_weight = 0 is the
plain model, whose global minimizers are collapsed (analysis.neural_collapse.ufm_optimum).

Inputs are one-hot sample indicators (data 'ufm_samples', x_i = e_i in R^N), so the features
are x @ H and any batch of samples picks its rows. The penalty is added to the training loss by
the engine (dynamics.train.Problem.batch_loss); the logged train_loss is the loss alone.

Leaves: H [N, d] (N = in_dim), W [C, d] (C = out_dim), b [C] (bias=True). Init:
H, W ~ init_scale * N(0, 1/d), b = 0; key path (kH, kW) = jax.random.split(key).
"""
from typing import Any

import jax
import jax.numpy as jnp

from dynamics.fields import Field
from dynamics.models import common

NAME = "ufm"

_LAMBDA = dict(lo=0.0)
FIELDS = dict(
    in_dim=Field(None, "samples N, filled from the data ('ufm_samples')", kind="int", lo=1),
    out_dim=Field(None, "classes C, filled from the data", kind="int", lo=1),
    dim=Field(16, "feature dimension d (collapse to a simplex ETF needs d >= C - 1)", lo=1),
    bias=Field(True, "a classifier bias b"),
    init_scale=common.INIT_SCALE,
    lambda_W=Field(5e-3, "weight decay of W", **_LAMBDA),
    lambda_H=Field(5e-3, "weight decay of the features H", **_LAMBDA),
    lambda_b=Field(0.0, "weight decay of b", **_LAMBDA),
    anchor_weight=Field(0.0, "beta of the perturbed model: beta/(2N) ||H - H0||^2", **_LAMBDA),
    anchor_scale=Field(1.0, "H0 = anchor_scale * N(0, 1)", **_LAMBDA),
    anchor_seed=Field(0, "seed of H0", lo=0),
)

validate, default_config = common.declare(NAME, FIELDS)


def init(key: jax.Array, cfg: Any, dtype=jnp.float32) -> dict:
  n, c = common.require_dims(cfg)
  k_h, k_w = jax.random.split(key)
  s = cfg.init_scale / jnp.sqrt(cfg.dim)
  params = {"H": (s * jax.random.normal(k_h, (n, cfg.dim))).astype(dtype),
            "W": (s * jax.random.normal(k_w, (c, cfg.dim))).astype(dtype)}
  if cfg.bias:
    params["b"] = jnp.zeros((c,), dtype)
  return params


def anchor(params: dict, cfg: Any) -> jax.Array:
  """H0 of the perturbed model, [N, d] in the params' dtype."""
  h = params["H"]
  return cfg.anchor_scale * jax.random.normal(jax.random.PRNGKey(cfg.anchor_seed), h.shape,
                                              h.dtype)


def penalty(params: dict, cfg: Any) -> jax.Array:
  """lambda_W/2 ||W||^2 + lambda_H/2 ||H||^2 + lambda_b/2 ||b||^2 + beta/(2N) ||H - H0||^2."""
  h, w = params["H"], params["W"]
  out = cfg.lambda_W / 2 * jnp.sum(w ** 2) + cfg.lambda_H / 2 * jnp.sum(h ** 2)
  if "b" in params:
    out = out + cfg.lambda_b / 2 * jnp.sum(params["b"] ** 2)
  if cfg.anchor_weight > 0:
    out = out + cfg.anchor_weight / (2 * h.shape[0]) * jnp.sum((h - anchor(params, cfg)) ** 2)
  return out


def readout(params: dict, cfg: Any):
  """The classifier (W [C, d], b [C] or None)."""
  return params["W"], params.get("b")


def apply(params: dict, x: jax.Array, cfg: Any, return_features: bool = False):
  h = common.flatten(x, params["H"].dtype) @ params["H"]
  out = h @ params["W"].T
  if "b" in params:
    out = out + params["b"][None, :]
  return (out, h) if return_features else out
