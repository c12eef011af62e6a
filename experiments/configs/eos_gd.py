r"""Edge of stability under GD (Cohen et al. 2021, Fig. 1 and 3) on the bundled digits.

fc-tanh 2x200 with MSE on the 1,500 digits training images, full-batch GD at four learning
rates in one program, until 99% train accuracy, with the top Hessian eigenvalue (warm-started
Lanczos on the full batch, to relative residual 1e-3) measured inside the compiled loop at
every step.

    python -m experiments.main --config=experiments/configs/eos_gd.py --workdir=/tmp/eos_gd
    python -m experiments.reproduce --figure=eos_gd          # + gradient flow, figure, report

Variants: `:momentum` (heavy-ball, beta = 0.9, against (2 + 2 beta)/eta: the `eos_momentum`
figure; 3,000 steps, no accuracy goal, since heavy-ball reaches 99% train accuracy within ~50
steps, long before it sharpens), `:flow` (RK4 gradient flow from the same initialization, alpha
= 1), `:relu` and `:relu_flow` (fc-relu), `:quick` and `:quick_flow` (a 500-image subset and
2x64 network, for CPU tests and the notebook).
Figure: sharpness against time (step x eta) with dashed 2/eta lines, and the training loss.
Run time (2-core CPU, measured 2026-12-04): reproduce --quick ~35 s for both runs; full
settings 88 s (GD stops at 99% accuracy within ~200 steps; the flow takes most of the time).
`--figure=eos_momentum`: --quick ~15 s, full settings 107 s. `--figure=hessian_spectrum` (GD at
one rate, 0.2, then SLQ density, top-20 eigenvalues and trace at init and end): --quick ~20 s,
full settings 38 s.
"""
import ml_collections

from experiments.configs.common import QUICK_DIGITS, base_config, digits_mlp, with_variant

LEARNING_RATES = (0.125, 0.15, 0.2, 0.25)      # 2/eta = 16, 13.3, 10, 8
QUICK_LEARNING_RATES = (0.3, 0.4, 0.5, 0.6)    # 2/eta = 6.7, 5, 4, 3.3
# heavy-ball, beta = 0.9: the threshold is (2 + 2 beta)/eta = 3.8/eta. Every line lies above
# the initial sharpness (17 full, 7.5 quick): with beta = 0.9 a start above the threshold
# diverges on digits instead of catapulting as GD does (measured), so sharpening must carry
# the sharpness up to each line.
MOMENTUM_LEARNING_RATES = (0.125, 0.15, 0.175, 0.2)      # 3.8/eta = 30.4, 25.3, 21.7, 19
QUICK_MOMENTUM_LEARNING_RATES = (0.3, 0.35, 0.4, 0.45)   # 3.8/eta = 12.7, 10.9, 9.5, 8.4


# One cold 40-step Lanczos solve at init, then at every step warm Lanczos from the last
# eigenvector until the relative residual is <= 1e-3 (at most 30 steps): 3.4 products per step
# on average, within 1e-4 of a cold 30-step solve at every step of the figure's runs, where 8
# fixed warm steps erred by up to 4% at the catapults (benchmarks/sharpness_accuracy.py).
_SHARPNESS = dict(k=1, num_iters=30, cold_iters=40, tol=1e-3)
VARIANTS = {
    "quick": {**QUICK_DIGITS, "train.steps": 4000,
              "sweep.opt.learning_rate": QUICK_LEARNING_RATES},
    "relu": {"model.activation": "relu"},
    # RK4 gradient flow from the same initialization
    "flow": {"opt": dict(name="flow", alpha=1.0, max_step=1.0, power_iters=5), "sweep": {},
             "train.steps": 40000, "train.log_every": 5},
    "quick_flow": {"train.steps": 6000},
    # heavy-ball: reaches 99% train accuracy long before it sharpens, so no accuracy goal
    "momentum": {"opt": dict(base_config("mlp", "digits", "momentum").opt.to_dict(),
                             momentum=0.9, learning_rate=MOMENTUM_LEARNING_RATES[0]),
                 "sweep.opt.learning_rate": MOMENTUM_LEARNING_RATES, "train.acc_goal": 0.0,
                 "train.steps": 3000, "train.log_every": 5},
    "quick_momentum": {"opt.learning_rate": QUICK_MOMENTUM_LEARNING_RATES[0],
                       "sweep.opt.learning_rate": QUICK_MOMENTUM_LEARNING_RATES,
                       "train.steps": 1500},
}


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  c = digits_mlp("gd")
  c.train.steps = 20000                       # upper bound; members stop at 99% train accuracy
  c.train.log_every = 1                       # metrics and sharpness at every step, on device
  c.train.update(chunk_steps=500, acc_goal=0.99, keep="log:6")
  c.probes.sharpness = ml_collections.ConfigDict(_SHARPNESS)
  c.opt.learning_rate = LEARNING_RATES[0]
  c.sweep.opt = ml_collections.ConfigDict(dict(learning_rate=LEARNING_RATES))
  return with_variant(c, variant, VARIANTS, exclusive=(("flow", "momentum"),))
