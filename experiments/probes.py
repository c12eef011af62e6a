"""In-loop probes named in config.probes, built for a given program and model.

config.probes maps a probe name to its settings, e.g.

    config.probes.weight_norm = {}
    config.probes.grad_norm = {}

Every probe runs at every log point inside the compiled program (see dynamics.train.Probe).
Curvature probes (sharpness, preconditioned_sharpness, batch_sharpness, hessian_trace) come from
analysis.curvature and use the full training batch (never a small batch for "the" sharpness).
"""
from typing import Any

import jax
import jax.numpy as jnp

from analysis import curvature, grokking
from dynamics import config_utils as cu
from dynamics import train


def _sq_norm(tree) -> jax.Array:
  return sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree))


def weight_norm(settings, program, model):
  """Sum of squared parameters; per leaf too with per_leaf=True."""
  del program, model

  def probe(params, opt_state, batch):
    del opt_state, batch
    if not settings.get("per_leaf", False):
      return _sq_norm(params)
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    out = {jax.tree_util.keystr(path, simple=True, separator="/"): jnp.sum(jnp.square(x))
           for path, x in flat}
    out["total"] = _sq_norm(params)
    return out
  return probe


def grad_norm(settings, program, model):
  """Norm of the full-batch gradient."""
  del settings, model

  def probe(params, opt_state, batch):
    del opt_state
    return jnp.sqrt(_sq_norm(jax.grad(program.batch_loss)(params, batch)))
  return probe


def _top(probe):
  """Adds 'max' (the top eigenvalue, a scalar per log point) to an eigenvalue probe's output."""
  def apply(pstate, params, opt_state, batch, key):
    pstate, out = probe.apply(pstate, params, opt_state, batch, key)
    return pstate, dict(out, max=out["eigenvalues"][0])
  return train.Probe(init=probe.init, apply=apply)


def sharpness(settings, program, model):
  """Top-k Hessian eigenvalues of the full-batch loss, warm-started Lanczos (Cohen et al. 2021)."""
  del model
  return _top(curvature.sharpness_probe(program.batch_loss, k=settings.k,
                                        num_iters=settings.num_iters,
                                        cold_iters=settings.cold_iters))


def preconditioned_sharpness(settings, program, model):
  """Top eigenvalues of P^-1/2 H P^-1/2 with the optimizer's own P (Cohen et al. 2022); NaN
  at step 0 for adaptive optimizers (no second moment yet)."""
  del model
  if program.is_flow:
    raise cu.ConfigError("probes.preconditioned_sharpness needs an optimizer with a "
                         "preconditioner; opt.name='flow' has none")
  precondition = lambda opt_state, params: program.opt.preconditioner(opt_state, params)
  probe = curvature.sharpness_probe(program.batch_loss, k=settings.k,
                                    num_iters=settings.num_iters, precondition_fn=precondition)
  if program.opt.name not in ADAPTIVE:
    return _top(probe)

  def apply(pstate, params, opt_state, batch, key):
    # before the first update an adaptive optimizer's nu is 0 and P = eps / eta: no
    # preconditioner has been used yet, so report NaN and keep the (cold) start vectors
    new, out = probe.apply(pstate, params, opt_state, batch, key)
    fresh = opt_state.count == 0
    out = jax.tree.map(lambda v: jnp.where(fresh, jnp.nan, v), out)
    vecs = jax.tree.map(lambda a, b: jnp.where(fresh, a, b), pstate["vectors"], new["vectors"])
    return dict(new, vectors=vecs), out
  return _top(train.Probe(init=probe.init, apply=apply))


# optimizers whose P comes from a second moment that is zero before the first update
ADAPTIVE = ("rmsprop", "scalar_rmsprop", "adam", "adamw")


def _minibatches(batch, key, batch_size, num_batches):
  """num_batches independent minibatches, each drawn without replacement: [num_batches, B, ...]."""
  n = batch["x"].shape[0]
  keys = jax.random.split(key, num_batches)
  idx = jax.vmap(lambda k: jax.random.permutation(k, n)[:batch_size])(keys)
  return {k: v[idx] for k, v in batch.items()}


