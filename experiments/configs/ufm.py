r"""The unconstrained features model (Mixon et al. 2020; Zhu et al. 2021; Tirer, Huang,
Niles-Weed 2023; REFERENCE.md Sec. 4): features H and classifier W, b as free parameters
(dynamics/models/ufm.py, data 'ufm_samples'), trained by full-batch GD in float64 on
cross-entropy (or MSE) plus lambda_W/2 ||W||^2 + lambda_H/2 ||H||^2. Its global minimizers are
collapsed onto a simplex ETF with the norms the regularization sets
(analysis.neural_collapse.ufm_optimum); the perturbed model adds beta/(2N) ||H - H0||^2, which
keeps the features near a random H0 and away from collapse as beta grows.

    python -m experiments.reproduce --figure=ufm [--quick]
    python -m experiments.main --config=experiments/configs/ufm.py:quick --workdir=DIR

Full settings: K = 10 classes of 20 samples, d = 32, lambda_W = lambda_H = 5e-3, GD at lr 1 for
20,000 steps, NC1-NC4 logged every 200 steps (probes.neural_collapse); the figure runs
cross-entropy, MSE and the perturbed model at beta = 0.1, 1, 10. Variants: `mse` (MSE with
an unregularized bias), `betaX` (the perturbed model at beta = X, e.g. `beta1` or `beta0.1`),
`quick` (K = 4 classes of 5 samples, d = 8, 4,000 steps).
Figure: the objective's gap to the closed-form minimum, NC1, NC3 and the ETF distances over
the steps, and the end's NC1 against beta.
Run time (2-core CPU shared with other jobs, measured 2026-12-04): --quick ~45 s for the five
runs; full settings 81 s.
"""
import ml_collections

from experiments.configs.common import base_config, with_variant

VARIANTS = {
    "quick": {"data.num_classes": 4, "data.per_class": 5, "model.dim": 8, "train.steps": 4000,
              "train.log_every": 40, "train.chunk_steps": 4000},
    "mse": {"loss.name": "mse"},
}
PATTERNS = {r"beta([0-9]+(?:\.[0-9]+)?)": lambda v: {"model.anchor_weight": float(v)}}


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  c = base_config("ufm", "ufm_samples", "gd", loss="cross_entropy")
  c.data.update(num_classes=10, per_class=20)
  c.model.update(dim=32, lambda_W=5e-3, lambda_H=5e-3)
  c.opt.learning_rate = 1.0
  c.train.update(steps=20000, log_every=200, chunk_steps=20000, float64=True, acc_goal=0.0,
                 keep="log:30")
  c.probes.neural_collapse = ml_collections.ConfigDict()
  return with_variant(c, variant, VARIANTS, PATTERNS)
