"""Optimizers as pure optax-style init/update pairs whose hyperparameters are arrays in the state.

Because the hyperparameters (learning rate, weight decay, momentum, b1, b2, eps) live in
`OptState.hparams` as scalar arrays, one compiled program can vmap a sweep over them:

    opt = build(cfg)
    state = jax.vmap(lambda lr: set_hparams(opt.init(params), learning_rate=lr))(lrs)

Updates follow optax's sign convention (params + updates; optax.apply_updates works).

Each optimizer also reports its diagonal preconditioner P(state): the step is
u = -P^{-1} d, with d the gradient (gd, sgd, rmsprop, scalar_rmsprop), the heavy-ball buffer m
(momentum) or the bias-corrected first moment m_hat (adam). Edge-of-stability theory compares
the largest eigenvalue of the preconditioned Hessian P^{-1} H with 2 (gd: sharpness vs 2/eta,
Cohen et al. 2021), 2 + 2 beta (heavy-ball: sharpness vs (2 + 2 beta)/eta), (2 + 2 beta) /
(1 + 2 beta) (Nesterov), or (2 + 2 b1)/(1 - b1) (adam: Cohen et al. 2022, "Adaptive Gradient
Methods at the Edge of Stability", Eq. 2): stability_factor(cfg).
"""
import math
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import ml_collections
import optax

from dynamics import config_utils as cu

OPTIMIZERS = ("gd", "sgd", "momentum", "rmsprop", "scalar_rmsprop", "adam", "adamw")
SCHEDULES = ("constant", "warmup", "cosine", "wsd")

# Per-optimizer fields beyond the common ones (name, learning_rate, weight_decay, schedule).
_EXTRA = {
    "gd": {},
    "sgd": {},
    "momentum": dict(momentum=0.9, nesterov=False, moments_float64=False),
    "rmsprop": dict(b2=0.99, eps=1e-8, bias_correction=False, moments_float64=False,
                    nu_init="zeros"),
    "scalar_rmsprop": dict(b2=0.99, eps=1e-8, bias_correction=False, moments_float64=False,
                           nu_init="zeros"),
    "adam": dict(b1=0.9, b2=0.999, eps=1e-8, moments_float64=False),
    "adamw": dict(b1=0.9, b2=0.999, eps=1e-8, moments_float64=False),
}
# part of the program, not of the state
_STATIC = ("nesterov", "bias_correction", "moments_float64", "nu_init")
# nu before the first update: 'zeros' (the usual), or 'first_grad': the first update takes the
# previous nu to be g_0^2, so nu_1 = g_0^2 (the central flows' public code starts RMSProp so)
NU_INITS = ("zeros", "first_grad")


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
      the module docstring). params is needed only for the structure, and only by the
      optimizers whose state holds no params-shaped tree (gd, sgd, scalar_rmsprop).
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


# ---- PerpGrad ------------------------------------------------------------------------------
def perpgrad_project(grads: Any, params: Any, rescale: bool = False) -> Any:
  """g <- g - (<g, w> / <w, w>) w for each parameter tensor w (Prieto et al. 2025, "Grokking at
  the Edge of Numerical Stability", Sec. 6: the orthogonal gradient, which removes the
  component that only scales the weights up along their own direction, the naive loss
  minimization direction that leads to softmax collapse). A tensor with w = 0 keeps g.

  rescale=True then scales each projected tensor back to the norm of its g, as the paper's
  public code (orthograd.py) does; the paper's equation (and the default) does not. The two
  differ by the factor 1 / sin(angle(g, w)), large once g aligns with w."""
  def one(g, w):
    w = w.astype(g.dtype)
    ww = jnp.sum(w * w)
    coef = jnp.where(ww > 0, jnp.sum(g * w) / jnp.where(ww > 0, ww, 1), 0)
    out = g - coef * w
    if rescale:
      n_out = jnp.sqrt(jnp.sum(out * out))
      out = out * jnp.where(n_out > 0, jnp.sqrt(jnp.sum(g * g)) / jnp.where(n_out > 0, n_out, 1),
                            0)
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
def default_schedule_config() -> ml_collections.ConfigDict:
  """Every field of the `opt.schedule` section, with its default."""
  return ml_collections.ConfigDict(dict(
      name="constant",      # 'constant', 'warmup', 'cosine' or 'wsd'
      warmup_steps=0,       # linear warmup length (multiplier (count + 1) / warmup_steps)
      total_steps=0,        # cosine / wsd: the step at which the multiplier reaches final_fraction
      final_fraction=0.0,   # cosine / wsd: final multiplier
      decay_fraction=0.2,   # wsd: the linear decay spans the last decay_fraction * total_steps
  ))


