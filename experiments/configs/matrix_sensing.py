r"""Symmetric matrix sensing with U U^T from small initialization (Jin et al. 2023; Xiong et al.
2023; REFERENCE.md Sec. 5): figures `incremental_learning` and `overparameterization`
(experiments/figures/linear.py).

y_i = <A_i, M*> with symmetric Gaussian A_i (data 'matrix_sensing'), the model W = U U^T
(matrix_factorization, symmetric, U [d, k], U_0 = alpha N(0, 1) with alpha = model.init_scale),
loss (1/2m) sum_i (<A_i, U U^T> - y_i)^2 (mse), full-batch GD, float64.

Incremental learning (the base config): d = 8, M* of rank 3 with eigenvalues 3, 2, 1, m = 800
measurements, k = 8, lr 0.05, 300 steps, alpha in {1e-2, 1e-3, 1e-4, 1e-5} as one sweep (one
compiled program); parameters kept every 5 steps, where the eigenvalues of U U^T are read.
The linearized dynamics U <- (I + 2 lr M_hat) U (M_hat = (1/m) sum y_i A_i) predict that
eigenvalue i appears at a step growing like ln(1/alpha) / ln(1 + 2 lr sigma_i)
(analysis.linear_theory.appearance_steps, discrete=True).

Over-parameterization (variants `exact`, `over`): d = 6, rank 2 (eigenvalues 2, 1), m = 200,
alpha 0.1, lr 0.1, 20,000 steps, parameters kept at 60 log-spaced steps; k = r = 2 (`exact`:
||U U^T - M*||_F^2 decays geometrically, to float64's floor by step ~300: 400 steps, the loss
logged every 2) or k = 5 (`over`: like T^-2).

    python -m experiments.reproduce --figure=incremental_learning [--quick]
    python -m experiments.reproduce --figure=overparameterization [--quick]
    python -m experiments.main --config=experiments/configs/matrix_sensing.py:over --workdir=DIR

Variants: `quick` (three scales 1e-2, 1e-3, 1e-4 and 150 steps for the staircase; the
over-parameterized runs to 10,000 steps).
Run time (2-core CPU shared with other jobs, measured 2026-12-04, training + figure):
incremental_learning full 16 s, --quick 11 s; overparameterization full 22 s, --quick 22 s.
"""
import ml_collections

from experiments.configs.common import base_config, with_variant

ALPHAS = (1e-2, 1e-3, 1e-4, 1e-5)
OVER = {"data.dimension": 6, "data.rank": 2, "data.spectrum": [2.0, 1.0], "data.n_train": 200,
        "model.init_scale": 0.1, "opt.learning_rate": 0.1, "train.steps": 20000,
        "train.log_every": 20, "train.chunk_steps": 10000, "train.keep": "log:60", "sweep": {}}
VARIANTS = {
    "quick": {"sweep.model.init_scale": ALPHAS[:3], "train.steps": 150,
              "train.chunk_steps": 150},
    "exact": dict(OVER, **{"model.width": 2, "train.steps": 400, "train.log_every": 2,
                           "train.chunk_steps": 400, "train.keep": "log:30"}),
    "over": dict(OVER, **{"model.width": 5}),
    "quick_over": {"train.steps": 10000, "sweep": {}},
}


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  c = base_config(model="matrix_factorization", data_name="matrix_sensing", opt="gd")
  c.data.update(dimension=8, rank=3, spectrum=[3.0, 2.0, 1.0], n_train=800, n_test=100, seed=0)
  c.model.update(factorization="symmetric", width=8, init_scale=1e-2)
  c.opt.learning_rate = 0.05        # 2 lr sigma_1 = 0.3: GD close to the flow, stable
  c.train.update(steps=300, log_every=5, chunk_steps=300, float64=True, keep="every:5")
  c.sweep.model = ml_collections.ConfigDict({"init_scale": ALPHAS})
  return with_variant(c, variant, VARIANTS, exclusive=(("exact", "over"),))
