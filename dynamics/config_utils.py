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