def default_config(name: str = "gd") -> ml_collections.ConfigDict:
  """Every field of the `opt` section for optimizer `name`, with its default."""
  cu.check_choice("opt.name", name, OPTIMIZERS)
  # perpgrad: project each parameter tensor's gradient orthogonally to the tensor first;
  # perpgrad_rescale: then restore each tensor's gradient norm (the paper's public code)
  fields = dict(name=name, learning_rate=0.01, weight_decay=0.0, perpgrad=False,
                perpgrad_rescale=False)
  fields.update(_EXTRA[name])
  fields["schedule"] = default_schedule_config()
  return ml_collections.ConfigDict(fields)


def hparam_names(name: str) -> tuple[str, ...]:
  """The array hyperparameters of optimizer `name` (the fields a sweep may vary)."""
  cu.check_choice("opt.name", name, OPTIMIZERS)
  return ("learning_rate", "weight_decay") + tuple(k for k in _EXTRA[name] if k not in _STATIC)


def _merge(section: str, cfg: Any, defaults: ml_collections.ConfigDict):
  """with_defaults, refusing values of the wrong type with a ConfigError naming the field."""
  cu.check_fields(section, cfg, defaults)
  for k in cfg.keys():
    d, v = defaults[k], cfg[k]
    if isinstance(d, bool):
      ok, want = isinstance(v, bool), "True or False"
    elif isinstance(d, int):
      ok, want = _is_int(v), "an integer"
    elif isinstance(d, float):
      ok, want = isinstance(v, (int, float)) and not isinstance(v, bool), "a number"
    elif isinstance(d, str):
      ok, want = isinstance(v, str), "a string"
    else:
      ok, want = True, ""
    if not ok:
      raise cu.ConfigError(f"{section}.{k}={v!r} is not allowed; it must be {want}")
  return cu.with_defaults(section, cfg, defaults)


def _schedule_with_defaults(cfg: Any) -> ml_collections.ConfigDict:
  return _merge("opt.schedule", cfg if cfg is not None else {}, default_schedule_config())


def with_defaults(cfg: Any) -> ml_collections.ConfigDict:
  """The `opt` section with every missing field (also in opt.schedule) filled in."""
  cfg = cfg if cfg is not None else {}
  name = cu.check_choice("opt.name", cu.get(cfg, "name", "gd"), OPTIMIZERS)
  defaults = default_config(name)
  top = {k: cfg[k] for k in cfg.keys() if k != "schedule"}
  out = _merge("opt", top, defaults)
  out.schedule = _schedule_with_defaults(cu.get(cfg, "schedule", None))
  return out


def _is_int(v: Any) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def check_hparam(name: str, value: Any, field: Optional[str] = None) -> None:
  """Raises ConfigError if `value` is not allowed for hyperparameter `name`.

  Args:
    name: a hyperparameter name (learning_rate, weight_decay, momentum, b1, b2, eps).
    value: its value (a Python number).
    field: the dotted name to report (default 'opt.<name>'; e.g. 'sweep.opt.<name>').
  """
  field = field or f"opt.{name}"
  if name == "learning_rate":
    cu.check_positive(field, value)
  elif name in ("weight_decay", "eps"):
    cu.check_positive(field, value, allow_zero=True)
  elif name in ("momentum", "b1", "b2"):
    cu.check_range(field, value, 0.0, 1.0, hi_open=True)


def validate_schedule(cfg: Any) -> None:
  """Raises ConfigError naming the opt.schedule.* field at fault."""
  cfg = _schedule_with_defaults(cfg)
  name = cu.check_choice("opt.schedule.name", cfg.name, SCHEDULES)
  for f in ("warmup_steps", "total_steps"):
    v = cfg[f]
    if not _is_int(v) or v < 0:
      raise cu.ConfigError(f"opt.schedule.{f}={v!r} is not allowed; it must be an integer >= 0")
  for f in ("final_fraction", "decay_fraction"):
    cu.check_range(f"opt.schedule.{f}", cfg[f], 0.0, 1.0)
  w, total = cfg.warmup_steps, cfg.total_steps
  if name == "constant" and w > 0:
    raise cu.ConfigError(f"opt.schedule.warmup_steps={w} has no effect with "
                         "opt.schedule.name='constant'; use 'warmup', 'cosine' or 'wsd'")
  if name == "warmup" and w < 1:
    raise cu.ConfigError("opt.schedule.warmup_steps=0 is not allowed with "
                         "opt.schedule.name='warmup'; it must be an integer >= 1")
  if name in ("cosine", "wsd") and total < 1:
    raise cu.ConfigError(f"opt.schedule.total_steps={total} is not allowed with "
                         f"opt.schedule.name={name!r}; it is required (an integer >= 1)")
  if name == "cosine" and w >= total:
    raise cu.ConfigError(f"opt.schedule.warmup_steps={w} is not allowed; with 'cosine' it must "
                         f"be < opt.schedule.total_steps={total}")
  if name == "wsd" and w > total * (1.0 - cfg.decay_fraction):
    raise cu.ConfigError(f"opt.schedule.warmup_steps={w} is not allowed; with 'wsd' it must be "
                         f"<= opt.schedule.total_steps * (1 - opt.schedule.decay_fraction) = "
                         f"{total * (1.0 - cfg.decay_fraction):g}")


