"""Optimizers as pure optax-style init/update pairs whose hyperparameters are arrays in the state.

Because the hyperparameters (learning rate, weight decay, momentum, b1, b2, eps) live in
`OptState.hparams` as scalar arrays, one compiled program can vmap a sweep over them:

    opt = build(cfg)
    state = jax.vmap(lambda lr: set_hparams(opt.init(params), learning_rate=lr))(lrs)

Updates follow optax's sign convention (params + updates; optax.apply_updates works).

Each optimizer is one small definition (a Rule in RULES): its fields beyond the common ones,
the moments it keeps and its step, written as u = -lr_t d / q with d the direction (the
gradient, a momentum buffer or Adam's m_hat) and q the denominator (1, or sqrt(nu_hat) + eps).
Its diagonal preconditioner is P = q / lr_t, so the step is u = -P^{-1} d; edge-of-stability
theory compares lambda_max(P^{-1} H) with the rule's stability factor (stability_factor). The
continuous-time forms the central flows integrate live beside the flows (analysis/flow_forms.py).
"""
import math
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import ml_collections
import optax

from dynamics import config_utils as cu
from dynamics import fields
from dynamics.config_utils import ConfigError
from dynamics.fields import Field, Section

SCHEDULES = ("constant", "warmup", "cosine", "wsd")

SCHEDULE_FIELDS = dict(
    name=Field("constant", "the learning-rate multiplier (schedule_fn)", choices=SCHEDULES),
    warmup_steps=Field(0, "linear warmup length (multiplier (count + 1) / warmup_steps)", lo=0),
    total_steps=Field(0, "cosine / wsd: the step at which the multiplier reaches "
                      "final_fraction", lo=0),
    final_fraction=Field(0.0, "cosine / wsd: the final multiplier", lo=0.0, hi=1.0),
    decay_fraction=Field(0.2, "wsd: the linear decay spans the last decay_fraction * "
                         "total_steps", lo=0.0, hi=1.0),
)

# every optimizer's fields besides its own (learning_rate and weight_decay are sweepable arrays)
COMMON = dict(
    learning_rate=Field(0.01, "eta; the step t uses lr_t = learning_rate * schedule(t - 1)",
                        lo=0, lo_open=True, sweepable=True),
    weight_decay=Field(0.0, "L2 coupled into the gradient (adamw: decoupled, times lr_t)", lo=0,
                       sweepable=True),
    perpgrad=Field(False, "project each tensor's gradient orthogonally to the tensor first "
                   "(perpgrad_project)"),
    perpgrad_rescale=Field(False, "then restore each tensor's gradient norm (the PerpGrad "
                           "paper's public code)"),
    schedule=Section(SCHEDULE_FIELDS, "learning-rate schedule"),
)

_BETA = dict(lo=0.0, hi=1.0, hi_open=True, sweepable=True)
_B2 = lambda default: Field(default, "second-moment decay", **_BETA)
_EPS = Field(1e-8, "added to sqrt(nu_hat)", lo=0, sweepable=True)
_WIDE = Field(False, "keep the moments in float64 and compute the update there (needs x64)")
_BIAS = Field(False, "nu_hat = nu / (1 - b2^t), else nu_hat = nu")
# the central flows' public code starts RMSProp with nu_1 = g_0^2
_NU_INIT = Field("zeros", "nu before the first update: zeros, or first_grad (nu_1 = g_0^2)",
                 choices=("zeros", "first_grad"))


