r"""Implicit low tubal rank of an over-parameterized tubal factorization from small initialization
(Karnik, Veselovska, Iwen, Krahmer 2024; REFERENCE.md Sec. 5): figure `tubal_implicit_rank`
(experiments/figures/tensor.py).

Tubal sensing (data 'tubal_sensing'): X* = T * T^T [10, 10, 4] of tubal rank 2 (t-product
along the tubes of length 4, T t-orthonormal: every Fourier slice of X* is a rank-2
projection), m = 254 Gaussian measurements y_i = <A_i, X*> (the authors' 1.2 (n+1) r k ln(n+1);
fewer than the 400 entries of X*). The model X = U * U^T (tubal_factorization, symmetric,
U [10, 100, 4]: width R = 100, 50 times the true rank), U_0 = alpha N(0, 1/R) (init='scaled',
alpha = model.init_scale), loss (1/2m) sum (<A_i, U * U^T> - y_i)^2, full-batch GD, float64.

The sweep is alpha in {1e-7 (the paper's), 1e-3, 0.3}, one compiled program. From alpha =
1e-7 GD finds tubal rank 2 and recovers X* (relative error ~1e-5, principal angle to the true
tubal subspace ~1e-5); the error, the angle and the small singular values of the Fourier
slices grow with alpha (alpha = 1e-3: error 1.6e-3, tubal rank 3, its third singular value
still decaying; alpha = 0.3: error 1.5e-2, tubal rank 9).

Learning rate: 0.05 here, the authors' nu = 1e-5 per measurement being lr = m nu = 2.54e-3 in
this loss (docs/notes/tensor_factorization.md); 20 times larger so that the figure takes
seconds (2 lr ||X*|| = 0.1: GD still close to the flow). float64: in float32 the principal
angle cannot be read below ~3e-4 (sqrt of float32's eps), above what alpha = 1e-7 reaches.

    python -m experiments.reproduce --figure=tubal_implicit_rank [--quick]
    python -m experiments.main --config=experiments/configs/tubal_implicit_rank.py --workdir=DIR

The parameters are kept at 100 log-spaced steps (the Fourier-slice singular values over time
are read from them). Variant `quick`: 1,000 steps instead of 3,000 (alpha = 1e-7 has
converged by step ~600).
Run time (2-core CPU shared with other jobs, measured 2026-12-04, training + figure): full
27-39 s, --quick 24 s.
"""
import ml_collections

from experiments.configs.common import base_config, with_variant

ALPHAS = (1e-7, 1e-3, 0.3)
VARIANTS = {"quick": {"train.steps": 1000, "train.chunk_steps": 1000, "train.keep": "log:60"}}


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  c = base_config(model="tubal_factorization", data_name="tubal_sensing", opt="gd")
  c.data.update(dimension=10, tube=4, rank=2, target="orthonormal", n_train=254, n_test=200,
                seed=0)
  c.model.update(factorization="symmetric", tube=4, width=100, init="scaled", init_scale=1e-7)
  c.opt.learning_rate = 0.05        # 20 x the authors' m nu = 2.54e-3 (docstring)
  c.train.update(steps=3000, log_every=10, chunk_steps=3000, float64=True, keep="log:100")
  c.sweep.model = ml_collections.ConfigDict({"init_scale": ALPHAS})
  return with_variant(c, variant, VARIANTS)
