r"""Curvature speed: top-1 / top-5 Hessian eigenvalues to relative residual 1e-3, warm starts,
and the overhead of tracking sharpness at every step.

    python -m benchmarks.curvature_speed [--out=FILE.json] [--overhead_only]

Model: fc-tanh 2x200 with MSE on the 1,500 digits training images (full batch, float32 at
'highest' precision), at the initialization and after 200 GD steps (eta = 0.05). For each k the
smallest Lanczos iteration count (from a grid) whose relative residuals are all <= 1e-3 is found,
and that jitted solve is timed (compile excluded). The warm-started estimate is the in-loop case:
Lanczos from the previous step's eigenvector after one more GD step. The overhead factors are the
ms/step of whole eos_gd runs (4-member sweep, log every step, from init until every member
reaches 99% train accuracy, compile excluded) with each in-loop variant of the sharpness probe
(VARIANTS) against the same run without the probe, all after one cold 40-step Lanczos solve at
init: 'lanczos', 8 warm-started steps per step (the earlier setting); 'lanczos_tol', the
config's own: warm Lanczos that stops once the relative residual is <= 1e-3
(analysis.lanczos.lanczos_until); 'track': one LOBPCG
block iteration per step, a single batched product of 3 Hessian-vector products per member (7
with memory=2, 6 with guard=1), repeated with tol while a member's relative residual is above
tol. benchmarks.sharpness_accuracy measures the same variants' errors against cold solves.
"""
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from analysis import curvature
from benchmarks import common
from dynamics import experiment
from experiments.configs.common import base_config

_OVERHEAD_ONLY = flags.DEFINE_bool("overhead_only", False, "Only the in-loop overhead on eos_gd "
                                   "(skip the solves to tolerance).")
_OVERHEAD_CONFIG = flags.DEFINE_string("overhead_config", "eos_gd",
                                       "Config spec whose whole runs are timed.")
_GRID = (5, 10, 15, 20, 25, 30, 40, 50, 60, 80)


def _setup():
  c = base_config("mlp", "digits", "gd")
  c.model.widths = (200, 200)
  cfg = experiment.resolve(c)
  _, ds, model, _, _, program, _ = experiment.Experiment.from_config(cfg, resolved=True)
  batch = {"x": jnp.asarray(ds.x_train), "y": jnp.asarray(ds.y_train)}
  params = model.init(jax.random.PRNGKey(0))
  step = jax.jit(lambda p: jax.tree.map(lambda w, g: w - 0.05 * g, p,
                                        jax.grad(program.batch_loss)(p, batch)))
  return program.batch_loss, params, batch, step


def _solve(loss, k, iters):
  return jax.jit(lambda p, b, v0, key: curvature.top_eigenpairs(
      loss, p, b, k=k, num_iters=iters, v0=v0, key=key))


def to_tolerance(loss, params, batch, k, v0=None, tol=1e-3):
  key = jax.random.PRNGKey(1)
  for iters in _GRID:
    fn = _solve(loss, k, iters)
    e = fn(params, batch, v0, key)
    if float(jnp.max(e.residuals)) <= tol:
      sec = common.time_calls(lambda: jax.block_until_ready(fn(params, batch, v0, key)), 5)
      return dict(k=k, num_iters=iters, hvps=int(e.num_matvecs), ms=1e3 * sec,
                  max_residual=float(jnp.max(e.residuals)),
                  eigenvalues=[float(x) for x in e.eigenvalues])
  return dict(k=k, num_iters=None, note=f"residual > {tol} at {_GRID[-1]} iterations")


# The in-loop variants timed by overhead() and checked by benchmarks.sharpness_accuracy:
# name -> probes.sharpness overrides of eos_gd (None: no sharpness probe).
VARIANTS = {"without": None, "lanczos": {"num_iters": 8, "tol": 0.0},
            "track": {"method": "track", "tol": 0.0},
            "track_memory2": {"method": "track", "memory": 2, "tol": 0.0},
            "track_memory2_tol": {"method": "track", "memory": 2, "tol": 1e-2, "num_iters": 8},
            "lanczos_tol": {"num_iters": 30, "tol": 1e-3},
            "track_tol": {"method": "track", "num_iters": 30, "tol": 1e-3},
            "track_guard1_tol": {"method": "track", "guard": 1, "num_iters": 30, "tol": 1e-3}}


