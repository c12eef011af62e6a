"""Shared pieces of the benchmarks: device peaks, FLOP counts, timing."""
import time

import jax

# Dense fp32 peaks (no tensor cores; TF32 is off by default here), in TFLOP/s, from the
# vendors' data sheets. CPUs: pass --peak_tflops.
FP32_PEAK_TFLOPS = {"H100 PCIe": 51.2, "H100": 66.9, "H200": 66.9, "A100": 19.5, "L4": 30.3,
                    "V100": 15.7, "T4": 8.1}


def device_name() -> str:
  d = jax.devices()[0]
  return f"{d.platform}:{getattr(d, 'device_kind', '?')} x{len(jax.devices())}"


def fp32_peak_tflops(override: float = 0.0) -> float:
  """The device's fp32 peak (override wins), or 0 if unknown."""
  if override:
    return override
  kind = getattr(jax.devices()[0], "device_kind", "")
  for name, peak in FP32_PEAK_TFLOPS.items():  # the more specific names come first
    if name in kind:
      return peak * len(jax.devices())
  return 0.0


def flops_of(fn, *args) -> float:
  """XLA's FLOP count for one call of jit(fn)(*args)."""
  cost = jax.jit(fn).lower(*args).compile().cost_analysis()
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
