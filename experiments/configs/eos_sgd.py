r"""Curvature under minibatch SGD at several batch sizes (Jastrzebski et al. 2020; Wu & Su 2023;
Andreyev & Beneventano 2024) on the bundled digits.

fc-tanh 2x200 with MSE on the 1,500 digits training images, SGD at one learning rate
(2/eta = 10), one run per batch size (the batch size shapes the program, so it is not a sweep
axis). Every 50 steps, inside the compiled loop: the full-batch sharpness lambda_max(H)
(warm-started Lanczos), the batch sharpness over 8 independent minibatches of the training
batch size (mean lambda_max(H_B) and mean g_B^T H_B g_B / ||g_B||^2), and the Hutchinson trace
of the full-batch Hessian.

    python -m experiments.reproduce --figure=eos_sgd           # all batch sizes, figure, report
    python -m experiments.main --config=experiments/configs/eos_sgd.py:bs64 --workdir=/tmp/sgd64

Variants: `:bsN` picks the batch size N (default 64); `:quick` (500 images, 2x64, 1,500 steps)
for CPU tests and the notebook; combine as `:quick_bs16`.
Figure: full-batch sharpness, batch sharpness and trace against step, one color per batch size,
with the dashed 2/eta line.
Run time (2-core CPU, measured): --quick ~30 s for the three batch sizes; full settings ~3.5 min.
"""
import ml_collections

from experiments.configs.common import QUICK_DIGITS, digits_mlp, with_variant

LEARNING_RATE = 0.2                  # 2/eta = 10
BATCH_SIZES = (16, 64, 256)


VARIANTS = {"quick": {**QUICK_DIGITS, "train.steps": 1500}}
# bsN: the batch size N (epoch-wise, without replacement)
PATTERNS = {r"bs([0-9]+)": lambda n: {"train.batch_size": int(n)}}


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  c = digits_mlp("sgd")
  c.opt.learning_rate = LEARNING_RATE
  c.train.update(batch_size=64, steps=5000, log_every=50, chunk_steps=1000, keep="none")
  c.probes.sharpness = ml_collections.ConfigDict(dict(k=1, num_iters=8, cold_iters=40))
  # batch_size 0: minibatches of the training batch size
  c.probes.batch_sharpness = ml_collections.ConfigDict(dict(num_batches=8, num_iters=10))
  c.probes.hessian_trace = ml_collections.ConfigDict(dict(num_probes=10))
  return with_variant(c, variant, VARIANTS, PATTERNS)