class Rule(NamedTuple):
  """One optimizer's definition.

  fields: its fields beyond COMMON; the sweepable ones are array hyperparameters (OptState.hparams),
    the others are part of the compiled program.
  moments: (mu, nu): keeps a params-shaped first moment; second moment None, 'tree' or 'scalar'.
  step: fn(g, mu, nu, hp, count, cfg) -> (d, q, mu, nu), the step u = -lr_t d / q for the
    gradient g (weight decay and PerpGrad applied) and count the updates done after this one;
    q None means 1.
  denominator: fn(nu, hp, count, cfg) -> q of the latest second moment (None: no moment).
  stability: fn(cfg) -> the stability factor.
  decoupled_decay: weight decay subtracted from the step (adamw), not added to the gradient.
  """
  fields: dict
  moments: tuple
  step: Callable
  denominator: Optional[Callable] = None
  stability: Callable = lambda cfg: 2.0
  decoupled_decay: bool = False


def _c(h: jax.Array, x: jax.Array) -> jax.Array:
  """Hyperparameter h cast to x's dtype, so it never promotes float32 params or updates."""
  return h.astype(x.dtype)


def _map(fn, tree, *rest):
  return jax.tree.map(fn, tree, *rest)


def _sqrt_nu_hat(nu, hp, count, cfg):
  """sqrt(nu_hat) + eps of the second moment after `count` updates (nu_hat = 0 at count 0)."""
  b2, eps = hp["b2"], hp["eps"]
  corrected = cfg.get("bias_correction", True)
  bc2 = (jnp.where(count > 0, 1 - b2 ** count.astype(b2.dtype), 1) if corrected
         else jnp.ones_like(b2))
  return _map(lambda v: jnp.sqrt(v / _c(bc2, v)) + _c(eps, v), nu)


# the rules' steps: (d, q, mu, nu) as Rule.step says (their formulas: build's docstring)
def _gd(g, mu, nu, hp, count, cfg):
  return g, None, mu, nu


def _momentum(g, mu, nu, hp, count, cfg):
  beta = hp["momentum"]
  mu = _map(lambda m, x: _c(beta, x) * m + x, mu, g)
  d = _map(lambda x, m: x + _c(beta, x) * m, g, mu) if cfg.nesterov else mu
  return d, None, mu, nu


def _rmsprop(g, mu, nu, hp, count, cfg):
  b2, fresh = hp["b2"], count == 1
  if cfg.nu_init == "first_grad":
    nu = _map(lambda v, x: jnp.where(fresh, x * x, v), nu, g)
  nu = _map(lambda v, x: _c(b2, x) * v + (1 - _c(b2, x)) * x * x, nu, g)
  return g, _sqrt_nu_hat(nu, hp, count, cfg), mu, nu


def _scalar_rmsprop(g, mu, nu, hp, count, cfg):
  b2 = hp["b2"]
  sq = sum(jnp.sum(jnp.square(x)).astype(nu.dtype) for x in jax.tree.leaves(g))
  nu = b2 * (jnp.where(count == 1, sq, nu) if cfg.nu_init == "first_grad" else nu) + (1 - b2) * sq
  return g, _sqrt_nu_hat(nu, hp, count, cfg), mu, nu


def _adam(g, mu, nu, hp, count, cfg):
  b1, b2 = hp["b1"], hp["b2"]
  mu = _map(lambda m, x: _c(b1, x) * m + (1 - _c(b1, x)) * x, mu, g)
  nu = _map(lambda v, x: _c(b2, x) * v + (1 - _c(b2, x)) * x * x, nu, g)
  bc1 = 1 - b1 ** count.astype(b1.dtype)
  return _map(lambda m: m / _c(bc1, m), mu), _sqrt_nu_hat(nu, hp, count, cfg), mu, nu


def _heavy_ball_factor(cfg) -> float:
  beta = float(cfg.momentum)
  return (2 + 2 * beta) / (1 + 2 * beta) if cfg.nesterov else 2 + 2 * beta


_RMSPROP = dict(b2=_B2(0.99), eps=_EPS, bias_correction=_BIAS, moments_float64=_WIDE,
                nu_init=_NU_INIT)
_ADAM = dict(b1=Field(0.9, "first-moment decay", **_BETA), b2=_B2(0.999), eps=_EPS,
             moments_float64=_WIDE)
