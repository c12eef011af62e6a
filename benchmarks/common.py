"""Shared pieces of the benchmarks: device peaks, FLOP counts, timing."""
import re
import time

import jax
import numpy as np
from absl import flags

# Flags more than one benchmark takes are defined here once, so that any set of benchmark
# modules can be imported together (absl refuses a flag name defined by two modules).
OUT = flags.DEFINE_string("out", "", "Write the results as JSON here.")
STEPS_PER_CHUNK = flags.DEFINE_integer("steps_per_chunk", 1000, "Steps per compiled chunk.")
LOG_EVERY = flags.DEFINE_integer("log_every", 100, "Steps between log points.")
REPEATS = flags.DEFINE_integer("repeats", 3, "Timed chunks per measurement.")
PEAK_TFLOPS = flags.DEFINE_float("peak_tflops", 0.0,
                                 "fp32 peak of the device (0: from a table).")

# Dense fp32 peaks (no tensor cores; TF32 is off by default here), in TFLOP/s, from the
# vendors' data sheets, keyed by the model name in jax's device_kind (e.g. "NVIDIA H100 80GB
# HBM3"); the longest name that occurs as a whole word wins ("H100 PCIe" over "H100", and "L4"
# never matches "L40S"). CPUs: pass --peak_tflops.
FP32_PEAK_TFLOPS = {"H100": 66.9, "H100 PCIe": 51.2, "H100 NVL": 60.0, "H200": 66.9,
                    "H200 NVL": 60.0, "A100": 19.5, "L4": 30.3, "L40": 90.5, "L40S": 91.6,
                    "V100": 15.7, "T4": 8.1}


def device_name() -> str:
  d = jax.devices()[0]
  return f"{d.platform}:{getattr(d, 'device_kind', '?')} x{len(jax.devices())}"


def peak_of_kind(kind: str) -> float:
  """fp32 peak of one device whose device_kind is `kind` (0 if not in the table)."""
  hits = [n for n in FP32_PEAK_TFLOPS
          if re.search(r"(?<![A-Za-z0-9])" + re.escape(n) + r"(?![A-Za-z0-9])", kind)]
  return FP32_PEAK_TFLOPS[max(hits, key=len)] if hits else 0.0


def fp32_peak_tflops(override: float = 0.0) -> float:
  """The fp32 peak of all devices together (override wins), or 0 if unknown."""
  if override:
    return override
  return peak_of_kind(getattr(jax.devices()[0], "device_kind", "")) * len(jax.devices())


def flops_of(fn, *args) -> float:
  """XLA's FLOP count for one call of jit(fn)(*args), on all devices together.

  Counted on the lowered program, before the backend optimizes it: XLA:GPU's count of the
  compiled program leaves out the matrix products it hands to cuBLAS (one NVIDIA H200,
  jax 0.11.2: 1.69 of the 6.4 GFLOP of a grokking step), while the lowered count is the same
  on every backend (within 0.2% of XLA:CPU's compiled count) and that of the unsharded program
  (the arguments are brought to the host first; a compiled sharded program counts per device).
  """
  args = jax.device_get(args)
  lowered = jax.jit(fn).lower(*args)
  cost = lowered.cost_analysis() or lowered.compile().cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  return float(cost.get("flops", 0.0)) if cost else 0.0


def time_calls(fn, n: int) -> float:
  """Seconds per call of fn() (which must block on its result), after one warm-up call."""
  fn()
  t = time.perf_counter()
  for _ in range(n):
    fn()
  return (time.perf_counter() - t) / n


def measure_training(config, repeats: int, peak_override: float = 0.0) -> dict:
  """ms/step, throughput and achieved FLOP/s of whole compiled chunks of a training config.

  The config's train.chunk_steps steps (one log point per train.log_every steps, metrics and
  probes included) run as one compiled program, timed after a warm-up chunk that compiles.
  FLOPs are XLA's count for one step of all members.
  """
  from dynamics import experiment
  cfg = experiment.resolve(config)
  if cfg.train.float64 or cfg.loss.float64:
    jax.config.update("jax_enable_x64", True)
  _, _, _, _, _, program, run = experiment.Experiment.from_config(cfg, resolved=True)
  state = run.init_state()
  members = run.n
  n_logs = run.max_logs
  box = {"state": state}

  def one_chunk():
    box["state"], _ = run.run_chunk(box["state"], n_logs)
    jax.block_until_ready(box["state"].params)

  sec = time_calls(one_chunk, repeats)
  steps = n_logs * cfg.train.log_every
  step_fn = jax.vmap(lambda s: program.train_step(s, run.data))
  with jax.default_matmul_precision(cfg.train.precision):
    flops = flops_of(step_fn, box["state"])
  ms = 1e3 * sec / steps
  peak = fp32_peak_tflops(peak_override)
  achieved = flops / (ms * 1e-3) / 1e12
  n_params = sum(int(np.prod(x.shape[1:])) for x in jax.tree.leaves(state.params))
  return dict(members=members, params_per_member=n_params, ms_per_step=ms,
              ms_per_step_per_member=ms / members, steps_per_s=1e3 / ms,
              member_steps_per_s=members * 1e3 / ms, gflop_per_step=flops / 1e9,
              achieved_tflops=achieved, peak_tflops=peak,
              fraction_of_peak=achieved / peak if peak else None)


def report(results: dict, out: str = "") -> None:
  """Prints the table of a training benchmark's results and writes them as JSON to `out`."""
  print_table(results)
  if out:
    import json
    with open(out, "w") as f:
      json.dump(results, f, indent=1)


def print_table(results: dict) -> None:
  print(f"device: {results['device']}  jax {results['jax']}")
  print(f"{'members':>8} {'ms/step':>9} {'ms/step/member':>15} {'member-steps/s':>15} "
        f"{'GFLOP/step':>11} {'TFLOP/s':>8} {'of fp32 peak':>13}")
  for r in results["runs"]:
    frac = f"{100 * r['fraction_of_peak']:.1f}%" if r["fraction_of_peak"] else "n/a"
    print(f"{r['members']:>8} {r['ms_per_step']:>9.3f} {r['ms_per_step_per_member']:>15.3f} "
          f"{r['member_steps_per_s']:>15,.0f} {r['gflop_per_step']:>11.3f} "
          f"{r['achieved_tflops']:>8.3f} {frac:>13}")
