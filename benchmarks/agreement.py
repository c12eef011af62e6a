r"""Does one device compute what another computes? Metrics of the same runs, compared.

    python -m benchmarks.agreement --out=gpu.json           # on the GPU: run every case
    python -m benchmarks.agreement --out=cpu.json           # on the CPU: the same cases
    python -m benchmarks.agreement --compare cpu.json gpu.json

Cases: the quickstart (fc-tanh 2x64 on digits, GD at three learning rates, 4,000 steps) and
`eos_gd:quick` (sharpness every step, four learning rates), each in float64 and in float32 at
`highest` matmul precision. `--compare` prints, per case and metric, the largest difference
relative to the metric's largest magnitude over the run (so a metric that passes through zero
is not judged by its smallest values), and the first log step whose difference exceeds `--tol`.
"""
import json
import sys
import tempfile

import numpy as np
from absl import app, flags

from benchmarks import common

_CASES = flags.DEFINE_list("cases", "quickstart,eos_gd:quick", "Config specs to run.")
_COMPARE = flags.DEFINE_bool("compare", False, "Compare the two JSON files given as arguments.")
_TOL = flags.DEFINE_float("tol", 1e-10, "Report the first log step past this relative gap.")


def run_cases(specs) -> dict:
  import jax
  from analysis import trajectory
  from dynamics import experiment
  from experiments import cli
  out = dict(device=common.device_name(), jax=jax.__version__, cases={})
  for spec in specs:
    for dtype in ("float64", "float32"):
      name, _, variant = spec.partition(":")
      config = cli.load_config(f"experiments/configs/{name}.py:{variant}")
      config.train.float64 = dtype == "float64"
      config.train.precision = "highest"
      config.train.keep = "none"
      with tempfile.TemporaryDirectory() as workdir:
        experiment.run(config, workdir, log=lambda *a, **k: None)
        traj = trajectory.load(workdir)
        out["cases"][f"{spec} {dtype}"] = dict(
            steps=traj.steps.tolist(),
            metrics={k: np.asarray(v, np.float64).tolist() for k, v in traj.metrics.items()})
      print(f"{spec} {dtype}: {len(traj.steps)} log points", flush=True)
  return out


def compare(a: dict, b: dict, tol: float) -> list[dict]:
  """Per case and metric: max |a - b| / max |a| over members and log steps, and the first log
  step where that elementwise gap (relative to max |a|) exceeds tol."""
  rows = []
  for case in sorted(set(a["cases"]) & set(b["cases"])):
    ca, cb = a["cases"][case], b["cases"][case]
    n = min(len(ca["steps"]), len(cb["steps"]))
    for name in sorted(set(ca["metrics"]) & set(cb["metrics"])):
      x = np.asarray(ca["metrics"][name], np.float64)[..., :n]
      y = np.asarray(cb["metrics"][name], np.float64)[..., :n]
      both = np.isfinite(x) & np.isfinite(y)
      scale = np.max(np.abs(np.where(both, x, 0.0))) or 1.0
      gap = np.where(both, np.abs(x - y), 0.0) / scale
      nan_mismatch = bool(np.any(np.isfinite(x) != np.isfinite(y)))
      over = np.nonzero(np.max(gap.reshape(-1, n), axis=0) > tol)[0]
      rows.append(dict(case=case, metric=name, max_rel=float(gap.max()),
                       first_over=int(ca["steps"][over[0]]) if len(over) else None,
                       nan_mismatch=nan_mismatch,
                       log_points=(len(ca["steps"]), len(cb["steps"]))))
  return rows


def main(argv):
  if not _COMPARE.value:
    results = run_cases(_CASES.value)
    if common.OUT.value:
      with open(common.OUT.value, "w") as f:
        json.dump(results, f)
    return
  if len(argv) != 3:
    sys.exit("usage: python -m benchmarks.agreement --out=FILE.json | --compare A.json B.json")
  a, b = (json.load(open(p)) for p in argv[1:])
  print(f"{a['device']} (jax {a['jax']}) against {b['device']} (jax {b['jax']}), "
        f"tolerance {_TOL.value:g}")
  for r in compare(a, b, _TOL.value):
    first = "-" if r["first_over"] is None else r["first_over"]
    print(f"{r['case']:<24} {r['metric']:<22} max rel {r['max_rel']:.2e}  first step over "
          f"tolerance {first}{'  NaN pattern differs' if r['nan_mismatch'] else ''}")


if __name__ == "__main__":
  app.run(main)