_adam_factor = lambda cfg: (2 + 2 * float(cfg.b1)) / (1 - float(cfg.b1))

RULES = {
    # u = -lr_t g; sgd differs only in the training loop's minibatching
    "gd": Rule({}, (False, None), _gd),
    "sgd": Rule({}, (False, None), _gd),
    "momentum": Rule(dict(momentum=Field(0.9, "heavy-ball coefficient beta", **_BETA),
                          nesterov=Field(False, "Nesterov's variant"), moments_float64=_WIDE),
                     (True, None), _momentum, stability=_heavy_ball_factor),
    "rmsprop": Rule(_RMSPROP, (False, "tree"), _rmsprop, _sqrt_nu_hat),
    "scalar_rmsprop": Rule(_RMSPROP, (False, "scalar"), _scalar_rmsprop, _sqrt_nu_hat),
    "adam": Rule(_ADAM, (True, "tree"), _adam, _sqrt_nu_hat, _adam_factor),
    # Loshchilov & Hutter 2019; the decay scaled by lr_t as in optax / PyTorch
    "adamw": Rule(_ADAM, (True, "tree"), _adam, _sqrt_nu_hat, _adam_factor, True),
}
OPTIMIZERS = tuple(RULES)


class OptState(NamedTuple):
  """The state of one optimizer (a pytree; vmap adds a leading member axis to every leaf).

  Attributes:
    count: int32 scalar, the number of updates done (the step about to be taken is count + 1).
    hparams: dict name -> scalar array (dtype of the params' first floating leaf).
    mu: first moment / momentum buffer with the params' structure, or None.
    nu: second moment with the params' structure (rmsprop, adam), a scalar array
      (scalar_rmsprop), or None.
  """
  count: jax.Array
  hparams: dict
  mu: Any
  nu: Any


class Optimizer(NamedTuple):
  """A built optimizer.

  Attributes:
    name: one of OPTIMIZERS.
    init: init(params) -> OptState.
    update: update(grads, state, params) -> (updates, new_state); apply as params + updates.
    preconditioner: preconditioner(state, params=None) -> pytree of the diagonal of P with the
      params' structure and leaf shapes, for the step about to be taken at state.count (see
      build). params is needed only for the structure, and only by the optimizers whose
      state holds no params-shaped tree (gd, sgd, scalar_rmsprop).
    hparam_names: names of the array hyperparameters in OptState.hparams (sweepable).
    schedule: the multiplier fn(count, dtype=None) -> scalar; lr_t = learning_rate * it.
    adaptive: P comes from a second moment that is zero before the first update (rmsprop,
      scalar_rmsprop, adam, adamw), so P at count 0 is no preconditioner yet used.
  """
  name: str
  init: Callable[[Any], OptState]
  update: Callable[..., tuple[Any, OptState]]
  preconditioner: Callable[..., Any]
  hparam_names: tuple[str, ...]
  schedule: Callable[..., jax.Array]
  adaptive: bool = False

  # the training loop's interface, shared with dynamics.flow.GradientFlow
  def start(self, params, key, hparams) -> OptState:
    """The state a member starts from, with its swept hyperparameters (key: unused)."""
    return set_hparams(self.init(params), **hparams)

  def step(self, loss_fn, params, state: OptState):
    """One step on loss_fn: (loss at params, new params, new state)."""
    value, grads = jax.value_and_grad(loss_fn)(params)
    updates, state = self.update(grads, state, params)
    return value, jax.tree.map(lambda p, u: p + u, params, updates), state

  def metrics(self, state: OptState) -> dict:
    """What the training loop logs of the state at a log point: nothing."""
    return {}


