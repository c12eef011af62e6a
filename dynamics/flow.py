"""Gradient flow dw/dt = -grad L(w), integrated by classical Runge-Kutta 4 (opt.name='flow').

The reference trajectory that gradient descent is compared with (Cohen et al. 2021, App. I):
the step is dt = min(alpha / S(w), max_step), with S(w) the largest Hessian eigenvalue in
magnitude, estimated by `power_iters` power iterations warm-started from the previous step's
vector (so a few iterations per step suffice once the flow is under way). The largest MAGNITUDE
is the right quantity here: RK4's accuracy and stability depend on dt * |lambda| for every
eigenvalue, negative ones included. With alpha ~ 1 the flow is resolved finely enough that
halving alpha does not move the trajectory visibly (tested).

The flow's state stands where an optimizer state would: FlowState(time, v, sharpness), and the
training loop logs `flow_time` so GD at step k (time k * eta) can be plotted against the flow.
"""
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from dynamics import fields
from dynamics.fields import Field

NAME = "flow"


class FlowState(NamedTuple):
  time: jax.Array         # integrated time t = sum of dt
  v: Any                  # power-iteration vector (params-shaped, unit norm)
  sharpness: jax.Array    # latest estimate of max |eigenvalue of H|


# The `opt` section of the gradient flow, declared once (dynamics.fields).
FIELDS = dict(
    alpha=Field(1.0, "dt = min(alpha / S(w), max_step)", lo=0, lo_open=True),
    max_step=Field(1.0, "upper bound on dt (time units: GD's step k is time k * eta)", lo=0,
                   lo_open=True),
    power_iters=Field(5, "warm-started power iterations per step for S(w)", lo=1),
)
validate, default_config = fields.declare("opt", FIELDS, name=NAME)


def _dot(a, b) -> jax.Array:
  return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _scale(tree, c):
  return jax.tree.map(lambda x: x * c.astype(x.dtype), tree)


def _axpy(a, x, y):
  """y + a * x over pytrees."""
  return jax.tree.map(lambda xi, yi: yi + a.astype(yi.dtype) * xi, x, y)


class GradientFlow(NamedTuple):
  """The training loop's optimizer interface (dynamics.optimizers.Optimizer's start, step and
  metrics) for the flow: init(params, key) -> FlowState; step(loss_fn, params, state) ->
  (loss, params, state)."""
  alpha: float
  max_step: float
  power_iters: int
  name: str = NAME
  hparam_names: tuple = ()   # nothing to sweep inside the program
  preconditioner: None = None   # the flow has none (probes that need one refuse it)
  adaptive: bool = False

  def start(self, params, key, hparams) -> FlowState:
    return self.init(params, jax.random.fold_in(key, 7))

  def metrics(self, state: FlowState) -> dict:
    """Logged at every log point: the integrated time (GD's step k is time k * eta) and S(w)."""
    return dict(flow_time=state.time, flow_sharpness=state.sharpness)

  def init(self, params, key) -> FlowState:
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    v = jax.tree.unflatten(treedef, [jax.random.normal(k, x.shape, x.dtype)
                                     for k, x in zip(keys, leaves)])
    v = _scale(v, 1.0 / jnp.sqrt(_dot(v, v)))
    dtype = leaves[0].dtype
    return FlowState(time=jnp.zeros((), dtype), v=v, sharpness=jnp.zeros((), dtype))

  def step(self, loss_fn, params, state: FlowState):
    """One RK4 step of dw/dt = -grad loss_fn(w) with dt = min(alpha / S(w), max_step); returns
    the loss at params too."""
    grad = jax.grad(loss_fn)
    hvp = lambda v: jax.jvp(grad, (params,), (v,))[1]

    def power(_, carry):
      v, _ = carry
      hv = hvp(v)
      norm = jnp.sqrt(_dot(hv, hv))
      return _scale(hv, 1.0 / jnp.maximum(norm, 1e-30)), norm

    v, s = jax.lax.fori_loop(0, self.power_iters, power, (state.v, state.sharpness))
    dtype = state.time.dtype
    dt = jnp.minimum(jnp.asarray(self.alpha, dtype) / jnp.maximum(s, 1e-30),
                     jnp.asarray(self.max_step, dtype))
    k1 = grad(params)
    k2 = grad(_axpy(-dt / 2, k1, params))
    k3 = grad(_axpy(-dt / 2, k2, params))
    k4 = grad(_axpy(-dt, k3, params))
    direction = jax.tree.map(lambda a, b, c, d: a + 2 * b + 2 * c + d, k1, k2, k3, k4)
    new = _axpy(-dt / 6, direction, params)
    return loss_fn(params), new, FlowState(time=state.time + dt, v=v, sharpness=s)


def build(cfg: Any) -> GradientFlow:
  c = validate(cfg)
  return GradientFlow(alpha=float(c.alpha), max_step=float(c.max_step),
                      power_iters=int(c.power_iters))
