r"""Benign overfitting, then grokking, of a two-layer ReLU network on XOR clusters with label
noise (Xu, Wang, Frei, Vardi, Hu 2023; REFERENCE.md Sec. 5): figure `xor_grokking`
(experiments/figures/relu.py).

    python -m experiments.reproduce --figure=xor_grokking [--quick]
    python -m experiments.main --config=experiments/configs/xor_grokking.py --workdir=DIR

Data 'xor_clusters' (signed: labels +-1): x = mu + xi, mu one of +-mu1 (label +1), +-mu2
(label -1), mu1 _|_ mu2 of norm MEAN_NORM, xi ~ N(0, I_d), 10% of the training labels flipped;
the test labels are clean. Model f(x) = sum_j v_j relu(w_j . x) (two_layer, width 100), as in
Xu et al. a tiny first layer (w_j ~ 1e-4 N(0, I/d)) under a second layer of size 1/sqrt(m)
(v_j ~ N(0, 1/m): model.v_scale = 1; Xu et al. fix a_j = +-1/sqrt(m), here v trains too),
the logistic loss, full-batch GD.

Choices, scaled from the paper's regime (d >> n, noise norm sqrt(d) >> ||mu||) to run on a CPU
(each measured over 3 seeds while choosing; docs/notes/two_layer_relu.md):
  d = 4000, n = 200 (d / n = 20): ||xi_i||^2 = d makes each training point nearly orthogonal to
      the others, so the first GD step memorizes every label, flipped ones included, and the
      step-1 network is close to a linear classifier (no linear classifier beats chance on
      XOR). At d / n = 5 or 10 a few labels stay unfitted after step 1.
  ||mu|| = 12: strong enough that the clean test accuracy ends at 0.99 (the Bayes level is ~1;
      ||mu|| = 9 and 11 stop at 0.87 and 0.96 with n = 200), weak against the noise at step 1.
  init: the first layer at 1e-4 (its initial outputs ~1e-4 against the first step's ~1e-2), v
      at 1/sqrt(m). While the outputs are small the early steps do not depend on lr (the
      network is homogeneous in the first layer); lr 0.01 keeps the logistic loss from
      saturating later (at lr 0.5 its gradient vanishes after a few steps and the test
      accuracy freezes part way).
  width 100; 1,000 steps, every step logged (the fit is at step 1, near-Bayes 10-40 later).
  seeds: init seeds 0..3 swept in one program (the data is one draw, data.seed 0).
  quick: d = 2000, n = 100 (the same d / n = 20 and ||mu|| = 12), 500 test points, 300 steps,
      seeds 0, 1.
Run time (2-core CPU shared with other jobs, measured 2026-12-04, training + figure): full
470 s (1,000 steps logged every step; the test accuracy on 1,000 points dominates), --quick
50 s.
"""
import ml_collections

from experiments.configs.common import base_config, with_variant

SEEDS = (0, 1, 2, 3)
FIT_WITHIN = 2            # steps: 100% training accuracy this early
CHANCE_MAX = 0.6          # test accuracy at that step: near chance
NEAR_BAYES = 0.02         # "near Bayes": clean test accuracy within this of the Bayes level
LATER_FACTOR = 5          # ... reached at least this many times later than the fit

VARIANTS = {
    "quick": {"data.dim": 2000, "data.n_train": 100, "data.n_test": 500, "data.mean_norm": 12.0,
              "train.steps": 300, "train.chunk_steps": 300, "sweep": {"seed": list(SEEDS[:2])}},
}


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  c = base_config(model="two_layer", data_name="xor_clusters", opt="gd", loss="logistic")
  c.data.update(dim=4000, n_train=200, n_test=1000, mean_norm=12.0, std=1.0, label_noise=0.1,
                signed=True, seed=0)
  c.model.update(width=100, init_scale=1e-4, balanced=False, v_scale=1.0)
  c.opt.learning_rate = 0.01
  c.train.update(steps=1000, log_every=1, chunk_steps=1000, keep="log:12")
  c.sweep.seed = list(SEEDS)
  return with_variant(c, variant, VARIANTS)
