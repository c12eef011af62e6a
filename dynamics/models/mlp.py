"""Fully connected network (multi-layer perceptron), pure functional.

Layers l = 1..L with L = len(widths) + 1, fan-ins n_0 = in_dim, n_l = widths[l-1],
n_L = out_dim. Row-vector convention: W_l has shape [n_{l-1}, n_l], b_l has shape [n_l], and

    h_0 = x                                (flattened to [N, in_dim])
    h_l = act(m_l * (h_{l-1} @ W_l) + b_l)   for l < L
    f   = m_L * (h_{L-1} @ W_L) + b_L        (no activation on the output)

Parameterizations (c = init_scale, fan_in = n_{l-1}); bias multiplier is always 1:

    standard: W_l ~ c * N(0, 1/fan_in),   m_l = 1                  (every l)
    ntk:      W_l ~ c * N(0, 1),          m_l = 1/sqrt(fan_in)     (every l)
    mup:      W_l ~ c * N(0, 1),          m_l = 1/sqrt(fan_in)     (l < L)
                                          m_L = 1/fan_in           (output layer, mean-field)

So with the same key, ntk weights equal the standard ones times sqrt(fan_in) and the two
forward passes agree at init (they differ in their gradient scales).

Initialisation (`init`):
    'normal': W as above; b_l = c * bias_init (a constant).
    'torch':  PyTorch nn.Linear default, W_l, b_l ~ c * U(-1/sqrt(fan_in), 1/sqrt(fan_in));
              only with parameterization='standard' and bias_init=0.0.

Key path: k_1..k_L = jax.random.split(key, L); layer l uses (kW, kb) = jax.random.split(k_l).

Leaves: {'W1', 'b1', ..., 'WL', 'bL'} (no 'b*' when bias=False). Features (return_features)
are the last hidden activation h_{L-1} [N, widths[-1]] (the flattened input if widths = []).
"""
import math
from typing import Any

import jax
import jax.numpy as jnp

from dynamics.fields import Field
from dynamics.config_utils import ConfigError
from dynamics.models import common

NAME = "mlp"
PARAMETERIZATIONS = ("standard", "ntk", "mup")
INITS = ("normal", "torch")


FIELDS = dict(
    **common.DIMS,
    widths=common.WIDTHS([200, 200], "hidden widths; [] is a linear model"),
    activation=common.ACTIVATION("tanh"),
    bias=Field(True, "biases in every layer"),
    init_scale=common.INIT_SCALE,
    parameterization=Field("standard", "standard, ntk or mup (module docstring)",
                           choices=PARAMETERIZATIONS),
    init=Field("normal", "normal, or torch (PyTorch's nn.Linear default)", choices=INITS),
    bias_init=Field(0.0, "constant initial bias (times init_scale), init='normal' only"),
)


def _check(cfg) -> None:
  if cfg.init == "torch":
    if cfg.parameterization != "standard":
      raise ConfigError(f"model.init='torch' requires model.parameterization='standard' "
                        f"(got {cfg.parameterization!r}); allowed values with 'torch': 'standard'")
    if cfg.bias_init != 0.0:
      raise ConfigError(f"model.bias_init={cfg.bias_init!r} is not allowed with model.init="
                        f"'torch' (biases are uniform); allowed values: 0.0")


validate, default_config = common.declare(NAME, FIELDS, _check)


def multipliers(cfg, in_dim: int, out_dim: int) -> list[float]:
  """The forward multiplier m_l of each layer (see module docstring)."""
  fans = common.layer_dims(cfg, in_dim, out_dim)[:-1]
  if cfg.parameterization == "standard":
    return [1.0] * len(fans)
  ms = [1.0 / math.sqrt(f) for f in fans]
  if cfg.parameterization == "mup":
    ms[-1] = 1.0 / fans[-1]
  return ms


def init(key: jax.Array, cfg: Any, dtype=jnp.float32) -> dict:
  cfg, dtype, (in_dim, out_dim) = common.prepare(validate, cfg, dtype)
  dims = common.layer_dims(cfg, in_dim, out_dim)
  n_layers = len(dims) - 1
  scale = float(cfg.init_scale)
  keys = jax.random.split(key, n_layers)
  params = {}
  for l in range(1, n_layers + 1):
    fan_in, fan_out = dims[l - 1], dims[l]
    k_w, k_b = jax.random.split(keys[l - 1])
    if cfg.init == "torch":
      bound = 1.0 / math.sqrt(fan_in)
      w = jax.random.uniform(k_w, (fan_in, fan_out), dtype, minval=-bound, maxval=bound)
      b = jax.random.uniform(k_b, (fan_out,), dtype, minval=-bound, maxval=bound)
    else:
      std = 1.0 / math.sqrt(fan_in) if cfg.parameterization == "standard" else 1.0
      w = std * jax.random.normal(k_w, (fan_in, fan_out), dtype)
      b = jnp.full((fan_out,), cfg.bias_init, dtype)
    params[f"W{l}"] = (scale * w).astype(dtype)
    if cfg.bias:
      params[f"b{l}"] = (scale * b).astype(dtype)
  return params


def readout(params: dict, cfg: Any):
  """The last layer as a classifier of the features: (W [out_dim, d], b [out_dim] or None) with
  outputs = features @ W.T + b (W includes the parameterization's last multiplier)."""
  n = len(cfg.widths) + 1
  w = params[f"W{n}"]
  m = multipliers(cfg, params["W1"].shape[0], w.shape[1])[-1]
  return (w.T if m == 1.0 else m * w.T), params.get(f"b{n}")


def _forward(params: dict, x: jax.Array, cfg: Any):
  """(outputs, [the flattened input, h_1, ..., h_{L-1}])."""
  n_layers = len(cfg.widths) + 1
  w1 = params["W1"]
  in_dim, out_dim = w1.shape[0], params[f"W{n_layers}"].shape[1]
  ms = multipliers(cfg, in_dim, out_dim)
  act = common.activation(cfg.activation)
  h = common.flatten(x, w1.dtype)
  hiddens = [h]
  for l in range(1, n_layers + 1):
    z = h @ params[f"W{l}"]
    if ms[l - 1] != 1.0:
      z = ms[l - 1] * z
    if cfg.bias:
      z = z + params[f"b{l}"][None, :]
    if l < n_layers:
      h = act(z)
      hiddens.append(h)
  return z, hiddens                    # z: the output layer's, with no activation


def layers(params: dict, x: jax.Array, cfg: Any) -> list:
  """The hidden activations h_1, ..., h_{L-1} (each [N, width]), first layer first."""
  return _forward(params, x, cfg)[1][1:]


def apply(params: dict, x: jax.Array, cfg: Any, return_features: bool = False):
  out, hiddens = _forward(params, x, cfg)
  return (out, hiddens[-1]) if return_features else out
