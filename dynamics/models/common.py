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


def prepare(validate: Callable[[Any], Any], cfg: Any, dtype: Any):
  """What every init starts from: (validate(cfg), check_dtype(dtype), require_dims(cfg))."""
  cfg = validate(cfg)
  return cfg, check_dtype(dtype), require_dims(cfg)


def layer_dims(cfg: Any, in_dim: int, out_dim: int) -> list[int]:
  """[in_dim, *widths, out_dim]: the fan-ins n_0 .. n_{L-1} and fan-outs n_1 .. n_L."""
  return [in_dim] + [int(w) for w in cfg.widths] + [out_dim]


def scaled_normal(key: jax.Array, shape: tuple, scale: float, dtype: Any) -> jax.Array:
  """scale * N(0, 1) of `shape`, drawn and returned in `dtype`."""
  return (scale * jax.random.normal(key, shape, dtype)).astype(dtype)


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


def check_factorization(cfg: Any, reads: str, shape: Callable[[Any], tuple],
                        product: str) -> None:
  """The checks of a factorization model with a symmetric option: one scalar `reads` per
  example, in_dim fitting `shape(cfg)` (its own ConfigError) and, with factorization=
  'symmetric', rows = cols (`product` names the square, e.g. 'U U^T')."""
  require_scalar_output(cfg, reads)
  if cfg.in_dim is not None:
    rows, cols = shape(cfg)[:2]
    if cfg.factorization == "symmetric" and rows != cols:
      raise config_utils.ConfigError(f"model.rows={cfg.rows} is not allowed with "
                                     f"model.factorization='symmetric'; {product} is square "
                                     f"(rows = cols)")


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


def inner_products(x: jax.Array, t: jax.Array, name: str) -> tuple[jax.Array, jax.Array]:
  """(<x_i, t> [N, 1], the flattened inputs [N, t.size]) for x [N, *t.shape] or [N, t.size];
  `name` names t in the error for inputs of another size."""
  feats = flatten(x, t.dtype)
  if feats.shape[1] != t.size:
    raise ValueError(f"x has {feats.shape[1]} entries per example; {name} is "
                     f"{' x '.join(map(str, t.shape))} = {t.size}")
  return (feats @ t.reshape(-1))[:, None], feats
