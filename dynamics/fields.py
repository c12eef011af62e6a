"""Config fields declared once: each component lists its fields with their defaults, kinds and
allowed values, and everything else is derived from that list.

    FIELDS = dict(
        widths=Field([200, 200], "hidden widths; [] is a linear model", lo=1),
        activation=Field("tanh", "hidden activation", choices=ACTIVATIONS),
        init_scale=Field(1.0, "multiplies every initial parameter array", lo=0, lo_open=True),
    )
    defaults(FIELDS)                      # ConfigDict of the defaults
    complete("model", FIELDS, cfg)        # cfg completed by the defaults, every value checked
    describe("model", FIELDS, cfg)        # one line per field: value, allowed values, doc
    validate, default_config = declare("train", FIELDS, check)   # a section's two functions

A bad value stops with a ConfigError that names the dotted field, the value and what is allowed;
an unknown field names the closest declared ones. Cross-field constraints (a batch no larger
than the data, steps a multiple of log_every) stay with the component that has them, written
once as its `check`.
"""
import copy
import difflib
import math
import numbers
from typing import Any, Callable, Iterable, Mapping, Optional

import ml_collections
import numpy as np

from dynamics.config_utils import ConfigError

KINDS = ("bool", "int", "float", "str", "list", "any")


class Field:
  """One declared config field.

  Args:
    default: the default value (its type gives the kind unless `kind` is given).
    doc: a short comment, shown by `describe`.
    kind: 'bool', 'int', 'float' (ints accepted), 'str', 'list' (list or tuple), or 'any'.
    choices: the allowed values (any kind).
    lo, hi, lo_open, hi_open: bounds of a number, or of every item of a list of numbers.
    none: None is allowed too (e.g. "filled from the data", "all classes").
    item: the kind of a list's items ('int' or 'float'); min_len: its shortest allowed length.
    sweepable: a value that may vary across the members of one compiled program.
    check: fn(path, value) for a value the rules above let through: it raises its own
      ConfigError, or returns False to refuse the value with the field's usual message.
    rule: what is allowed, in words, where kind and bounds do not say it all (e.g. "a prime
      >= 3"); replaces the generated text in messages and `describe`.
  """

  def __init__(self, default: Any, doc: str = "", *, kind: Optional[str] = None,
               choices: Optional[Iterable[Any]] = None, lo: Optional[float] = None,
               hi: Optional[float] = None, lo_open: bool = False, hi_open: bool = False,
               none: bool = False, item: Optional[str] = None, min_len: int = 0,
               sweepable: bool = False, check: Optional[Callable[[str, Any], Any]] = None,
               rule: Optional[str] = None):
    self.default, self.doc = default, doc
    self.kind = kind or _kind_of(default)
    if self.kind not in KINDS:
      raise ValueError(f"kind={self.kind!r} is not one of {KINDS}")
    self.choices = tuple(choices) if choices is not None else None
    self.lo, self.hi, self.lo_open, self.hi_open = lo, hi, lo_open, hi_open
    self.none = none or default is None
    self.item = item or (_kind_of(default[0]) if self.kind == "list" and default else None)
    self.min_len, self.sweepable, self.extra, self.rule = min_len, sweepable, check, rule

  # ---- what is allowed, in words ------------------------------------------------------------
  def _bounds(self) -> str:
    lo, hi = _num(self.lo), _num(self.hi)
    if self.lo is not None and self.hi is not None:
      return f"in {'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"
    if self.lo is not None:
      return f"{'>' if self.lo_open else '>='} {lo}"
    if self.hi is not None:
      return f"{'<' if self.hi_open else '<='} {hi}"
    return ""

  def allowed(self, finite: bool = False) -> str:
    """What the field accepts, e.g. "an integer >= 1", "'tanh', 'relu'", "True or False"
    ("a finite number ..." with `finite`, for a message about nan or inf)."""
    if self.rule is not None:
      text = self.rule
    elif self.choices is not None:
      text = ", ".join(repr(c) for c in self.choices)
    elif self.kind == "bool":
      text = "True, False"
    elif self.kind in ("int", "float"):
      noun = "an integer" if self.kind == "int" else f"a {'finite ' if finite else ''}number"
      text = f"{noun} {self._bounds()}".strip()
    elif self.kind == "list":
      noun = {"int": "integers", "float": f"{'finite ' if finite else ''}numbers"}.get(
          self.item, "values")
      text = f"a list of {noun} {self._bounds()}".strip()
      if self.min_len:
        text += f" (at least {self.min_len})"
    else:
      text = "a string" if self.kind == "str" else "any value"
    return text + (" or None" if self.none else "")

  # ---- checking ----------------------------------------------------------------------------
  def _in_bounds(self, v: float) -> bool:
    if not math.isfinite(v):
      return False
    if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
      return False
    return self.hi is None or (v < self.hi if self.hi_open else v <= self.hi)

  def _scalar_ok(self, kind: str, v: Any) -> bool:
    if kind == "bool":
      return isinstance(v, (bool, np.bool_))
    if kind == "int":
      return is_int(v) and self._in_bounds(v)
    if kind == "float":
      return is_number(v) and self._in_bounds(float(v))
    if kind == "str":
      return isinstance(v, str)
    return True

  def check(self, path: str, v: Any) -> None:
    """Raises ConfigError naming `path` when v is not allowed."""
    if v is None and self.none:
      return
    if self.choices is not None:
      # True == 1 in Python: a boolean matches only a boolean choice
      ok = any(isinstance(v, bool) == isinstance(c, bool) and v == c for c in self.choices)
    elif self.kind == "list":
      ok = (isinstance(v, (list, tuple)) and len(v) >= self.min_len and
            all(self._scalar_ok(self.item or "any", x) for x in v))
    else:
      ok = self._scalar_ok(self.kind, v)
    # a check returning False refuses the value with the message below; one raising names more
    if ok and self.extra is not None:
      ok = self.extra(path, v) is not False
    if not ok:
      verb = "allowed values:" if self.rule is None and (
          self.choices is not None or self.kind == "bool") else "it must be"
      finite = any(is_number(x) and not math.isfinite(x)
                   for x in (v if isinstance(v, (list, tuple)) else [v]))
      raise ConfigError(f"{path}={v!r} is not allowed; {verb} {self.allowed(finite)}")


