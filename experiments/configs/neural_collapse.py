r"""Neural collapse in the terminal phase of training (Papyan, Han, Donoho 2020; Han et al. 2022
for MSE; He & Su 2023 for the layers; REFERENCE.md Sec. 4): an MLP on the bundled digits trained
far past zero training error, NC1-NC4 of its penultimate features and last layer logged in the
loop (probes.neural_collapse) and recomputed from log-spaced checkpoints
(analysis.neural_collapse.from_trajectory, per_layer).

    python -m experiments.reproduce --figure=neural_collapse [--quick]
    python -m experiments.reproduce --figure=neural_collapse_depth [--quick]
    python -m experiments.main --config=experiments/configs/neural_collapse.py:quick --workdir=DIR

Full settings: the 1,500 digits training images (297 held out), fc-relu 128x128x128 with biases,
cross-entropy, full-batch heavy ball (momentum 0.9) at lr 0.05 with coupled weight decay 5e-4
(Papyan et al.'s 5e-4), 30,000 steps, seeds 0, 1, 2; zero training error comes at step ~100-600,
so the terminal phase is over 50 times as long. Log every 25 steps, 40 log-spaced checkpoints.
Variants: `mse` (MSE loss with weight decay 1e-4: at 5e-4 its NC1 settles at ~1e-3 by step
20,000, 45x below its value at T0; at 1e-4 it falls past 100x), `deep` (six hidden layers of
128, for neural_collapse_depth), `quick` (500 images, fc-relu 64x64 (deep: 64 x 6), 3,000 steps,
seeds 0 and 1; MSE keeps weight decay 5e-4, since 1e-4 collapses later than 3,000 steps),
`mnist` and `cifar10` (Papyan et al.'s datasets, read from data/mnist and data/cifar10 under the
working directory: never downloaded; the figure adds their runs when those directories exist),
and their combinations (`quick_mse`, `deep_mse`, `mnist_mse`, ...). Any other path works by
flag: --config.data.path=DIR.
Figures: experiments/figures/neural_collapse.py.
Run time (2-core CPU shared with other jobs, measured 2026-12-04): neural_collapse --quick ~1.2
min (both losses), full 35 min (cross-entropy 25 min, MSE 10 min, on a busier and a quieter
machine); neural_collapse_depth --quick ~1.7 min, full 49 min (beside a test run).
"""
import ml_collections

from experiments.configs.common import base_config, with_variant

SEEDS = (0, 1, 2)
DATA_DIRS = {"mnist": "data/mnist", "cifar10": "data/cifar10"}   # the files, when a user has them
VARIANTS = {
    **{name: {"data": dict(name=name, path=path)} for name, path in DATA_DIRS.items()},
    "mse": {"loss.name": "mse", "opt.weight_decay": 1e-4},
    "deep": {"model.widths": (128,) * 6},
    "quick": {"data.n_train": 500, "model.widths": (64, 64), "train.steps": 3000,
              "train.chunk_steps": 3000, "train.log_every": 10, "train.keep": "log:25",
              "sweep.seed": SEEDS[:2]},
    "quick_deep": {"model.widths": (64,) * 6},
    "quick_mse": {"opt.weight_decay": 5e-4},     # 3,000 steps are too few for 1e-4's slow phase
}


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  c = base_config("mlp", "digits", "momentum", loss="cross_entropy")
  c.data.n_test = 297                 # 1,500 images train
  c.model.widths = (128, 128, 128)
  c.model.activation = "relu"
  c.opt.update(learning_rate=0.05, momentum=0.9, weight_decay=5e-4)
  c.train.update(steps=30000, log_every=25, chunk_steps=5000, keep="log:40")
  c.probes.neural_collapse = ml_collections.ConfigDict()
  c.sweep.seed = SEEDS
  return with_variant(c, variant, VARIANTS)
