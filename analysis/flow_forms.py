"""Optimizers in continuous time, for the central flows (analysis/central_flow.py): each of the
engine's gd, scalar_rmsprop and rmsprop (dynamics/optimizers.py) written as preconditioned GD
with a state that follows an ODE. Lives beside the flows, the only code that uses it."""
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from dynamics import config_utils as cu
from dynamics import optimizers

FLOW_OPTIMIZERS = ("gd", "scalar_rmsprop", "rmsprop")


class FlowForm(NamedTuple):
  """An optimizer written as preconditioned GD in continuous time (Cohen et al. 2025, "Central
  Flows", Sec. 3-5; REFERENCE.md Sec. 2), for the central-flow code in analysis/central_flow.py.

  The state s is nu (a scalar for gd, where it is unused, and for scalar_rmsprop; a flat [n]
  vector for rmsprop). The step is w <- w - P(s)^{-1} g with P(nu) = (sqrt(nu) + eps) / eta
  (gd: 1 / eta), exactly the engine's preconditioner (build(cfg).preconditioner) with a
  constant schedule and no bias correction. The state follows
      ds/dt = ((1 - b2) / b2) (E[g^2] - nu)     (rmsprop: per coordinate; scalar: E||g||^2),
  the continuous form of the engine's nu' = b2 nu + (1 - b2) g^2 written in terms of the nu'
  that the step uses: nu' - nu = ((1 - b2) / b2) (g^2 - nu') holds exactly.

  Attributes:
    name: 'gd', 'scalar_rmsprop' or 'rmsprop'.
    eta: the learning rate.
    b2, eps: rmsprop hyperparameters (gd: 0).
    scalar: True when nu is one scalar (gd, scalar_rmsprop).
  """
  name: str
  eta: float
  b2: float
  eps: float

  @property
  def scalar(self) -> bool:
    return self.name != "rmsprop"

  def init_state(self, grad_flat: jax.Array) -> jax.Array:
    """nu at the start: the squared gradient there (gd: 0, unused)."""
    if self.name == "gd":
      return jnp.zeros((), grad_flat.dtype)
    return jnp.sum(grad_flat ** 2) if self.scalar else grad_flat ** 2

  def p(self, nu: jax.Array) -> jax.Array:
    """P(nu): a scalar (gd, scalar_rmsprop) or [n]."""
    if self.name == "gd":
      return jnp.asarray(1 / self.eta, nu.dtype)
    return (jnp.sqrt(nu) + self.eps) / self.eta

  def dp_dnu(self, nu: jax.Array) -> jax.Array:
    """dP/dnu = 1 / (2 eta sqrt(nu)) (gd: 0). Where nu = 0 (a coordinate that has never seen
    a gradient, so dnu/dt = 0 there too) it is set to 0 instead of infinity."""
    if self.name == "gd":
      return jnp.zeros_like(nu)
    pos = nu > 0
    return jnp.where(pos, 1 / (2 * self.eta * jnp.sqrt(jnp.where(pos, nu, 1))), 0)

  def dstate(self, nu: jax.Array, sq: jax.Array) -> jax.Array:
    """ds/dt given sq = E[g^2] ([n], rmsprop) or E||g||^2 (scalar_rmsprop); gd: 0."""
    if self.name == "gd":
      return jnp.zeros_like(nu)
    return (1 - self.b2) / self.b2 * (sq - nu)


def flow_form(cfg: Any) -> FlowForm:
  """The FlowForm of the `opt` section (gd, scalar_rmsprop or rmsprop; constant schedule,
  no weight decay, no bias correction, no perpgrad: the settings central flows describe).

  Raises:
    ConfigError: another optimizer, or a field the continuous form does not cover.
  """
  cfg = optimizers.validate(cfg)
  name = cu.check_choice("opt.name", cfg.name, FLOW_OPTIMIZERS)
  fixed = dict(weight_decay=0.0, perpgrad=False, bias_correction=False)
  for field, want in fixed.items():
    if field in cfg and cfg[field] != want:
      raise cu.ConfigError(f"opt.{field}={cfg[field]!r} is not allowed for a central flow; "
                           f"it must be {want!r}")
  if cfg.schedule.name != "constant":
    raise cu.ConfigError(f"opt.schedule.name={cfg.schedule.name!r} is not allowed for a "
                         "central flow; it must be 'constant'")
  b2, eps = (float(cfg.b2), float(cfg.eps)) if name != "gd" else (0.0, 0.0)
  return FlowForm(name=name, eta=float(cfg.learning_rate), b2=b2, eps=eps)