# ---- PerpGrad ------------------------------------------------------------------------------
def perpgrad_project(grads: Any, params: Any, rescale: bool = False) -> Any:
  """g <- g - (<g, w> / <w, w>) w for each parameter tensor w (Prieto et al. 2025, "Grokking at
  the Edge of Numerical Stability", Sec. 6: the orthogonal gradient, which removes the
  component that only scales the weights up along their own direction, the naive loss
  minimization direction that leads to softmax collapse). A tensor with w = 0 keeps g.

  rescale=True then scales each projected tensor back to the norm of its g, as the paper's
  public code (orthograd.py) does; the paper's equation (and the default) does not. The two
  differ by the factor 1 / sin(angle(g, w)), large once g aligns with w."""
  def ratio(a, b):    # a / b, and 0 where b = 0 (the inner where: no 0 / 0 in either branch)
    return jnp.where(b > 0, a / jnp.where(b > 0, b, 1), 0)

  def one(g, w):
    w = w.astype(g.dtype)
    out = g - ratio(jnp.sum(g * w), jnp.sum(w * w)) * w
    if rescale:
      out = out * ratio(jnp.sqrt(jnp.sum(g * g)), jnp.sqrt(jnp.sum(out * out)))
    return out
  return jax.tree.map(one, grads, params)


def perpgrad(rescale: bool = False) -> optax.GradientTransformation:
  """PerpGrad as an optax transformation: chain it before any optimizer, e.g.
  optax.chain(perpgrad(), optax.adamw(1e-3)). Needs params in update(). rescale: see
  perpgrad_project."""
  def update(updates, state, params=None):
    if params is None:
      raise ValueError("perpgrad needs params: call update(grads, state, params)")
    return perpgrad_project(updates, params, rescale), state
  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


# ---- config --------------------------------------------------------------------------------
def fields_of(name: str) -> dict:
  """The declared fields of optimizer `name`'s opt section (COMMON and its own)."""
  fields.Field("gd", choices=OPTIMIZERS).check("opt.name", name)
  return {**COMMON, **RULES[name].fields}


def default_config(name: str = "gd") -> ml_collections.ConfigDict:
  """Every field of the `opt` section for optimizer `name`, with its default."""
  return fields.defaults(fields_of(name), name=name)


def hparam_names(name: str) -> tuple[str, ...]:
  """The array hyperparameters of optimizer `name` (the fields a sweep may vary)."""
  return fields.sweepable(fields_of(name))


def check_hparam(name: str, value: Any, field: Optional[str] = None) -> None:
  """Raises ConfigError if `value` is not allowed for hyperparameter `name` (reported as
  `field`, default 'opt.<name>'; e.g. 'sweep.opt.<name>')."""
  declared = {**COMMON, **{k: f for r in RULES.values() for k, f in r.fields.items()}}
  if name in declared:
    declared[name].check(field or f"opt.{name}", value)


def _check_schedule(s: Any) -> None:
  """The schedule's cross-field rules."""
  w, total, name = s.warmup_steps, s.total_steps, s.name
  if name == "constant" and w > 0:
    raise ConfigError(f"opt.schedule.warmup_steps={w} has no effect with "
                      "opt.schedule.name='constant'; use 'warmup', 'cosine' or 'wsd'")
  if name == "warmup" and w < 1:
    raise ConfigError("opt.schedule.warmup_steps=0 is not allowed with "
                      "opt.schedule.name='warmup'; it must be an integer >= 1")
  if name in ("cosine", "wsd") and total < 1:
    raise ConfigError(f"opt.schedule.total_steps={total} is not allowed with "
                      f"opt.schedule.name={name!r}; it is required (an integer >= 1)")
  if name == "cosine" and w >= total:
    raise ConfigError(f"opt.schedule.warmup_steps={w} is not allowed; with 'cosine' it must "
                      f"be < opt.schedule.total_steps={total}")
  if name == "wsd" and w > total * (1.0 - s.decay_fraction):
    raise ConfigError(f"opt.schedule.warmup_steps={w} is not allowed; with 'wsd' it must be "
                      f"<= opt.schedule.total_steps * (1 - opt.schedule.decay_fraction) = "
                      f"{total * (1.0 - s.decay_fraction):g}")


