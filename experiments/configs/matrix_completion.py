r"""Matrix completion with deep matrix factorization (Arora, Cohen, Hu, Luo 2019, "Implicit
Regularization in Deep Matrix Factorization"; REFERENCE.md Sec. 5): figure `depth_low_rank`
(experiments/figures/linear.py).

M* = U diag(8, 8) V^T [16 x 16] of rank 2, 60 degrees of freedom (data 'matrix_completion',
asymmetric); n_observed entries train, the others test. The model W = W_N ... W_1
(matrix_factorization, deep, width 16: the factors never limit the rank), every entry of
every factor init_scale x N(0, 1) (0.05), mse on the observed entries, full-batch GD at lr
0.05, float64. The implicit bias of depth: from small init the
deeper factorization finds lower effective rank and recovers the unobserved entries from fewer
observations.

    python -m experiments.reproduce --figure=depth_low_rank [--quick]
    python -m experiments.main --config=experiments/configs/matrix_completion.py:depth3_obs80 \
        --workdir=DIR

Variants: `depthN` (N factors; default 2), `obsN` (N observed entries; default 80), `quick`
(10,000 steps instead of 20,000). The figure runs depths 2, 3, 4 at 80, 100, 120, 160 observed
entries (quick: depths 2, 3 at 80 and 120).
Run time (2-core CPU shared with other jobs, measured 2026-12-04, training + figure): full
70 s (12 runs), --quick 25 s (4 runs).
"""
import ml_collections

from experiments.configs.common import base_config, with_variant

DEPTHS = (2, 3, 4)
OBSERVED = (80, 100, 120, 160)     # of 256 entries (a rank-2 16 x 16 matrix: 60 degrees of freedom)
QUICK_DEPTHS = (2, 3)
QUICK_OBSERVED = (80, 120)

VARIANTS = {"quick": {"train.steps": 10000, "train.chunk_steps": 10000}}
PATTERNS = {r"depth([0-9]+)": lambda n: {"model.depth": int(n)},
            r"obs([0-9]+)": lambda n: {"data.n_observed": int(n)}}


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  c = base_config(model="matrix_factorization", data_name="matrix_completion", opt="gd")
  c.data.update(rows=16, cols=16, rank=2, spectrum=[8.0, 8.0], n_observed=80, symmetric=False,
                seed=0)
  c.model.update(factorization="deep", width=16, depth=2, init_scale=0.05)
  c.opt.learning_rate = 0.05
  c.train.update(steps=20000, log_every=100, chunk_steps=20000, float64=True, keep="log:12")
  return with_variant(c, variant, VARIANTS, PATTERNS)
