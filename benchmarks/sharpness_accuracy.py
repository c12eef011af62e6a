r"""How close is an in-loop sharpness estimate to a cold solve, at every logged step?

    python -m benchmarks.sharpness_accuracy [--configs=eos_gd,eos_gd:quick] \
        [--variants=lanczos,lanczos_tol] [--out=FILE.json]

For each config (the edge-of-stability figures' runs) the run is made once with a cold
30-step Lanczos solve from a fresh random vector at every log point (probes.sharpness with
warm=False, num_iters=30: the reference) and once per variant of the in-loop probe. Full-batch
GD is deterministic and the probe does not touch training, so every run passes through the
same parameters and the estimates are compared step by step: per variant the largest and the
median relative error |estimate - reference| / |reference| over members and logged steps, the
number of logged values whose error exceeds 1e-3, and the probe's average iteration count
where it reports one. The variants are those of benchmarks.curvature_speed, which times them.
"""
import json
import tempfile

import numpy as np
from absl import app, flags

from benchmarks import common, curvature_speed
from dynamics import experiment

REFERENCE = dict(k=1, num_iters=30, cold_iters=0, warm=False)

_CONFIGS = flags.DEFINE_list("configs", "eos_gd,eos_gd:quick", "Config specs to measure.")
_VARIANTS = flags.DEFINE_list("variants", "lanczos,lanczos_tol,track_tol,track_guard1_tol",
                              "Variants of the probe (benchmarks.curvature_speed.VARIANTS).")


def sharpness_run(config, workdir: str) -> dict:
  """One run of `config`: its steps, top eigenvalue [member, log point] and, when reported,
  iterations."""
  from analysis import trajectory
  config.train.keep = "none"
  experiment.run(config, workdir, log=lambda *a, **k: None)
  traj = trajectory.load(workdir)
  out = dict(steps=traj.steps, sharpness=traj.metrics["sharpness/max"])
  if "sharpness/iterations" in traj.metrics:
    out["iterations"] = traj.metrics["sharpness/iterations"]
  return out


def errors(estimate: np.ndarray, reference: np.ndarray, tol: float = 1e-3) -> dict:
  """Relative errors of estimate against reference over the entries where both are finite."""
  both = np.isfinite(estimate) & np.isfinite(reference)
  rel = np.abs(estimate[both] - reference[both]) / np.abs(reference[both])
  return dict(max=float(rel.max()), median=float(np.median(rel)),
              over=int(np.sum(rel > tol)), count=int(rel.size))


def measure(specs, variants) -> dict:
  out = dict(device=common.device_name(), configs={})
  for spec in specs:
    reference = curvature_speed.eos_config("lanczos", spec)
    reference.probes.sharpness.update(REFERENCE)
    with tempfile.TemporaryDirectory() as d:
      ref = sharpness_run(reference, d)
    res = {}
    for v in variants:
      with tempfile.TemporaryDirectory() as d:
        run = sharpness_run(curvature_speed.eos_config(v, spec), d)
      assert np.array_equal(run["steps"], ref["steps"]), (spec, v)
      res[v] = errors(run["sharpness"], ref["sharpness"])
      if "iterations" in run:
        res[v]["iterations"] = float(np.nanmean(run["iterations"]))
      print(f"{spec} {v}: {res[v]}", flush=True)
    out["configs"][spec] = res
  return out


def main(argv):
  del argv
  res = measure(_CONFIGS.value, _VARIANTS.value)
  if common.OUT.value:
    with open(common.OUT.value, "w") as f:
      json.dump(res, f, indent=1)


if __name__ == "__main__":
  app.run(main)