# the opt.schedule section on its own (schedule_fn; validate checks it as part of opt)
_schedule, default_schedule_config = fields.declare("opt.schedule", SCHEDULE_FIELDS,
                                                    _check_schedule)


def validate(cfg: Any) -> ml_collections.ConfigDict:
  """The opt section completed by its declared defaults (opt.schedule too); raises ConfigError
  naming the opt.* field at fault."""
  cfg = {} if cfg is None else cfg
  name = cfg.get("name", "gd")
  out = fields.complete("opt", fields_of(name), cfg, extra=dict(name=name))
  if out.perpgrad_rescale and not out.perpgrad:
    raise ConfigError("opt.perpgrad_rescale=True is not allowed with opt.perpgrad=False; "
                      "it rescales the PerpGrad projection: set opt.perpgrad=True")
  _check_schedule(out.schedule)
  return out


def stability_factor(cfg: Any) -> float:
  """The c for which the optimizer of the `opt` section is stable on a quadratic with
  curvature H iff lambda_max(P^{-1} H) < c (P held fixed; its constant-step limit):
  gd, sgd, rmsprop, scalar_rmsprop: 2 (GD: sharpness vs 2/eta, Cohen et al. 2021); heavy-ball
  momentum beta: 2 + 2 beta; Nesterov: (2 + 2 beta) / (1 + 2 beta); adam, adamw:
  (2 + 2 b1) / (1 - b1) (38 at b1 = 0.9; Cohen et al. 2022, "Adaptive Gradient Methods at the
  Edge of Stability", Eq. 2). For GD and momentum P = 1 / eta, so this is the sharpness
  threshold c / eta. Weight decay and schedules are not included.
  """
  cfg = validate(cfg)
  return RULES[cfg.name].stability(cfg)


# ---- schedules -----------------------------------------------------------------------------
def schedule_fn(cfg: Any = None) -> Callable[..., jax.Array]:
  """The learning-rate multiplier of the `opt.schedule` section, as a jit-able function.

  With s = count + 1 (the 1-based index of the step about to be taken, so the first warmup
  step is not zero) the multiplier is warm(s) * main(s), where
    warm(s) = min(1, s / warmup_steps)          (1 when warmup_steps = 0; 'constant': 1)
    cosine:  main = ff + (1 - ff) * (1 + cos(pi * p)) / 2,
             p = clip((s - warmup_steps) / (total_steps - warmup_steps), 0, 1)
    wsd:     main = 1 - (1 - ff) * clip((s - (T - D)) / D, 0, 1),  T = total_steps,
             D = decay_fraction * T  (warmup, stable at 1, linear decay over the last D steps)
  with ff = final_fraction; so the step numbered total_steps (count = total_steps - 1) and all
  later ones use exactly final_fraction.

  Args:
    cfg: the opt.schedule section (missing fields take defaults; None means constant).

  Returns:
    fn(count, dtype=None) -> multiplier with count's shape, in `dtype` (default: the widest
    float jax allows, float64 under x64).
  """
  cfg = _schedule(cfg)
  name, w, total = cfg.name, cfg.warmup_steps, cfg.total_steps
  ff, decay = float(cfg.final_fraction), float(cfg.decay_fraction) * cfg.total_steps

  def fn(count, dtype=None):
    dtype = dtype or jax.dtypes.canonicalize_dtype(jnp.float64)
    s = jnp.asarray(count).astype(dtype) + 1
    one = jnp.ones_like(s)
    warm = jnp.minimum(one, s / w) if w > 0 else one
    if name == "cosine":
      p = jnp.clip((s - w) / (total - w), 0.0, 1.0)
      main = ff + (1.0 - ff) * 0.5 * (1.0 + jnp.cos(math.pi * p))
    elif name == "wsd" and decay > 0:
      main = 1.0 - (1.0 - ff) * jnp.clip((s - (total - decay)) / decay, 0.0, 1.0)
    else:
      main = one
    return (warm * main).astype(dtype)

  return fn


