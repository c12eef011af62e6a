"""Helpers shared by the model files: activations, input flattening, field checks."""
import math
import numbers
from typing import Any, Callable

import jax
import jax.numpy as jnp

from dynamics import config_utils
from dynamics.config_utils import ConfigError


def _linear(z):
  return z


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    # Exact (erf) GELU, as PyTorch's default nn.GELU().
    "gelu": lambda z: jax.nn.gelu(z, approximate=False),
    "elu": jax.nn.elu,            # alpha = 1
    "softplus": jax.nn.softplus,  # log(1 + exp(z))
    "linear": _linear,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
  check_activation(name)
  return ACTIVATIONS[name]


def check_activation(value: Any, field: str = "model.activation") -> None:
  config_utils.check_choice(field, value, ACTIVATIONS.keys())


def is_int(v: Any) -> bool:
  return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def check_pos_int(field: str, value: Any, allow_none: bool = False) -> None:
  if value is None and allow_none:
    return
  if not is_int(value) or value < 1:
    extra = " (or None, filled from the data)" if allow_none else ""
    raise ConfigError(f"{field}={value!r} is not allowed; it must be an integer >= 1{extra}")


def check_bool(field: str, value: Any) -> None:
  if not isinstance(value, bool):
    raise ConfigError(f"{field}={value!r} is not allowed; allowed values: True, False")


def check_widths(field: str, value: Any) -> None:
  if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
    raise ConfigError(f"{field}={value!r} is not allowed; it must be a list of integers >= 1")
  for w in value:
    if not is_int(w) or w < 1:
      raise ConfigError(f"{field}={value!r} is not allowed; it must be a list of integers >= 1")


def complete(cfg: Any, defaults: Any) -> Any:
  """cfg completed by defaults (check_fields first); a ConfigDict without type-safety, so that a
  value of the wrong type reaches the field's own check (a ConfigError naming the field) instead
  of a TypeError from ml_collections."""
  import ml_collections
  config_utils.check_fields("model", cfg, defaults)
  out = ml_collections.ConfigDict(defaults.to_dict(), type_safe=False)
  for k in cfg.keys():
    out[k] = cfg[k]
  return out


def check_common(cfg: Any) -> None:
  """in_dim, out_dim (positive int or None) and init_scale (> 0)."""
  check_pos_int("model.in_dim", cfg.in_dim, allow_none=True)
  check_pos_int("model.out_dim", cfg.out_dim, allow_none=True)
  config_utils.check_positive("model.init_scale", cfg.init_scale)


def require_dims(cfg: Any) -> tuple[int, int]:
  """(in_dim, out_dim), refusing a config that leaves either unset."""
  for f in ("in_dim", "out_dim"):
    if cfg[f] is None:
      raise ConfigError(f"model.{f} is None; set it or build the model with "
                        f"dynamics.models.build(cfg, in_dim=..., out_dim=...)")
  return int(cfg.in_dim), int(cfg.out_dim)


def check_dtype(dtype: Any) -> Any:
  dtype = jnp.dtype(dtype)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"dtype={dtype} is not allowed; the model dtype must be floating "
                     f"(float32 or float64)")
  return dtype


def flatten(x: jax.Array, dtype: Any) -> jax.Array:
  """[N, ...] -> [N, prod(...)] in the params' dtype."""
  x = jnp.asarray(x)
  if x.ndim < 1:
    raise ValueError(f"x must have a leading batch axis, got shape {x.shape}")
  return x.reshape(x.shape[0], math.prod(x.shape[1:])).astype(dtype)