def _num(x: Optional[float]) -> str:
  """A bound as written: 0.0 for a float bound (the value's kind), 0 for an integer one."""
  return repr(float(x)) if isinstance(x, float) else f"{x}"


def _kind_of(default: Any) -> str:
  if isinstance(default, (bool, np.bool_)):
    return "bool"
  if is_int(default):
    return "int"
  if isinstance(default, float):
    return "float"
  if isinstance(default, str):
    return "str"
  if isinstance(default, (list, tuple)):
    return "list"
  return "any"


def is_int(v: Any) -> bool:
  return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def is_number(v: Any) -> bool:
  return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


class Section:
  """A nested section of declared fields (e.g. opt.schedule): completed, checked and described
  field by field, as its parent is."""

  def __init__(self, schema: "Schema", doc: str = ""):
    self.schema, self.doc = schema, doc


Schema = Mapping[str, Any]      # name -> Field or Section


def defaults(schema: Schema, **values: Any) -> ml_collections.ConfigDict:
  """A ConfigDict of every field at its default (`values` first, e.g. name=...)."""
  out = dict(values)
  out.update({k: defaults(f.schema) if isinstance(f, Section) else copy.deepcopy(f.default)
              for k, f in schema.items()})
  return ml_collections.ConfigDict(out, type_safe=False)


def did_you_mean(name: str, allowed: Iterable[str], n: int = 2) -> str:
  """' (did you mean A, B?)' with the allowed names closest to a misspelt `name`, or ''."""
  close = difflib.get_close_matches(name, list(allowed), n=n)
  return f" (did you mean {', '.join(close)}?)" if close else ""


def unknown_fields(section: str, keys: Iterable[str], allowed: Iterable[str]) -> None:
  """Refuses keys outside `allowed`, naming each one's closest allowed fields."""
  allowed = list(allowed)
  unknown = sorted(set(keys) - set(allowed))
  if not unknown:
    return
  named = [k + did_you_mean(k, allowed, 3) for k in unknown]
  raise ConfigError(f"{section}: unknown field(s) {', '.join(named)}; allowed fields: "
                    f"{', '.join(sorted(allowed))}")


def complete(section: str, schema: Schema, cfg: Any,
             extra: Mapping[str, Any] = ()) -> ml_collections.ConfigDict:
  """cfg (ConfigDict, dict or None) completed by the schema's defaults, every value checked.

  `extra` are keys the section holds beside its declared fields (e.g. name='mlp'), kept as
  given. The result is a ConfigDict without type-safety: its values are what was checked.
  """
  cfg = {} if cfg is None else cfg
  keys = list(cfg.keys())
  unknown_fields(section, [k for k in keys if k not in extra], [*schema, *extra])
  out = defaults(schema, **dict(extra))
  for k in keys:
    if k not in extra:       # values as plain Python: nested ConfigDicts become dicts
      v = cfg[k]
      out[k] = v.to_dict() if isinstance(v, ml_collections.ConfigDict) else v
  for k, f in schema.items():
    path, v = f"{section}.{k}", out[k]
    if not isinstance(f, Section):
      f.check(path, v)
    elif isinstance(v, (dict, ml_collections.ConfigDict)):
      out[k] = complete(path, f.schema, v)
    else:
      raise ConfigError(f"{path}={v!r} is not allowed; it must be a section of fields (a dict)")
  return out


def declare(section: str, schema: Schema, check: Callable[[Any], None] = lambda cfg: None,
            **extra: Any) -> tuple[Callable, Callable]:
  """A section's (validate, default_config) from its declared fields: validate(cfg) -> cfg
  completed by the defaults and every field checked (ConfigError naming section.field), then
  the cross-field `check(out)`; default_config() -> every field at its default. `extra` are
  keys the section holds beside its fields (e.g. name='flow')."""
  def validate(cfg: Any) -> ml_collections.ConfigDict:
    out = complete(section, schema, cfg, extra=extra)
    check(out)
    return out
  return validate, lambda: defaults(schema, **extra)


def describe(section: str, schema: Schema, cfg: Any = None) -> list[str]:
  """One line per field: 'section.name = value   # doc; allowed: ...'."""
  lines = []
  for k, f in schema.items():
    given = cfg is not None and k in cfg
    if isinstance(f, Section):
      lines += describe(f"{section}.{k}", f.schema, cfg[k] if given else None)
      continue
    value = cfg[k] if given else f.default
    doc = f"{f.doc}; " if f.doc else ""
    lines.append(f"{section}.{k} = {value!r}   # {doc}allowed: {f.allowed()}")
  return lines


def sweepable(schema: Schema) -> tuple[str, ...]:
  """The names of the fields declared sweepable."""
  return tuple(k for k, f in schema.items() if isinstance(f, Field) and f.sweepable)
