"""Small helpers that validate config values and name the offending field in the error."""
from typing import Any, Iterable


class ConfigError(ValueError):
  """A config value is not allowed; the message names the field and the allowed values."""


def get(cfg: Any, name: str, default: Any = None) -> Any:
  """cfg.name if present (ConfigDict, dict or object), else default."""
  if cfg is None:
    return default
  if isinstance(cfg, dict) or hasattr(cfg, "get"):
    try:
      return cfg.get(name, default)
    except TypeError:
      pass
  return getattr(cfg, name, default)


def check_choice(field: str, value: Any, allowed: Iterable[Any]) -> Any:
  allowed = list(allowed)
  if value not in allowed:
    raise ConfigError(f"{field}={value!r} is not allowed; allowed values: "
                      f"{', '.join(repr(a) for a in allowed)}")
  return value


def check_positive(field: str, value: Any, allow_zero: bool = False) -> Any:
  ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
      value >= 0 if allow_zero else value > 0)
  if not ok:
    bound = ">= 0" if allow_zero else "> 0"
    raise ConfigError(f"{field}={value!r} is not allowed; it must be a number {bound}")
  return value


def check_range(field: str, value: Any, lo: float, hi: float,
                lo_open: bool = False, hi_open: bool = False) -> Any:
  ok = isinstance(value, (int, float)) and not isinstance(value, bool)
  if ok:
    ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
  if not ok:
    lb, hb = ("(" if lo_open else "["), (")" if hi_open else "]")
    raise ConfigError(f"{field}={value!r} is not allowed; it must lie in {lb}{lo}, {hi}{hb}")
  return value


def check_fields(section: str, cfg: Any, defaults: Any) -> None:
  """Refuses fields of cfg that defaults does not have, naming them (and the closest allowed
  ones) and the allowed ones."""
  from dynamics.fields import unknown_fields     # (fields imports this module)
  unknown_fields(section, cfg.keys(), defaults.keys())


def with_defaults(section: str, cfg: Any, defaults: Any) -> Any:
  """A copy of defaults updated by cfg, after check_fields. Returns a ConfigDict."""
  import ml_collections
  check_fields(section, cfg, defaults)
  out = ml_collections.ConfigDict(dict(defaults))
  for k in cfg.keys():
    out[k] = cfg[k]
  return out