def validate(cfg: Any) -> ml_collections.ConfigDict:
  """The section completed by its defaults (opt.schedule too); raises ConfigError naming the
  opt.* field at fault."""
  cfg = with_defaults(cfg)
  for h in hparam_names(cfg.name):
    check_hparam(h, cfg[h])
  if cfg.perpgrad_rescale and not cfg.perpgrad:
    raise cu.ConfigError("opt.perpgrad_rescale=True is not allowed with opt.perpgrad=False; "
                         "it rescales the PerpGrad projection: set opt.perpgrad=True")
  if "nu_init" in cfg:
    cu.check_choice("opt.nu_init", cfg.nu_init, NU_INITS)
  validate_schedule(cfg.schedule)
  return cfg


# ---- schedules -----------------------------------------------------------------------------
def _float_dtype() -> jnp.dtype:
  return jax.dtypes.canonicalize_dtype(jnp.float64)


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
  cfg = _schedule_with_defaults(cfg)
  validate_schedule(cfg)
  name, w, total = cfg.name, cfg.warmup_steps, cfg.total_steps
  ff, decay = float(cfg.final_fraction), float(cfg.decay_fraction) * cfg.total_steps

  def fn(count, dtype=None):
    dtype = dtype or _float_dtype()
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


def _c(h: jax.Array, x: jax.Array) -> jax.Array:
  """Hyperparameter h cast to x's dtype, so it never promotes float32 params or updates."""
  return h.astype(x.dtype)


