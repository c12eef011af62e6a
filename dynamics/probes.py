"""In-loop probes: measurements that run inside the compiled training program at log points.

config.probes maps a probe name to its settings, e.g.

    config.probes.weight_norm = {}
    config.probes.sharpness = {"k": 1, "num_iters": 20}

Each probe is registered once with its fields (dynamics.fields) and a builder
build(settings, problem) -> Probe | fn(params, opt_state, batch) -> metrics, where problem is
the experiment's dynamics.train.Problem (apply, loss, optimizer, data, batch_loss). The probes
that need only the model and the optimizer live here; the curvature and grokking probes
register themselves from analysis/probes.py (imported by `import analysis`), since measurement
code lives in analysis/ and dynamics/ never imports it.
"""
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from dynamics import config_utils as cu
from dynamics import fields
from dynamics.fields import Field


class Spec(NamedTuple):
  """A registered probe: its builder and its declared settings."""
  build: Callable[[Any, Any], Any]
  fields: dict


PROBES: dict[str, Spec] = {}


def register(name: str, **settings: Field) -> Callable:
  """Decorator: registers build(settings, problem) as probe `name` with these settings."""
  def wrap(build):
    PROBES[name] = Spec(build, dict(settings))
    return build
  return wrap


def _spec(name: str) -> Spec:
  if name not in PROBES:
    raise cu.ConfigError(f"probes={name!r} is not allowed{fields.did_you_mean(name, PROBES)}; "
                         f"allowed values: {', '.join(repr(p) for p in sorted(PROBES))} (the "
                         "curvature and grokking probes are registered by `import analysis`)")
  return PROBES[name]


def resolve(cfg: Any) -> Any:
  """The probes section with every probe's settings completed and checked."""
  import ml_collections
  out = ml_collections.ConfigDict()
  for name in (cfg or {}).keys():
    out[name] = fields.complete(f"probes.{name}", _spec(name).fields, cfg[name])
  return out


def build(cfg: Any, problem) -> dict:
  """name -> probe for every probe of a resolved probes section."""
  return {name: _spec(name).build(cfg[name], problem) for name in cfg.keys()}


def describe(cfg: Any) -> list[str]:
  lines = []
  for name in sorted(PROBES):
    on = cfg is not None and name in cfg
    lines += ([f"probes.{name}: {'on' if on else 'off'}"] +
              ["  " + l for l in fields.describe(f"probes.{name}", PROBES[name].fields,
                                                 cfg[name] if on else None)])
  return lines


def sq_norm(tree) -> jax.Array:
  return sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree))


@register("weight_norm", per_leaf=Field(False, "also the sum of squares of every leaf"))
def weight_norm(settings, problem):
  """Sum of squared parameters; per leaf too with per_leaf=True."""
  del problem

  def probe(params, opt_state, batch):
    del opt_state, batch
    if not settings.per_leaf:
      return sq_norm(params)
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    out = {jax.tree_util.keystr(path, simple=True, separator="/"): jnp.sum(jnp.square(x))
           for path, x in flat}
    out["total"] = sq_norm(params)
    return out
  return probe


@register("grad_norm")
def grad_norm(settings, problem):
  """Norm of the full-batch gradient."""
  del settings

  def probe(params, opt_state, batch):
    del opt_state
    return jnp.sqrt(sq_norm(jax.grad(problem.batch_loss)(params, batch)))
  return probe


@register("adam_moments")
def adam_moments(settings, problem):
  """Health of Adam's moments (adam, adamw), from the state after the latest update:

    underflow_share: share of parameters whose second moment nu is exactly 0 while the first
      moment mu is not. In exact arithmetic nu > 0 whenever mu != 0, so every such parameter
      is an arithmetic underflow (nu ~ g^2 leaves float32's normal range for |g| below ~1e-19,
      and XLA on the CPU flushes subnormals to zero). Its next update is then about
      lr * m_hat / eps: with a tiny eps a huge step. opt.moments_float64=True avoids it.
    max_step: the largest |m_hat| / (sqrt(nu_hat) + eps) over all parameters, the length of
      the latest Adam step in units of the learning rate (in exact arithmetic about
      max(1, (1 - b1) / sqrt(1 - b2)) at most: Kingma & Ba 2015, Sec. 2.1).
    min_abs_nu: the smallest nonzero |nu| (inf if all are zero), how close the state is to
      underflow.
  """
  del settings
  if "b1" not in problem.opt.hparam_names:        # no Adam first and second moments
    raise cu.ConfigError("probes.adam_moments needs opt.name 'adam' or 'adamw'; got "
                         f"{problem.opt.name!r}")

  def probe(params, opt_state, batch):
    del params, batch
    hp = opt_state.hparams
    b1, b2, eps = hp["b1"], hp["b2"], hp["eps"]
    c = jnp.maximum(opt_state.count, 1).astype(b1.dtype)
    mus, nus = jax.tree.leaves(opt_state.mu), jax.tree.leaves(opt_state.nu)
    n = sum(m.size for m in mus)
    under = sum(jnp.sum((v == 0) & (m != 0)) for m, v in zip(mus, nus))
    step = [jnp.max(jnp.abs(m / (1 - b1 ** c).astype(m.dtype)) /
                    (jnp.sqrt(v / (1 - b2 ** c).astype(v.dtype)) + eps.astype(v.dtype)))
            for m, v in zip(mus, nus)]
    min_nu = [jnp.min(jnp.where(v != 0, jnp.abs(v), jnp.inf)) for v in nus]
    return {"underflow_share": under / n, "max_step": jnp.max(jnp.stack(step)),
            "min_abs_nu": jnp.min(jnp.stack(min_nu))}
  return probe