def batch_sharpness(settings, program, model):
  """SGD's batch sharpness: mean lambda_max(H_B) and mean g_B^T H_B g_B / ||g_B||^2.

  batch_size 0 (the default) means the training batch size (train.batch_size; the whole
  training set for full-batch runs).
  """
  del model
  size = settings.batch_size or program.batch_size or program.n_train
  if size > program.n_train:
    raise cu.ConfigError(f"probes.batch_sharpness.batch_size={size} is not allowed; it must be "
                         f"at most the {program.n_train} training examples (0: the training "
                         "batch size)")

  def apply(pstate, params, opt_state, batch, key):
    del opt_state
    batches = _minibatches(batch, key, size, settings.num_batches)
    out = curvature.batch_sharpness(program.batch_loss, params, batches,
                                    num_iters=settings.num_iters, key=key)
    return pstate, {"mean_lambda_max": out["mean_lambda_max"],
                    "directional": out["directional"]}
  return train.Probe(init=lambda params, batch=None: (), apply=apply)


def hessian_trace(settings, program, model):
  """Hutchinson estimate of tr(H) (Rademacher probes) and its standard error."""
  del model

  def apply(pstate, params, opt_state, batch, key):
    del opt_state
    est, se = curvature.hutchinson_trace(program.batch_loss, params, batch, key,
                                         num_probes=settings.num_probes)
    return pstate, {"estimate": est, "stderr": se}
  return train.Probe(init=lambda params, batch=None: (), apply=apply)


def softmax_collapse(settings, program, model):
  """Prieto et al. 2025's diagnostics on the training batch, in the run's working precision:
  share of samples whose sum exp(z - max z) is exactly 1 (softmax collapse), share of
  exactly-zero per-sample cross-entropy losses, and the cosine between gradient and weights."""
  del settings, model

  def probe(params, opt_state, batch):
    del opt_state
    logits = program.apply(params, batch["x"])
    grads = jax.grad(program.batch_loss)(params, batch)
    return {"share": grokking.softmax_collapse_share(logits),
            "zero_loss_share": grokking.zero_loss_share(logits, batch["y"]),
            "grad_weight_cosine": grokking.grad_weight_cosine(grads, params)}
  return probe


def adam_moments(settings, program, model):
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
  del model
  if program.is_flow or program.opt.name not in ("adam", "adamw"):
    name = "flow" if program.is_flow else program.opt.name
    raise cu.ConfigError(f"probes.adam_moments needs opt.name 'adam' or 'adamw'; got {name!r}")
  del settings

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


PROBES = {
    "weight_norm": (weight_norm, {"per_leaf": False}),
    "grad_norm": (grad_norm, {}),
    # cold_iters: one cold solve at init, so each in-loop call is warm (num_iters can be small)
    "sharpness": (sharpness, {"k": 1, "num_iters": 20, "cold_iters": 0}),
    "preconditioned_sharpness": (preconditioned_sharpness, {"k": 1, "num_iters": 20}),
    # batch_size 0: the training batch size
    "batch_sharpness": (batch_sharpness, {"batch_size": 0, "num_batches": 8, "num_iters": 20}),
    "hessian_trace": (hessian_trace, {"num_probes": 20}),
    "softmax_collapse": (softmax_collapse, {}),
    "adam_moments": (adam_moments, {}),
}


def validate(cfg: Any) -> None:
  for name in cfg.keys():
    cu.check_choice("probes", name, PROBES)
    cu.check_fields(f"probes.{name}", cfg[name], PROBES[name][1])


def build(cfg: Any, program, model) -> dict:
  """name -> probe for every probe in cfg (settings completed with their defaults)."""
  validate(cfg)
  return {name: PROBES[name][0](cu.with_defaults(f"probes.{name}", cfg[name], PROBES[name][1]),
                                program, model) for name in cfg.keys()}
