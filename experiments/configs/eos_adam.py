r"""Adaptive edge of stability (Cohen et al. 2022, "Adaptive Gradient Methods at the Edge of
Stability", Fig. 1) on the bundled digits.

fc-tanh 2x200 with MSE on the 1,500 digits training images, full-batch Adam (b1 = 0.9,
b2 = 0.999, eps = 1e-7) at four learning rates in one vmapped program. Every 10 steps, inside
the compiled loop: the preconditioned sharpness lambda_max(P^-1 H), P = diag(sqrt(nu_hat) +
eps)/eta the optimizer's own preconditioner (warm-started Lanczos), which Adam's stability
analysis caps at (2 + 2 b1)/(1 - b1) = 38 for every learning rate; and the raw sharpness
lambda_max(H), which nothing caps at 2/eta.

    python -m experiments.reproduce --figure=eos_adam            # figure and report.json
    python -m experiments.main --config=experiments/configs/eos_adam.py --workdir=/tmp/eos_adam

Variant `:quick` (a 500-image subset, 2x64 network, three larger rates, 1,500 steps) for CPU
tests and the notebook.
Figure: preconditioned sharpness against the dashed line at 38, raw sharpness against each
2/eta, and the training loss.
Run time (2-core CPU, measured): --quick ~30 s; full settings ~5 min (3,000 steps).
"""
import ml_collections

from experiments.configs.common import QUICK_DIGITS, digits_mlp, with_variant

B1 = 0.9                                          # threshold (2 + 2 b1)/(1 - b1) = 38
LEARNING_RATES = (5e-4, 1e-3, 2e-3, 4e-3)
QUICK_LEARNING_RATES = (2e-3, 4e-3, 8e-3)


VARIANTS = {"quick": {**QUICK_DIGITS, "opt.learning_rate": QUICK_LEARNING_RATES[0],
                      "sweep.opt.learning_rate": QUICK_LEARNING_RATES, "train.steps": 1500}}


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  c = digits_mlp("adam")
  c.opt.update(b1=B1, b2=0.999, eps=1e-7, learning_rate=LEARNING_RATES[0])   # eps: Cohen et al.'s
  c.sweep.opt = ml_collections.ConfigDict(dict(learning_rate=LEARNING_RATES))
  c.train.steps = 3000                        # no accuracy goal: the plateau at 38 is the point
  c.train.log_every = 10                      # metrics and both sharpnesses every 10 steps
  c.train.update(chunk_steps=500, keep="none")
  # P^-1/2 H P^-1/2 with the state's P; warm-started from the previous vectors
  c.probes.preconditioned_sharpness = ml_collections.ConfigDict(dict(k=1, num_iters=20))
  c.probes.sharpness = ml_collections.ConfigDict(dict(k=1, num_iters=8, cold_iters=40))
  return with_variant(c, variant, VARIANTS)
