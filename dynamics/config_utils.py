"""Small helpers that validate config values and name the offending field in the error."""
from typing import Any, Iterable

import jax
import numpy as np


class ConfigError(ValueError):
  """A config value is not allowed; the message names the field and the allowed values."""


def get(cfg: Any, name: str, default: Any = None) -> Any:
  """cfg.name if present (ConfigDict, dict or object), else default."""
  if cfg is None:
    return default
  if hasattr(cfg, "get"):
    try:
      return cfg.get(name, default)
    except TypeError:
      pass
  return getattr(cfg, name, default)


def require_x64(what: str) -> None:
  """Raises RuntimeError when jax x64 is off, saying that `what` needs it and how to turn it on."""
  if jax.dtypes.canonicalize_dtype(np.float64) != np.dtype(np.float64):
    raise RuntimeError(f"{what} needs jax x64: set train.float64=True or "
                       "jax.config.update('jax_enable_x64', True)")


def check_choice(field: str, value: Any, allowed: Iterable[Any]) -> Any:
  allowed = list(allowed)
  if value not in allowed:
    raise ConfigError(f"{field}={value!r} is not allowed; allowed values: "
                      f"{', '.join(repr(a) for a in allowed)}")
  return value
