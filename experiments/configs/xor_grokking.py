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

Choices, scaled from the paper's regime (d >> n, noise norm sqrt(d) >> ||mu||) to run on a CPU:
  d = 1000, n = 200: ||xi_i||^2 = d makes each training point nearly orthogonal to the others, so
      the first GD step memorizes every label, flipped ones included (the network is then close
      to a linear classifier, and no linear classifier beats chance on XOR).
  ||mu|| = 8: ||mu||^2 / sqrt(d) ~ 2 and n ||mu||^4 / d ~ 800: the signal is weak at step 1
      but learnable; the Bayes-optimal accuracy on the clean test labels is ~1 (1 - eta = 0.9
      on labels flipped at eta = 0.1).
  lr 0.05: small enough that the logistic loss does not saturate after the first steps (its
      gradient would vanish and freeze the features), large enough that step 1 fits.
  seeds: init seeds 0..3 swept in one program (the data is one draw, data.seed 0).
Run time (2-core CPU shared with other jobs, measured 2026-12-04, training + figure): full
TBD, --quick TBD.
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
