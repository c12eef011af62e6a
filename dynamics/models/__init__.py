"""Pure functional models and their registry.

Every model module declares its FIELDS (validate and default_config: common.declare) and defines
init, apply, readout and optionally penalty and layers, as docs/architecture.md ("Adding
things") lists them and the Model below returns them. It honours the init_scale contract:
init_scale multiplies EVERY initial parameter array, so the params of an init_scale=c model
equal c times those of the init_scale=1 model from the same key.

    model = build(cfg, in_dim=data.in_dim, out_dim=data.out_dim)
    params = model.init(key, dtype=jnp.float32)
    y = model.apply(params, x)    # x [N, ...] is flattened to [N, in_dim]; the transformer
                                  # takes integer tokens [N, n_ctx] (n_ctx = in_dim)
"""
import inspect
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import ml_collections

from dynamics import config_utils
from dynamics.config_utils import ConfigError
from dynamics.models import deep_linear, matrix_factorization, mlp, transformer, two_layer, ufm
from dynamics.models import cp_factorization, tubal_factorization

MODELS = {
    "mlp": mlp,
    "deep_linear": deep_linear,
    "two_layer": two_layer,
    "transformer": transformer,
    "ufm": ufm,
    "matrix_factorization": matrix_factorization,
    "cp_factorization": cp_factorization,
    "tubal_factorization": tubal_factorization,
}


class Model(NamedTuple):
  """A built model.

  Attributes:
    init: init(key, dtype=jnp.float32) -> params (plain nested dict of arrays).
    apply: apply(params, x, return_features=False) -> outputs [N, out_dim], or
      (outputs, features [N, d]) with return_features=True.
    config: the complete, validated model config (in_dim and out_dim filled).
    readout: readout(params) -> (W [out_dim, d], b [out_dim] or None): the last layer as a
      classifier of the features apply returns (neural-collapse measures read it).
    penalty: penalty(params) -> a scalar the training loss adds, or None (most models).
    layers: layers(params, x) -> every hidden layer's features, first first (mlp, deep_linear),
      or None.
  """
  init: Callable[..., Any]
  apply: Callable[..., Any]
  config: ml_collections.ConfigDict
  readout: Callable[..., Any] = None
  penalty: Optional[Callable[..., Any]] = None
  layers: Optional[Callable[..., Any]] = None


def _module(name: Any):
  return MODELS[config_utils.check_choice("model.name", name, MODELS)]


def default_config(name: str) -> ml_collections.ConfigDict:
  """Every field of model `name` with its default."""
  return _module(name).default_config()


def validate(cfg: Any) -> ml_collections.ConfigDict:
  """Checks the model section; returns it completed by the chosen model's defaults."""
  return _module(config_utils.get(cfg, "name", None)).validate(cfg)


def fields_of(name: str) -> dict:
  """The declared fields of model `name` (dynamics.fields; `name` itself not included)."""
  return _module(name).FIELDS


def build(cfg: Any, in_dim: Optional[int] = None, out_dim: Optional[int] = None,
          data: Any = None) -> Model:
  """The model of `cfg`, with in_dim / out_dim taken from the arguments where cfg leaves None.

  A cfg value that disagrees with a given argument is a ConfigError; a dimension missing from
  both is a ConfigError. `data` (the Dataset) reaches the init of a model whose init takes a
  `data` argument (deep_linear's init='decoupled' is built from the data's SVD); the others
  never see it.
  """
  cfg = validate(cfg)
  for field, value in (("in_dim", in_dim), ("out_dim", out_dim)):
    if value is None:
      continue
    value = int(value)
    if cfg[field] is None:
      cfg[field] = value
    elif cfg[field] != value:
      raise ConfigError(f"model.{field}={cfg[field]!r} does not match the data's "
                        f"{field}={value}; leave model.{field} None to take it from the data")
  cfg = validate(cfg)
  for field in ("in_dim", "out_dim"):
    if cfg[field] is None:
      raise ConfigError(f"model.{field} is None and no {field} was given to build(); allowed "
                        f"values: an integer >= 1")
  mod = MODELS[cfg.name]
  frozen = ml_collections.ConfigDict(cfg.to_dict())   # private copy: later edits of
                                                       # Model.config do not change the model

  extra = {"data": data} if "data" in inspect.signature(mod.init).parameters else {}

  def init(key, dtype=jnp.float32):
    return mod.init(key, frozen, dtype, **extra)

  if extra:      # an init built from the data: its ConfigErrors surface here, before any run
    jax.eval_shape(init, jax.random.PRNGKey(0))

  def apply(params, x, return_features=False):
    return mod.apply(params, x, frozen, return_features=return_features)

  penalty, layers = getattr(mod, "penalty", None), getattr(mod, "layers", None)
  return Model(init=init, apply=apply, config=cfg,
               readout=lambda params: mod.readout(params, frozen),
               penalty=(lambda params: penalty(params, frozen)) if penalty else None,
               layers=(lambda params, x: layers(params, x, frozen)) if layers else None)
