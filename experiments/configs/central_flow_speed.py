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
directions are analysis settings: the same command with `--config.analysis.central_flow.k=4` on
a finished DIR trains nothing and records them; then
analysis.central_flow_processes.processes(trajectory.load(DIR)) computes those flows, cached
apart from the others. Figure as central_flow_gd; the report also sets the measured numbers at
step 180 beside the public code's (GD sharpness 99.7, central flow 100.0, gradient flow 206;
distance GD-to-central 0.019, GD-to-gradient-flow 0.14; predicted loss 0.018, GD's 0.017).

Run time of `:k3`: 65 min on a 2-core CPU with the cores to itself (measured 2026-11-30: the
real run 7 min, ~6 s per central-flow step, ~2 s per stable-flow step; with the cores shared,
8-14 s and 4-6 s). With directions added (the default): 64 min (measured 2026-12-01, after
the pairwise third derivatives: 5 directions from the first segment on, the 4th effective
eigenvalue peaking at 1.54; central flow ~1.8 min per 20-step segment). Each finished 20-step
segment is kept in DIR/analysis/central_flow/, so a killed run resumes there (times measured
before the run moved onto a run directory); --quick ~15 min on a 2-core CPU.
Its speed goal (0.12 s per step) is a GPU's.
"""
import ml_collections

from experiments.configs.common import central_flow_config, with_flow, with_variant


def _n(part: str, text: str, allowed: range, what: str):
  """int(text) for part `part`N, refusing leading zeros and N outside `allowed`."""
  if text != str(int(text)) or int(text) not in allowed:
    raise ValueError(f"variant part '{part}{text}' is not allowed: {part}N takes {what}")
  return int(text)


VARIANTS = {
    "quick": {"analysis.central_flow.steps": 40,                   # the first 40 steps,
              "analysis.central_flow.segments": 4},                # distances every 10
    "seeds": {"sweep.seed": [0, 1, 2, 3, 4]},       # one member per initialization
}
PATTERNS = {
    # the first N steps, distances every 20 (step 180 included)
    r"steps([0-9]+)": lambda n: {"analysis.central_flow.steps": _n("steps", n, range(20, 401, 20),
                                                                   "a multiple of 20 in 20..400"),
                                 "analysis.central_flow.segments": int(n) // 20},
    r"seed([0-9]+)": lambda n: {"seed": _n("seed", n, range(1000), "0..999")},
    # exactly N tracked directions, none added
    r"k([0-9]+)": lambda n: {"analysis.central_flow.k": _n("k", n, range(1, 17), "1..16"),
                             "analysis.central_flow.k_max": int(n)},
}


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  c = central_flow_config(
      dict(name="gd", learning_rate=0.02), quick=False,
      data_name="cifar_digits", widths=(256, 256), activation="gelu", init="torch",
      start=0,                              # the processes start at initialization
      steps=400, segments=20,               # distances every 20 steps
      k=3, k_max=8,                         # 3 tracked directions, growing to at most 8
      substeps=4, stable_substeps=10, lanczos_iters=20, window=10)
  c = with_variant(c, variant, VARIANTS, PATTERNS,
                   exclusive=(("quick", r"steps([0-9]+)"), ("seeds", r"seed([0-9]+)")))
  return with_flow(c)                       # the run's steps and kept steps follow the settings
