"""The sweep grid: which config values vary across the members of one compiled program.

`config.sweep` mirrors the config's sections, each leaf a list of values; the grid is their
Cartesian product over the axes in alphabetical order of their dotted names (the order a
ConfigDict iterates in), the last axis varying fastest:

    config.sweep.seed = [0, 1]
    config.sweep.opt.learning_rate = [0.01, 0.02, 0.04]
    # -> 6 members: (opt.learning_rate=0.01, seed=0), (0.01, 1), (0.02, 0), ...

Only values that can be traced arrays may vary (the whole point is one program for all members):
the seed, the optimizer's hyperparameters, and the model fields declared sweepable (init_scale).
"""
import itertools
from typing import Any, NamedTuple

import numpy as np

from dynamics import fields, models
from dynamics.config_utils import ConfigError

# The fields some model declares sweepable=True (dynamics.fields), in alphabetical order.
MODEL_SWEEPABLE = tuple(sorted({k for name in models.MODELS
                                for k in fields.sweepable(models.fields_of(name))}))


class Sweep(NamedTuple):
  """The members of a sweep.

  Attributes:
    axes: dotted names of the swept fields, e.g. ('seed', 'opt.learning_rate').
    members: one dict {axis: value} per member, in grid order.
  """
  axes: tuple[str, ...]
  members: tuple[dict[str, Any], ...]

  @property
  def size(self) -> int:
    return len(self.members)

  def column(self, axis: str, default: Any) -> np.ndarray:
    """The value of `axis` for every member (`default` where the axis is not swept)."""
    return np.asarray([m.get(axis, default) for m in self.members])


def _flatten(prefix: str, node: Any) -> list[tuple[str, Any]]:
  if not hasattr(node, "items"):
    return [(prefix, node)]
  return [kv for k, v in node.items() for kv in _flatten(f"{prefix}.{k}" if prefix else k, v)]


def allowed_axes(opt_hparams: tuple[str, ...],
                 model_sweepable: tuple[str, ...] = MODEL_SWEEPABLE) -> list[str]:
  """The dotted names a sweep may vary: the seed, the optimizer's array hyperparameters and the
  model's sweepable fields (by default those of any model)."""
  return (["seed"] + [f"opt.{h}" for h in opt_hparams] +
          [f"model.{h}" for h in model_sweepable])


def expand(sweep_cfg: Any, opt_hparams: tuple[str, ...],
           model_sweepable: tuple[str, ...] = MODEL_SWEEPABLE) -> Sweep:
  """Expands config.sweep into its members, refusing axes that cannot be traced.

  Args:
    sweep_cfg: the `sweep` section (nested ConfigDict or dict of lists); empty means one member.
    opt_hparams: the hyperparameter names the chosen optimizer carries as arrays.
    model_sweepable: the chosen model's sweepable fields (dynamics.fields.sweepable).
  """
  leaves = _flatten("", sweep_cfg) if sweep_cfg is not None else []
  allowed = allowed_axes(opt_hparams, model_sweepable)
  for axis, values in leaves:
    if axis not in allowed:
      raise ConfigError(f"sweep.{axis} cannot be swept inside one program; allowed sweep "
                        f"axes: {', '.join(allowed)}")
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or not len(values):
      raise ConfigError(f"sweep.{axis}={values!r} must be a non-empty list of values")
    for v in values:
      if isinstance(v, bool) or not isinstance(v, (int, float, np.number)):
        raise ConfigError(f"sweep.{axis} holds {v!r}; sweep values must be numbers")
    if axis == "seed" and any(int(v) != v or v < 0 for v in values):
      raise ConfigError(f"sweep.seed={list(values)!r} must hold non-negative integers")
  leaves = sorted(leaves, key=lambda kv: kv[0])
  axes = tuple(a for a, _ in leaves)
  grid = itertools.product(*[list(v) for _, v in leaves])
  return Sweep(axes=axes, members=tuple(dict(zip(axes, combo)) for combo in grid))
