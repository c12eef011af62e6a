"""In-loop probes named in config.probes, built for a given program and model.

config.probes maps a probe name to its settings, e.g.

    config.probes.weight_norm = {}
    config.probes.grad_norm = {}

Every probe runs at every log point inside the compiled program (see dynamics.train.Probe).
"""
from typing import Any

import jax
import jax.numpy as jnp

from dynamics import config_utils as cu


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


PROBES = {"weight_norm": (weight_norm, {"per_leaf": False}), "grad_norm": (grad_norm, {})}


def validate(cfg: Any) -> None:
  for name in cfg.keys():
    cu.check_choice("probes", name, PROBES)
    cu.check_fields(f"probes.{name}", cfg[name], PROBES[name][1])


def build(cfg: Any, program, model) -> dict:
  """name -> probe for every probe in cfg."""
  validate(cfg)
  return {name: PROBES[name][0](cfg[name], program, model) for name in cfg.keys()}