# ---- the optimizers ------------------------------------------------------------------------
def _hparam_dtype(params: Any) -> jnp.dtype:
  for leaf in jax.tree.leaves(params):
    if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.floating):
      return jnp.asarray(leaf).dtype
  return jnp.dtype(jnp.float32)


def set_hparams(state: OptState, **values: Any) -> OptState:
  """The state with some hyperparameters replaced, each cast to its existing dtype.

  Args:
    **values: name -> value (Python number or array of the existing hparam's shape: a scalar,
      or [members] for an already vmapped state). Works on traced values inside jit/vmap.

  Raises:
    KeyError: an unknown name (the message lists the optimizer's hyperparameters).
    ValueError: a value of the wrong shape.
  """
  unknown = sorted(set(values) - set(state.hparams))
  if unknown:
    raise KeyError(f"unknown hyperparameter(s) {', '.join(unknown)}; this optimizer's "
                   f"hyperparameters: {', '.join(sorted(state.hparams))}")
  hp = dict(state.hparams)
  for k, v in values.items():
    v = jnp.asarray(v)
    if v.shape != hp[k].shape:
      raise ValueError(f"hyperparameter {k} must have shape {hp[k].shape}; got {v.shape}")
    hp[k] = v.astype(hp[k].dtype)
  return state._replace(hparams=hp)


