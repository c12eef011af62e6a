r"""Central-flow speed on the configuration of the public minimal GD example, on
"CIFAR-shaped digits" (dynamics/data 'cifar_digits': 1,000 images of 4 classes, 3x32x32).

    python -m benchmarks.central_flow_speed                  # 3 timed steps, then the estimate
    python -m benchmarks.central_flow_speed --steps=400      # the whole run

The settings are experiments/configs/central_flow_speed.py's: MLP 3072-256-256-4 with GELU and
PyTorch-default init, MSE, full-batch GD at lr 0.02; the central flow with 4 Euler substeps and
--k tracked eigenvalues (default 3, the public example's start; the figure adds directions as
the flow needs them, so time the count it reached with --k too), float64 by default, and the
stable (gradient) flow with 10 substeps. Prints seconds per optimizer step of each (compile and
a warm-up execution excluded; from runs of 1 and 1 + --steps steps, so the one-time cold
eigen-solve at the start is reported apart) and the projected total for 400 steps. The public
PyTorch code takes 1.19 s per central-flow step on one H100 (REFERENCE.md Sec. 2); it does not
run without CUDA.
"""
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from analysis import central_flow
from benchmarks import common
from dynamics import experiment
from experiments.configs import central_flow_speed

_STEPS = flags.DEFINE_integer("steps", 3, "Timed optimizer steps per process.")
_FLOAT32 = flags.DEFINE_bool("float32", False, "Run in float32 instead of float64.")
_K = flags.DEFINE_integer("k", 3, "Tracked directions of the central flow.")

C = central_flow_speed.get_config()
S = C.analysis.central_flow
LR, CF_SUBSTEPS, GF_SUBSTEPS, TOTAL = (C.opt.learning_rate, S.substeps, S.stable_substeps,
                                       S.steps)


def setup(dtype):
  """(loss_fn, params, batch) of the config's run in `dtype`: its initial parameters as the
  engine draws them (dynamics.train: the init key is the first half of PRNGKey(seed))."""
  C.train.float64 = jnp.dtype(dtype) == jnp.float64
  problem, _, model = experiment.build_problem(experiment.resolve(C))
  params = model.init(jax.random.split(jax.random.PRNGKey(C.seed))[0], dtype=dtype)
  return problem.batch_loss, params, jax.tree.map(jnp.asarray, problem.full_batch())


def _timed_run(loss_fn, params, batch, steps, substeps, threshold):
  """Seconds of one compiled run of `steps` steps (compile and a first, warm-up execution
  excluded: the first execution of each program also pays one-time costs) and its logs."""
  run = jax.jit(lambda p: central_flow.gd_central_flow(
      loss_fn, p, batch, LR, steps, k=_K.value, substeps=substeps, threshold=threshold,
      lanczos_iters=S.lanczos_iters)).lower(params).compile()
  print(f"  {steps} step(s), {substeps} substeps: compiled", flush=True)   # where a run stalls
  t = time.perf_counter()
  jax.block_until_ready(run(params))
  print(f"  warm-up run {time.perf_counter() - t:.1f} s", flush=True)
  t = time.perf_counter()
  _, logs = jax.block_until_ready(run(params))
  return time.perf_counter() - t, logs


def seconds_per_step(loss_fn, params, batch, steps, substeps, threshold):
  """(seconds per step, seconds of the start-up, logs): runs of 1 and 1 + steps steps, so the
  one-time cold eigen-solve at the start is not spread over the steps."""
  t1, _ = _timed_run(loss_fn, params, batch, 1, substeps, threshold)
  t2, logs = _timed_run(loss_fn, params, batch, 1 + steps, substeps, threshold)
  per_step = (t2 - t1) / steps
  return per_step, t1 - per_step, logs


def main(argv):
  del argv
  if not _FLOAT32.value:
    jax.config.update("jax_enable_x64", True)
  dtype = jnp.float32 if _FLOAT32.value else jnp.float64
  with jax.default_matmul_precision("highest"):
    loss_fn, params, batch = setup(dtype)
    n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
    cf, cf_start, logs = seconds_per_step(loss_fn, params, batch, _STEPS.value, CF_SUBSTEPS,
                                          central_flow.THRESHOLD)
    gf, _, _ = seconds_per_step(loss_fn, params, batch, _STEPS.value, GF_SUBSTEPS, np.inf)
  res = dict(device=common.device_name(), jax=jax.__version__, params=n,
             dtype=str(np.dtype(dtype)), steps_timed=_STEPS.value, k=_K.value,
             central_flow_s_per_step=cf, stable_flow_s_per_step=gf,
             central_flow_startup_s=cf_start, central_flow_400_steps_s=cf_start + cf * TOTAL,
             sharpness_first_step=float(logs.sharpness[0] / LR))
  print(f"device: {res['device']}  jax {res['jax']}  {n:,} parameters, {res['dtype']}")
  print(f"central flow ({CF_SUBSTEPS} substeps, {_K.value} eigenvalues): {cf:.3f} s/step "
        f"after a {cf_start:.2f} s start, {TOTAL} steps ~ {(cf_start + cf * TOTAL) / 60:.1f} min")
  print(f"stable flow ({GF_SUBSTEPS} substeps): {gf:.3f} s/step")
  if common.OUT.value:
    with open(common.OUT.value, "w") as f:
      json.dump(res, f, indent=1)


if __name__ == "__main__":
  app.run(main)
