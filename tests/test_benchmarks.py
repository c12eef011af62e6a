"""The benchmarks' accounting: device peaks by name, FLOPs that do not depend on the device
count (the timings themselves are measurements, not tests)."""
import importlib
import json
import os
import subprocess
import sys

import pytest

from benchmarks import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("kind,peak", [
    ("NVIDIA H100 80GB HBM3", 66.9), ("NVIDIA H100 PCIe", 51.2), ("NVIDIA H100 NVL", 60.0),
    ("NVIDIA H200", 66.9), ("NVIDIA A100-SXM4-80GB", 19.5), ("NVIDIA L4", 30.3),
    ("NVIDIA L40S", 91.6), ("NVIDIA L40", 90.5), ("Tesla T4", 8.1), ("cpu", 0.0)])
def test_peak_table_matches_whole_model_names(kind, peak):
  assert common.peak_of_kind(kind) == peak


_FLOPS = """
import json, sys
sys.path.insert(0, "tests")
import tiny
from benchmarks import common
cfg = tiny.config(steps=10, log_every=5, chunk_steps=10)
r = common.measure_training(cfg, repeats=1)
import jax
print(json.dumps(dict(devices=len(jax.devices()), gflop=r["gflop_per_step"])))
"""


def _flops_on(n_devices):
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n_devices}",
             JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", _FLOPS], cwd=ROOT, env=env, check=True,
                       capture_output=True, text=True).stdout
  return json.loads(out.strip().splitlines()[-1])


def test_training_flops_are_counted_for_all_devices_together():
  # XLA counts a sharded program per device; the benchmark counts the whole sweep
  one, two = _flops_on(1), _flops_on(2)
  assert (one["devices"], two["devices"]) == (1, 2)
  assert one["gflop"] > 0
  assert two["gflop"] == pytest.approx(one["gflop"], rel=1e-6)


def test_curvature_overhead_variants_are_valid_eos_gd_configs():
  # the variants timed on the GPU must resolve (a typo would surface only there)
  from benchmarks import curvature_speed
  from dynamics import experiment
  importlib.import_module("analysis")      # registers the sharpness probe
  assert set(curvature_speed.VARIANTS) >= {"without", "lanczos", "track"}
  for name, overrides in curvature_speed.VARIANTS.items():
    probes = experiment.resolve(curvature_speed.eos_config(name)).probes
    assert ("sharpness" in probes) == (overrides is not None)
    if overrides is not None:
      assert probes.sharpness.method == overrides.get("method", "lanczos")
      assert all(probes.sharpness[k] == v for k, v in overrides.items())


def test_curvature_overhead_factors():
  from benchmarks import curvature_speed
  out = curvature_speed.with_factors({"without": 2.0, "lanczos": 25.0, "track": 5.0})
  assert out == {"without": 2.0, "lanczos": 25.0, "track": 5.0, "factor_lanczos": 12.5,
                 "factor_track": 2.5}
  assert curvature_speed.with_factors({"track": 5.0}) == {"track": 5.0}


def test_flops_of_counts_a_matrix_product_as_2mnk():
  import jax.numpy as jnp
  a, b = jnp.ones((64, 48)), jnp.ones((48, 32))
  assert common.flops_of(jnp.matmul, a, b) == 2 * 64 * 48 * 32


def test_agreement_compares_relative_to_each_metrics_largest_magnitude():
  from benchmarks import agreement
  steps = [0, 10, 20]
  a = dict(cases={"c": dict(steps=steps, metrics={"loss": [[2.0, 1.0, 0.0]],
                                                  "acc": [[0.5, 0.75, 1.0]]})})
  b = dict(cases={"c": dict(steps=steps, metrics={"loss": [[2.0, 1.0, 1e-3]],
                                                  "acc": [[0.5, 0.75, float("nan")]]})})
  rows = {r["metric"]: r for r in agreement.compare(a, b, tol=1e-4)}
  assert rows["loss"]["max_rel"] == pytest.approx(1e-3 / 2.0)      # scaled by max |a| = 2
  assert rows["loss"]["first_over"] == 20 and not rows["loss"]["nan_mismatch"]
  assert rows["acc"]["max_rel"] == 0.0 and rows["acc"]["first_over"] is None
  assert rows["acc"]["nan_mismatch"]


def test_every_benchmark_module_imports_beside_the_others():
  # absl refuses a flag name that two modules define: tests import benchmarks side by side.
  names = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "benchmarks"))
                 if f.endswith(".py") and f != "__init__.py")
  code = "".join(f"import benchmarks.{n}\n" for n in names)
  proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr[-2000:]


def test_sharpness_accuracy_errors_over_the_finite_entries():
  import numpy as np
  from benchmarks import sharpness_accuracy
  ref = np.array([[10.0, 20.0, np.nan], [4.0, 5.0, 8.0]])
  est = np.array([[10.0, 20.1, 3.0], [4.002, np.nan, 8.0]])
  e = sharpness_accuracy.errors(est, ref)
  assert e["count"] == 4 and e["over"] == 1            # 0.1 / 20 = 5e-3 > 1e-3 only
  assert e["max"] == pytest.approx(5e-3) and e["median"] == pytest.approx(2.5e-4)


def test_train_speed_ratio_takes_each_kinds_fastest_round():
  from benchmarks import train_speed
  runs = [dict(members=1, ms_per_step_per_member=3.5), dict(members=16, ms_per_step_per_member=3.6),
          dict(members=1, ms_per_step_per_member=3.0), dict(members=16, ms_per_step_per_member=3.3)]
  assert train_speed.cost_ratio(runs) == pytest.approx(3.3 / 3.0)