def set_hparams(state: OptState, **values: Any) -> OptState:
  """The state with some hyperparameters replaced, each cast to its existing dtype.

  Args:
    state: an OptState.
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

  Update rules (g = gradient, w = params, t = count + 1, lr_t = learning_rate * schedule(count);
  "coupled" weight decay means g <- g + weight_decay * w before everything else; with
  perpgrad=True every rule first replaces g by its PerpGrad projection, rescaled to |g| per
  tensor with perpgrad_rescale=True, see perpgrad_project):
    gd, sgd:  u = -lr_t g (coupled wd). P = 1 / lr_t. (sgd differs only in the training
      loop's minibatching.)
    momentum: m <- momentum m + g; u = -lr_t m, or nesterov: u = -lr_t (g + momentum m)
      (coupled wd; optax.sgd(momentum, nesterov) convention). P = 1 / lr_t; for heavy-ball
      the step is -P^{-1} m with the new m.
    rmsprop:  nu <- b2 nu + (1 - b2) g^2 (nu_0 = 0; nu_init='first_grad': g_0^2);
      u = -lr_t g / (sqrt(nu_hat) + eps),
      nu_hat = nu / (1 - b2^t) if bias_correction else nu (coupled wd; eps outside the sqrt,
      unlike optax.rmsprop). P = (sqrt(nu_hat) + eps) / lr_t.
    scalar_rmsprop: as rmsprop with one scalar nu <- b2 nu + (1 - b2) ||g||^2, ||g||^2 the
      squared norm summed over ALL parameters. P = (sqrt(nu_hat) + eps) / lr_t, broadcast.
    adam:     m <- b1 m + (1 - b1) g; nu <- b2 nu + (1 - b2) g^2;
      u = -lr_t m_hat / (sqrt(nu_hat) + eps), m_hat = m / (1 - b1^t), nu_hat = nu / (1 - b2^t)
      (Kingma & Ba 2015, Alg. 1; coupled L2 wd). P = (sqrt(nu_hat) + eps) / lr_t.
    adamw:    adam without coupled wd, and u = -lr_t (m_hat / (sqrt(nu_hat) + eps) + wd w)
      (Loshchilov & Hutter 2019; decay scaled by lr_t as in optax / PyTorch).

  moments_float64 (momentum, rmsprop, scalar_rmsprop, adam, adamw; needs jax x64): keep the
  moments m, nu in float64 and compute the update there (from the gradient cast up), then cast
  it to the params' dtype; the params, the model and its gradient keep their own dtype. For
  float32 runs whose gradients get tiny: nu ~ g^2 leaves float32's normal range once |g| falls
  below ~1e-19 (XLA on the CPU flushes float32 subnormals to zero; where subnormals are kept
  the limit is ~1e-22), and an Adam nu flushed to 0 while m is not makes the step
  lr * m_hat / eps, with a small eps an enormous one (see the adam_moments probe).

  preconditioner(state) gives P for the step about to be taken: lr_t at state.count, and for
  the adaptive methods the LATEST second moment (nu after count updates, bias-corrected with
  1 - b2^count; nu_hat = 0 at count 0). For gd and momentum this is exactly the next step's
  preconditioner. For rmsprop / adam it is the preconditioner of the step just taken (which
  used lr at count - 1), rescaled to the current lr_t: with a constant schedule the last update
  equals -P(state)^{-1} g (rmsprop) or -P(state)^{-1} m_hat (adam). This is the preconditioner
  of Cohen et al. 2022 ("Adaptive Gradient Methods at the Edge of Stability"). For adamw the
  decoupled decay term is not part of P.

  Args:
    cfg: the `opt` section (ConfigDict or dict); None means plain gd with lr 0.01.

  Returns:
    The Optimizer.
  """
  cfg = with_defaults(cfg)
  validate(cfg)
  name = cfg.name
  names = hparam_names(name)
  values = {k: float(cfg[k]) for k in names}
  nesterov = bool(cfg.get("nesterov", False))
  perp, perp_rescale = bool(cfg.perpgrad), bool(cfg.perpgrad_rescale)
  bias_correction = bool(cfg.get("bias_correction", name in ("adam", "adamw")))
  wide = bool(cfg.get("moments_float64", False))
  first_grad = cfg.get("nu_init", "zeros") == "first_grad"
  sched = schedule_fn(cfg.schedule)
  has_mu = name in ("momentum", "adam", "adamw")
  tree_nu = name in ("rmsprop", "adam", "adamw")

  def check_x64():
    if wide and jax.dtypes.canonicalize_dtype(jnp.float64) != jnp.dtype(jnp.float64):
      raise RuntimeError("opt.moments_float64=True needs jax x64: set train.float64=True or "
                         "jax.config.update('jax_enable_x64', True)")

  def init(params) -> OptState:
    check_x64()
    dtype = _hparam_dtype(params)
    zeros = lambda: jax.tree.map(
        lambda p: jnp.zeros_like(p, jnp.float64) if wide else jnp.zeros_like(p), params)
    if tree_nu:
      nu = zeros()
    elif name == "scalar_rmsprop":
      nu = jnp.zeros((), jnp.float64 if wide else dtype)
    else:
      nu = None
    return OptState(count=jnp.zeros((), jnp.int32),
                    hparams={k: jnp.asarray(v, dtype) for k, v in values.items()},
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
    t = (state.count + 1).astype(lr.dtype)
    if perp:              # on the loss gradient, before weight decay enters
      grads = perpgrad_project(grads, params, perp_rescale)
    if name != "adamw":   # coupled L2: g <- g + wd * w
      grads = jax.tree.map(lambda g, w: g + _c(wd, g) * w, grads, params)
    if wide:
      check_x64()
      grads = jax.tree.map(lambda g: g.astype(jnp.float64), grads)
    mu, nu = state.mu, state.nu

    if name in ("gd", "sgd"):
      updates = jax.tree.map(lambda g: -_c(lr, g) * g, grads)
    elif name == "momentum":
      beta = hp["momentum"]
      mu = jax.tree.map(lambda m, g: _c(beta, g) * m + g, mu, grads)
      if nesterov:
        updates = jax.tree.map(lambda g, m: -_c(lr, g) * (g + _c(beta, g) * m), grads, mu)
      else:
        updates = jax.tree.map(lambda m: -_c(lr, m) * m, mu)
    elif name in ("rmsprop", "scalar_rmsprop"):
      b2, eps = hp["b2"], hp["eps"]
      fresh = state.count == 0
      if name == "rmsprop":
        if first_grad:
          nu = jax.tree.map(lambda v, g: jnp.where(fresh, g * g, v), nu, grads)
        nu = jax.tree.map(lambda v, g: _c(b2, g) * v + (1 - _c(b2, g)) * g * g, nu, grads)
      else:
        sq = sum(jnp.sum(jnp.square(g)).astype(nu.dtype) for g in jax.tree.leaves(grads))
        nu = b2 * (jnp.where(fresh, sq, nu) if first_grad else nu) + (1 - b2) * sq
      bc2 = 1 - b2 ** t if bias_correction else jnp.ones_like(b2)
      if name == "rmsprop":
        updates = jax.tree.map(
            lambda g, v: -_c(lr, g) * g / (jnp.sqrt(v / _c(bc2, v)) + _c(eps, g)), grads, nu)
      else:
        d = jnp.sqrt(nu / bc2) + eps
        updates = jax.tree.map(lambda g: -_c(lr, g) * g / _c(d, g), grads)
    else:   # adam, adamw
      b1, b2, eps = hp["b1"], hp["b2"], hp["eps"]
      mu = jax.tree.map(lambda m, g: _c(b1, g) * m + (1 - _c(b1, g)) * g, mu, grads)
      nu = jax.tree.map(lambda v, g: _c(b2, g) * v + (1 - _c(b2, g)) * g * g, nu, grads)
      bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
      updates = jax.tree.map(
          lambda m, v: -_c(lr, m) * (m / _c(bc1, m)) / (jnp.sqrt(v / _c(bc2, v)) + _c(eps, v)),
          mu, nu)
      if name == "adamw":   # decoupled decay, scaled by lr_t
        updates = jax.tree.map(lambda u, w: u - _c(lr, u) * _c(wd, u) * w, updates, params)
    if wide:
      updates = jax.tree.map(lambda u, w: u.astype(jnp.result_type(w)), updates, params)
    return updates, OptState(count=state.count + 1, hparams=hp, mu=mu, nu=nu)

  def preconditioner(state: OptState, params=None):
    template = params
    if template is None:
      template = state.nu if tree_nu else state.mu
    if template is None:
      raise ValueError(f"optimizer {name!r} keeps no params-shaped state: call "
                       "preconditioner(state, params)")
    lr = lr_at(state)
    if name in ("gd", "sgd", "momentum"):
      return jax.tree.map(lambda x: jnp.full(jnp.shape(x), 1 / lr, jnp.result_type(x)),
                          template)
    hp = state.hparams
    b2, eps = hp["b2"], hp["eps"]
    c = state.count.astype(lr.dtype)
    # nu_hat of the latest nu: nu / (1 - b2^count); nu = 0 at count 0, where nu_hat := 0.
    bc2 = jnp.where(state.count > 0, 1 - b2 ** c, 1) if bias_correction else jnp.ones_like(b2)
    if name == "scalar_rmsprop":
      p = (jnp.sqrt(state.nu / bc2) + eps) / lr
      return jax.tree.map(lambda x: jnp.full(jnp.shape(x), p, jnp.result_type(x)), template)
    # in the params' dtype when they are given (moments_float64 keeps nu in float64)
    return jax.tree.map(
        lambda v, x: ((jnp.sqrt(v / _c(bc2, v)) + _c(eps, v)) / _c(lr, v)).astype(
            jnp.result_type(x)), state.nu, template)

  return Optimizer(name=name, init=init, update=update, preconditioner=preconditioner,
                   hparam_names=names, schedule=sched, adaptive="b2" in names)


def stability_factor(cfg: Any) -> float:
  """The c for which the optimizer of the `opt` section is stable on a quadratic with
  curvature H iff lambda_max(P^{-1} H) < c (P held fixed; its constant-step limit):
  gd, sgd, rmsprop, scalar_rmsprop: 2; heavy-ball momentum beta: 2 + 2 beta; Nesterov:
  (2 + 2 beta) / (1 + 2 beta); adam, adamw: (2 + 2 b1) / (1 - b1) (38 at b1 = 0.9). For GD
  and momentum P = 1 / eta, so this is the sharpness threshold c / eta. Weight decay and
  schedules are not included.
  """
  cfg = with_defaults(cfg)
  if cfg.name == "momentum":
    beta = float(cfg.momentum)
    return (2 + 2 * beta) / (1 + 2 * beta) if cfg.nesterov else 2 + 2 * beta
  if cfg.name in ("adam", "adamw"):
    return (2 + 2 * float(cfg.b1)) / (1 - float(cfg.b1))
  return 2.0
