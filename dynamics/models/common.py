"""Helpers shared by the model files: activations, input flattening, shared fields."""
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

from dynamics import config_utils, fields
from dynamics.fields import Field


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    # Exact (erf) GELU, as PyTorch's default nn.GELU().
    "gelu": lambda z: jax.nn.gelu(z, approximate=False),
    "elu": jax.nn.elu,            # alpha = 1
    "softplus": jax.nn.softplus,  # log(1 + exp(z))
    "linear": lambda z: z,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
  # apply may be called with a config that never went through validate
  return ACTIVATIONS[config_utils.check_choice("model.activation", name, ACTIVATIONS)]


# Fields every model has (dynamics.fields declarations).
DIMS = dict(
    in_dim=Field(None, "filled from the data by dynamics.models.build", kind="int", lo=1),
    out_dim=Field(None, "filled from the data by dynamics.models.build", kind="int", lo=1),
)
INIT_SCALE = Field(1.0, "multiplies every initial parameter array", lo=0, lo_open=True,
                   sweepable=True)
WIDTHS = lambda default, doc: Field(default, doc, kind="list", item="int", lo=1)
ACTIVATION = lambda default, names=tuple(ACTIVATIONS): Field(
    default, "hidden activation (gelu: exact erf)", choices=names)


def declare(name: str, schema: dict, check: Callable[[Any], None] = lambda cfg: None):
  """fields.declare of the model section of model `name` (validate, default_config), whose
  validate also refuses another model.name."""
  complete, default_config = fields.declare("model", schema, check, name=name)

  def validate(cfg: Any):
    given = cfg.get("name", name) if hasattr(cfg, "get") else name
    config_utils.check_choice("model.name", given, [name])
    return complete(cfg)
  return validate, default_config


def require_dims(cfg: Any) -> tuple[int, int]:
  """(in_dim, out_dim), refusing a config that leaves either unset."""
  for f in ("in_dim", "out_dim"):
    if cfg[f] is None:
      raise config_utils.ConfigError(f"model.{f} is None; set it or build the model with "
                                     f"dynamics.models.build(cfg, in_dim=..., out_dim=...)")
  return int(cfg.in_dim), int(cfg.out_dim)


def require_scalar_output(cfg: Any, reads: str) -> None:
  """Refuses out_dim other than 1 (None: filled later) for a model that reads one scalar per
  example (the factorization models); `reads` names that scalar, e.g. '<X, W>'."""
  if cfg.out_dim is not None and cfg.out_dim != 1:
    raise config_utils.ConfigError(f"model.out_dim={cfg.out_dim} is not allowed; {cfg.name} "
                                   f"reads one scalar {reads} per example: out_dim must be 1")


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
