r"""Implicit regularization towards low CP rank in tensor completion (Razin, Maman, Cohen 2021;
REFERENCE.md Sec. 5): figure `cp_implicit_rank` (experiments/figures/tensor.py).

Tensor completion (data 'tensor_completion'): an order-4 target W* [10, 10, 10, 10] of CP
rank 5 with component norms 1, 0.8, 0.6, 0.4, 0.2 (each a Gaussian direction of unit norm in
every mode), 2,000 observed entries (the train split; the 8,000 others are the test split).
The model is a CP factorization with 10 components (cp_factorization: twice the target's rank),
every factor entry init_scale x N(0, 1), mse on the observed entries, full-batch GD, float64.
The init-scale sweep (0.015, 0.05, 0.3) is one compiled program; every member starts from the
same Gaussian draw, scaled.

From init 0.015 (component norms ~5e-5 at the start) the components rise one at a time, each
in a sharp jump after a plateau (half-way at steps ~10,300, 10,900, 12,500, 38,200, 65,400),
and exactly five end significant (norm above 5% of the largest) with the target's norms; the
error on the unobserved entries ends at 1.3%. One component overshoots on its way (to norm 4.4
near step 11,700, then back to 0.4; at lr 500 the same happens, to 6.8: it is the flow's, not
the rate's). From 0.05 and 0.3, 7 and 8 components end significant and the unobserved entries
are not recovered (relative error 2.9 and 0.73).

Optimizer: plain GD at a large rate, lr 1,000. The loss is a mean over the observed entries, so
the gradient on a factor is ~1e-4 of the tensor-level gradient and its curvature at the solution
~4e-4 (for the norm-1 component: 4 s^1.5 / d^4): GD is stable up to lr ~5,000. Razin et al.
use an adaptive rate (one RMSProp second moment shared by all parameters, eps 1e-6, this
engine's `scalar_rmsprop`): a time change of GD while the gradient is above eps, GD at lr / eps
below it. Here GD's rate is chosen directly: lr 1,000 gives the first jump at step ~10,000 and
the fifth at ~65,000; lr 2,000 halves that but forms degenerate pairs (two components of norm
~1.8 that cancel, the unobserved error above 1) at inits 0.015 and 0.02; normalized steps
(scalar_rmsprop with eps 0) stall once the first component is learned, bouncing around it.
See docs/notes/tensor_factorization.md.

    python -m experiments.reproduce --figure=cp_implicit_rank [--quick]
    python -m experiments.main --config=experiments/configs/cp_implicit_rank.py --workdir=DIR

The parameters are kept every 250 steps (the jumps come late: evenly spaced, not log-spaced);
the component norms over time are read from them (analysis.tensor_measures.cp_recovery).
Variant `quick`: a rank-3 target (norms 1, 0.7,
0.4), inits 0.02 and 0.3, 20,000 steps, kept every 200, 2,000 of the unobserved entries in the
logged test loss (the figure's test error reads all of them from W*). The contrast is weaker
there: from 0.3 one component more (4) and a test error ~50% above the small init's.
Run time (2-core CPU shared with other jobs, measured 2026-12-04, training + figure): full
6-7 min (371-411 s; 80,000 steps of three members), --quick 42 s.
"""
import ml_collections

from experiments.configs.common import base_config, with_variant

INITS = (0.015, 0.05, 0.3)
VARIANTS = {
    "quick": {"data.rank": 3, "data.norms": [1.0, 0.7, 0.4], "data.n_test": 2000,
              "sweep.model.init_scale": (0.02, 0.3), "train.steps": 20000,
              "train.chunk_steps": 20000, "train.keep": "every:200"},
}


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  c = base_config(model="cp_factorization", data_name="tensor_completion", opt="gd")
  c.data.update(order=4, dimension=10, rank=5, norms=[1.0, 0.8, 0.6, 0.4, 0.2], n_observed=2000,
                n_test=None, seed=0)
  c.model.update(order=4, components=10, init_scale=INITS[0])
  c.opt.learning_rate = 1000.0      # stable to ~5,000; 2,000 forms degenerate pairs (docstring)
  c.train.update(steps=80000, log_every=50, chunk_steps=80000, float64=True, keep="every:250")
  c.sweep.model = ml_collections.ConfigDict({"init_scale": INITS})
  return with_variant(c, variant, VARIANTS)