def eos_config(variant: str, spec: str = "eos_gd"):
  """The config `spec` (e.g. 'eos_gd', 'eos_gd:quick') with probes.sharpness per variant."""
  from experiments import cli
  name, _, v = spec.partition(":")
  c = cli.load_config(f"experiments/configs/{name}.py:{v}")
  if VARIANTS[variant] is None:
    del c.probes["sharpness"]
  else:
    c.probes.sharpness.update(VARIANTS[variant])
  return c


def whole_run(config, chunk_steps: int = 50) -> tuple[float, int]:
  """(seconds, steps) of a run from init until every member has stopped, compile excluded:
  one chunk compiles first (its result discarded), then the run is timed from its start."""
  config.train.chunk_steps = chunk_steps
  run = experiment.Experiment.from_config(experiment.resolve(config), resolved=True).runner
  s, _ = run.run_chunk(run.init_state(), run.max_logs)
  jax.block_until_ready(s.params)
  t = time.perf_counter()
  state = run.init_state()
  while not np.all(np.asarray(state.done)):
    state, _ = run.run_chunk(state, run.max_logs)
  jax.block_until_ready(state.params)
  return time.perf_counter() - t, int(np.max(np.asarray(state.stop_step)))


def overhead(variants=tuple(VARIANTS), spec: str = "eos_gd", repeats: int = 2) -> dict:
  """ms/step of `spec`'s whole run (4-member sweep, log every step, until every member reaches
  99% train accuracy: the catapults and the edge included) without the sharpness probe and
  with each in-loop variant (best of `repeats`), and each variant's factor over the run
  without."""
  out = {}
  for name in variants:
    best = min(whole_run(eos_config(name, spec)) for _ in range(repeats))
    out[name] = 1e3 * best[0] / best[1]
    print(f"{spec} {name}: {out[name]:.3f} ms/step ({best[1]} steps)", flush=True)
  return with_factors(out)


def with_factors(ms: dict) -> dict:
  """ms/step per variant, plus factor_<name> = ms[name] / ms['without'] for every other one."""
  out = dict(ms)
  if "without" in ms:
    out.update({f"factor_{n}": v / ms["without"] for n, v in ms.items() if n != "without"})
  return out


def _solves() -> dict:
  """Cold solves to tolerance at init and after 200 GD steps, and a warm-started one."""
  loss, params, batch, step = _setup()
  res = dict(cold={}, warm={})
  for where in ("init", "trained"):
    if where == "trained":
      for _ in range(200):
        params = step(params)
    res["cold"][where] = [to_tolerance(loss, params, batch, k) for k in (1, 5)]
  prev = curvature.top_eigenpairs(loss, params, batch, k=1, num_iters=60,
                                  key=jax.random.PRNGKey(2)).eigenvectors
  moved = step(params)
  res["warm"] = to_tolerance(loss, moved, batch, 1, v0=prev)
  return res


def _write(res):
  if common.OUT.value:
    with open(common.OUT.value, "w") as f:
      json.dump(res, f, indent=1)


def main(argv):
  del argv
  res = dict(device=common.device_name(), jax=jax.__version__)
  t = time.time()
  res["overhead_config"] = _OVERHEAD_CONFIG.value
  # first: the speed goal, written before the solves
  res["overhead_eos_gd"] = overhead(spec=_OVERHEAD_CONFIG.value)
  res["overhead_seconds"] = time.time() - t
  _write(res)
  if not _OVERHEAD_ONLY.value:
    with jax.default_matmul_precision("highest"):
      res.update(_solves())
    _write(res)
  print(json.dumps(res, indent=1))


if __name__ == "__main__":
  app.run(main)
