r"""Quickstart: an MLP on scikit-learn's bundled digits, full-batch GD at three learning rates.

Command (the README's first command runs it):

    python -m experiments.main --config=experiments/configs/quickstart.py --workdir=/tmp/quickstart

Figure: WORKDIR/figures/training_curves.png (train/test loss and accuracy, one line per learning
rate) and probes.png (weight norm and gradient norm). The three learning rates share one compiled,
vmapped program. Variants: `quickstart.py:quick` (a few hundred steps, for tests and notebooks).
Run time: about 30 s on a 2-core CPU (of which ~10 s compilation).
"""
import ml_collections

from experiments.configs.common import base_config, with_variant


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  c = base_config(model="mlp", data_name="digits", opt="gd", loss="mse")
  # data: 1,797 real 8x8 digits bundled with scikit-learn; 1,500 train / 297 test,
  # standardized with train statistics
  c.data.n_test = 297

  c.model.widths = (64, 64)               # two hidden layers
  c.model.activation = "tanh"
  # loss: 0.5*||f(x) - onehot(y)||^2, averaged over examples (the edge-of-stability convention)

  c.opt.learning_rate = 0.05              # full-batch GD; overwritten by the sweep below

  c.train.steps = 4000
  c.train.log_every = 20                  # metrics and probes every 20 steps, on device
  c.train.chunk_steps = 2000              # one compiled program runs 2000 steps per host visit
  c.train.keep = "log:8"                  # params kept at 8 log-spaced steps for analysis

  c.probes.weight_norm = ml_collections.ConfigDict()
  c.probes.grad_norm = ml_collections.ConfigDict()

  c.sweep.opt = ml_collections.ConfigDict()
  c.sweep.opt.learning_rate = (0.02, 0.05, 0.1)   # one program, three members

  return with_variant(c, variant, VARIANTS)


# quick: a few hundred steps, for tests and notebooks
VARIANTS = {"quick": {"train.steps": 200, "train.log_every": 10, "train.chunk_steps": 100}}
