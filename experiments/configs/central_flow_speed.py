r"""The configuration of the public central-flows code's minimal GD example, on "CIFAR-shaped
digits" (dynamics/data 'cifar_digits': classes 0-3 of the digits, 250 images per class, each
8x8 image enlarged to 3x32x32 and normalized like CIFAR-10): the problem on which the public
PyTorch code takes 1.19 s per central-flow step on one H100 (REFERENCE.md Sec. 2).

MLP 3072-256-256-4 with GELU and PyTorch-default init (853,508 parameters), MSE, full-batch GD
at lr 0.02 (2/eta = 100) from initialization; the central flow with 4 Euler substeps and 3
tracked eigenvalues, the stable flow with 10 substeps; 400 steps; float64.

    python -m experiments.reproduce --figure=central_flow_speed [--quick]
    python -m benchmarks.central_flow_speed          # seconds per step only

The central flow starts with 3 tracked directions and adds one whenever the smallest tracked
effective eigenvalue reaches 1.5 (the public code's rule), up to 8 (`k_max`).

    python -m experiments.main --config=experiments/configs/central_flow_speed.py:k3 --workdir=DIR

Variants (combine with '_'): `quick`, the first 40 steps, or `stepsN`, the first N (a multiple
of 20); `seedN`, another initialization, or `seeds`, seeds 0-4 as one sweep
(`--figure=central_flow_speed_seeds` runs `:seeds_steps180`, the step-180 comparison for each
draw of the weights, seed 0 the default: 27 and 25 min for seeds 1 and 2 alone on a 2-core CPU,
2026-12-01, before the sweep); `kN` (N in 1..16), exactly N tracked directions, none added
(`:k3`, the fixed 3 directions: the smallest stays above 1.5 at 99% of the steps). The
directions are analysis settings: the same command with `--config.analysis.central_flow.k=4`
on a finished DIR trains nothing and records them; then
analysis.central_flow_processes.processes(trajectory.load(DIR)) computes those flows, cached
apart from the others. Figure as central_flow_gd; the report also sets the measured numbers at step 180 beside the public code's (GD sharpness 99.7, central flow
100.0, gradient flow 206; distance GD-to-central 0.019, GD-to-gradient-flow 0.14; predicted
loss 0.018, GD's 0.017).

Run time of `:k3`: 65 min on a 2-core CPU with the cores to itself (measured 2026-11-30: the
real run 7 min, ~6 s per central-flow step, ~2 s per stable-flow step; with the cores shared,
8-14 s and 4-6 s). With directions added (the default): 64 min (measured 2026-12-01, after
the pairwise third derivatives: 5 directions from the first segment on, the 4th effective
eigenvalue peaking at 1.54; central flow ~1.8 min per 20-step segment). Each finished 20-step
segment is kept in DIR/analysis/central_flow/, so a killed run resumes there (times measured
before the run moved onto a run directory); --quick ~15 min on a 2-core CPU.
Its speed goal (0.12 s per step) is a GPU's.
"""
import re

import ml_collections

from experiments.configs.common import central_flow_config


def _numbered(parts, prefix, allowed) -> list:
  """The N of every part `prefix`N (N written without leading zeros) with N in `allowed`."""
  return [int(v[len(prefix):]) for v in parts
          if re.fullmatch(prefix + r"(0|[1-9][0-9]*)", v) and int(v[len(prefix):]) in allowed]


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  parts = set(variant.split("_")) - {""}
  ks = _numbered(parts, "k", range(1, 17))
  seeds = _numbered(parts, "seed", range(1000))
  steps = _numbered(parts, "steps", range(20, 401, 20))
  known = {"quick", "seeds"} | {f"k{n}" for n in ks} | {f"seed{n}" for n in seeds} | {
      f"steps{n}" for n in steps}
  quick = "quick" in parts
  if (parts - known or len(ks) > 1 or len(seeds) > 1 or len(steps) > 1
      or (quick and steps) or (seeds and "seeds" in parts)):
    raise ValueError(f"central_flow_speed variant {variant!r} is not allowed; combine with '_' "
                     "'quick' (40 steps) or one 'stepsN' (N a multiple of 20 in 20..400), at "
                     "most one 'kN' (N in 1..16, tracked directions) and at most one 'seedN' "
                     "(N in 0..999, the initialization seed) or 'seeds' (seeds 0-4, a sweep)")
  n = 40 if quick else steps[0] if steps else 400
  c = central_flow_config(
      dict(name="gd", learning_rate=0.02), quick=False,
      data_name="cifar_digits", widths=(256, 256), activation="gelu", init="torch",
      seed=seeds[0] if seeds else 0,
      start=0,                              # the processes start at initialization
      steps=n,
      segments=n // 10 if quick else n // 20,   # distances every 10 / 20 steps (step 180 included)
      k=ks[0] if ks else 3, k_max=ks[0] if ks else 8,   # exactly N, or 3 growing to <= 8
      substeps=4, stable_substeps=10, lanczos_iters=20, window=10)
  if "seeds" in parts:      # one member per initialization; the processes run per member
    c.sweep.seed = [0, 1, 2, 3, 4]
  return c