def build(cfg: Any = None) -> Optimizer:
  """The Optimizer named by the `opt` section (missing fields take their defaults).

  Every step (g = gradient, w = params, t = count + 1, lr_t = learning_rate * schedule(count)):
  with perpgrad=True g is first replaced by its PerpGrad projection (perpgrad_project); then
  weight decay is coupled, g <- g + weight_decay * w (adamw: decoupled, u <- u - lr_t wd w);
  then the rule's step u = -lr_t d / q (see RULES):
    gd, sgd:  d = g. P = 1 / lr_t.
    momentum: m <- momentum m + g; d = m, or nesterov: d = g + momentum m (optax.sgd's
      convention). P = 1 / lr_t; for heavy-ball the step is -P^{-1} m with the new m.
    rmsprop:  nu <- b2 nu + (1 - b2) g^2 (nu_0 = 0; nu_init='first_grad': g_0^2); d = g,
      q = sqrt(nu_hat) + eps, nu_hat = nu / (1 - b2^t) if bias_correction else nu (eps outside
      the sqrt, unlike optax.rmsprop). P = q / lr_t.
    scalar_rmsprop: as rmsprop with one scalar nu <- b2 nu + (1 - b2) ||g||^2, ||g||^2 the
      squared norm summed over ALL parameters. P = q / lr_t, broadcast.
    adam, adamw: m <- b1 m + (1 - b1) g; nu <- b2 nu + (1 - b2) g^2; d = m / (1 - b1^t),
      q = sqrt(nu / (1 - b2^t)) + eps (Kingma & Ba 2015, Alg. 1). P = q / lr_t (adamw's
      decoupled decay is not in P).

  moments_float64 (needs jax x64): keep the moments m, nu in float64 and compute the update
  there (from the gradient cast up), then cast it to the params' dtype; the params, the model
  and its gradient keep their own dtype. For float32 runs whose gradients get tiny: nu ~ g^2
  leaves float32's normal range once |g| falls below ~1e-19 (XLA on the CPU flushes float32
  subnormals to zero; where subnormals are kept the limit is ~1e-22), and an Adam nu flushed to
  0 while m is not makes the step lr * m_hat / eps, with a small eps an enormous one (see the
  adam_moments probe).

  preconditioner(state) gives P for the step about to be taken: lr_t at state.count, and for
  the adaptive methods the LATEST second moment (nu after count updates, bias-corrected with
  1 - b2^count; nu_hat = 0 at count 0). For gd and momentum this is exactly the next step's
  preconditioner. For rmsprop / adam it is the preconditioner of the step just taken (which
  used lr at count - 1), rescaled to the current lr_t: with a constant schedule the last update
  equals -P(state)^{-1} g (rmsprop) or -P(state)^{-1} m_hat (adam). This is the preconditioner
  of Cohen et al. 2022 ("Adaptive Gradient Methods at the Edge of Stability").

  Args:
    cfg: the `opt` section (ConfigDict or dict); None means plain gd with lr 0.01.
  """
  cfg = validate(cfg)
  name, rule = cfg.name, RULES[cfg.name]
  names = hparam_names(name)
  has_mu, nu_kind = rule.moments
  wide = bool(cfg.get("moments_float64", False))
  sched = schedule_fn(cfg.schedule)

  def init(params) -> OptState:
    if wide:
      cu.require_x64("opt.moments_float64=True")
    dtype = _hparam_dtype(params)
    zeros = lambda: jax.tree.map(lambda p: jnp.zeros_like(p, jnp.float64 if wide else None), params)
    nu = (zeros() if nu_kind == "tree" else
          jnp.zeros((), jnp.float64 if wide else dtype) if nu_kind == "scalar" else None)
    return OptState(count=jnp.zeros((), jnp.int32),
                    hparams={k: jnp.asarray(float(cfg[k]), dtype) for k in names},
                    mu=zeros() if has_mu else None, nu=nu)

  def lr_at(state: OptState) -> jax.Array:
    lr = state.hparams["learning_rate"]
    return lr * sched(state.count, lr.dtype)

  def update(grads, state: OptState, params=None) -> tuple[Any, OptState]:
    if params is None:
      raise ValueError(f"optimizer {name!r} needs params in update(grads, state, params) "
                       "(weight decay)")
    hp = state.hparams
    lr, wd = lr_at(state), hp["weight_decay"]
    if cfg.perpgrad:              # on the loss gradient, before weight decay enters
      grads = perpgrad_project(grads, params, cfg.perpgrad_rescale)
    if not rule.decoupled_decay:
      grads = _map(lambda g, w: g + _c(wd, g) * w, grads, params)
    if wide:
      cu.require_x64("opt.moments_float64=True")
      grads = _map(lambda g: g.astype(jnp.float64), grads)
    count = state.count + 1
    d, q, mu, nu = rule.step(grads, state.mu, state.nu, hp, count, cfg)
    if q is None:
      updates = _map(lambda x: -_c(lr, x) * x, d)
    elif nu_kind == "scalar":
      updates = _map(lambda x: -_c(lr, x) * x / _c(q, x), d)
    else:
      updates = _map(lambda x, y: -_c(lr, x) * x / y, d, q)
    if rule.decoupled_decay:
      updates = _map(lambda u, w: u - _c(lr, u) * _c(wd, u) * w, updates, params)
    if wide:
      updates = _map(lambda u, w: u.astype(jnp.result_type(w)), updates, params)
    return updates, OptState(count=count, hparams=hp, mu=mu, nu=nu)

  def preconditioner(state: OptState, params=None):
    template = params if params is not None else state.nu if nu_kind == "tree" else state.mu
    if template is None:
      raise ValueError(f"optimizer {name!r} keeps no params-shaped state: call "
                       "preconditioner(state, params)")
    lr, q = lr_at(state), 1
    if rule.denominator is not None:
      q = rule.denominator(state.nu, state.hparams, state.count, cfg)
    if nu_kind == "tree":
      # in the params' dtype when they are given (moments_float64 keeps nu in float64)
      return _map(lambda v, x: (v / _c(lr, v)).astype(jnp.result_type(x)), q, template)
    return _map(lambda x: jnp.full(jnp.shape(x), q / lr, jnp.result_type(x)), template)

  return Optimizer(name=name, init=init, update=update, preconditioner=preconditioner,
                   hparam_names=names, schedule=sched, adaptive=nu_kind is not None)
