r"""Exact learning dynamics of deep linear networks (Saxe, McClelland, Ganguli 2014; REFERENCE.md
Sec. 5): figure `saxe` (experiments/figures/linear.py).

y = x W_1 ... W_N (dynamics.models.deep_linear) on a linear teacher W* = U diag(4, 2, 1, 0.5) V^T
(data 'linear_teacher', 8 -> 8, 64 whitened training inputs, so (1/N) X^T X = I and
(1/N) Y^T X = W* exactly), mse, full-batch GD at lr 0.002 (time t = step x lr; the loss is
(1/N) sum 0.5 ||f(x) - y||^2, so Saxe's tau is 1 in these units: analysis/linear_theory.py),
float64. Start (model.init='decoupled'): balanced and aligned with the data's SVD, every mode
at strength u0 = init_scale^N (depth 2: 0.03^2 = 9e-4; depth 3: 0.1^3 = 1e-3), the other
directions at 0: each mode strength then follows saxe_curve (depth 2) or deep_mode_curve.

    python -m experiments.reproduce --figure=saxe [--quick]
    python -m experiments.main --config=experiments/configs/saxe.py:depth3 --workdir=DIR

Variants:
  depth3        widths 8, 8, lr 0.001 for 24,000 steps (horizon t = 24 against depth 2's 10, at
                half the rate because its transitions are sharper).
  random        init='gaussian' at scale 0.1: the modes start coupled, strengths ~1e-2.
  orthogonalN,  the learning time against depth: a full-rank teacher diag(4, 3.5, ..., 0.5),
  gaussianN     N - 1 hidden layers of 8, W_l orthogonal or Gaussian N(0, 1/8) at scale 1,
                lr 0.05 / N, the loss logged every 2 steps up to 2,000 steps or loss 1; the
                learning time is the step at which the loss falls to 10% of its start.
  quick         the same horizons, mode strengths logged every 20 steps instead of 10; the
                figure's depth runs at depths 2, 4, 8 instead of 1, 2, 4, 8, 16.
The mode strengths are measured in the loop (probes.mode_strengths: u_i = U_i^T f(V_i) on the
data's modes) at every log point; parameters are kept at 12 log-spaced steps.
Run time (2-core CPU shared with other jobs, measured 2026-12-04, training + figure): full
75 s (13 runs), --quick ~60 s (9 runs; each run is a few seconds, most of it compiling).
"""
import ml_collections

from experiments.configs.common import base_config, with_variant

SINGULAR_VALUES = (4.0, 2.0, 1.0, 0.5)
DEPTHS = (1, 2, 4, 8, 16)              # learning time against depth (the full figure)
QUICK_DEPTHS = (2, 4, 8)
FULL_RANK = (4.0, 3.5, 3.0, 2.5, 2.0, 1.5, 1.0, 0.5)   # the depth runs' teacher (full rank)
DEPTH_LR = 0.05                        # lr = DEPTH_LR / N: the per-depth rate of Saxe et al.
DEPTH_CRITERION = 0.1                  # learning time: steps until the loss is 10% of its start

VARIANTS = {
    "depth3": {"model.widths": (8, 8), "model.init_scale": 0.1, "opt.learning_rate": 0.001,
               "train.steps": 24000, "train.chunk_steps": 24000},
    "random": {"model.init": "gaussian", "model.init_scale": 0.1},
    "quick": {"train.log_every": 20},
}


def _depth_run(n: int, init: str) -> dict:
  if n < 1:
    raise ValueError(f"variant part '{init}{n}' is not allowed; the depth N of '{init}N' must "
                     f"be >= 1")
  return {"model.widths": (8,) * (n - 1), "model.init": init, "model.init_scale": 1.0,
          "opt.learning_rate": DEPTH_LR / n, "train.steps": 2000, "train.log_every": 2,
          "train.chunk_steps": 2000, "train.loss_goal": 1.0, "train.keep": "none",
          "probes": {}, "data.singular_values": list(FULL_RANK)}


PATTERNS = {r"(orthogonal|gaussian)([0-9]+)": lambda init, n: _depth_run(int(n), init)}


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  c = base_config(model="deep_linear", data_name="linear_teacher", opt="gd", loss="mse")
  c.data.update(in_dim=8, out_dim=8, n_train=64, n_test=64, whiten=True, noise=0.0,
                singular_values=list(SINGULAR_VALUES), seed=0)
  c.model.widths = (8,)               # depth 2
  c.model.init = "decoupled"          # Saxe's balanced decoupled start, from the data's SVD
  c.model.init_scale = 0.03           # u0 = 0.03^2 = 9e-4 on every mode
  c.opt.learning_rate = 0.002         # t = 0.002 x step; GD's error is O(lr s)
  c.train.update(steps=5000, log_every=10, chunk_steps=5000, float64=True, keep="log:12")
  c.probes.mode_strengths = ml_collections.ConfigDict()   # u_i every log point, in the loop
  return with_variant(c, variant, VARIANTS, PATTERNS)
