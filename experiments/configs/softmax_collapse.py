r"""Grokking at the edge of numerical stability (Prieto et al. 2025): without weight decay,
softmax cross-entropy in float32 drives training into Softmax Collapse and generalization
stalls; StableMax or PerpGrad (the orthogonal gradient) restore it.

Their default setup: an MLP [200, 200] without biases on the concatenated one-hot pair (a, b),
(a + b) mod p, 40% of the pairs for training, AdamW with beta2 = 0.99 and no weight decay, float32
throughout, PyTorch's default initialization. Adam's epsilon is 1e-25, the authors' default: with
the common 1e-8 the steps shrink once the gradients fall below 1e-8, which these runs reach long
before they could grok. The StableMax run follows the authors' own StableMax run: its loss
computed in float64 (the model stays float32), beta2 = 0.999 and 80k steps (full settings).
Adam's moments are kept in float64 (opt.moments_float64) in every variant, the model and its
gradients staying float32: with epsilon 1e-25 a float32 second moment that underflows is fatal.
The StableMax run's smallest gradients reach ~1e-19, where nu ~ g^2 leaves float32's normal
range; XLA on the CPU flushes it to 0 while m is not 0, and the next step is lr * m_hat / eps.
Measured at p = 113 with float32 moments: one such parameter at step 61,917 took a step of
4.9e5 lr, the train loss jumped from 2.5e-13 to 0.24 and test accuracy fell from 0.951 to
0.73; with float64 moments the same run reaches 0.988 at 80k steps without a jump.
In-loop probes (every log point, on the training set): the softmax-collapse share
(sum exp(z - max z) == 1 exactly), the share of exactly-zero losses, and the cosine between
gradient and weights.

    python -m experiments.reproduce --figure=softmax_collapse     # the three runs, figure, report
    python -m experiments.main --config=experiments/configs/softmax_collapse.py:stablemax \
        --workdir=/tmp/sc_stablemax

Variants: `:stablemax` (StableMax cross-entropy), `:perpgrad` (AdamW on the PerpGrad-projected
gradient, as the paper's equation: not rescaled to |g| as its public code does, which
`--config.opt.perpgrad_rescale=True` selects), `:float64` (softmax cross-entropy computed in
float64), `:quick` (p = 53, for CPU tests and notebooks); combine with `_`, e.g.
`:quick_stablemax`.
Figure: test accuracy, train loss, softmax-collapse share and gradient-weight cosine of the
three runs.
Run time (2-core CPU, measured): --quick ~1 min for the three runs; full settings (p = 113, 20k
steps, StableMax 80k) 25 min.
"""
import ml_collections

from experiments.configs.common import base_config, with_variant


VARIANTS = {
    "quick": {"data.p": 53, "train.steps": 4000, "train.log_every": 20,
              "train.chunk_steps": 1000},
    # the authors' StableMax run: its loss in float64, beta2 0.999, 80k steps
    "stablemax": {"loss.name": "stablemax", "loss.float64": True, "opt.b2": 0.999,
                  "train.steps": 80000},
    "quick_stablemax": {"train.steps": 4000},
    "perpgrad": {"opt.perpgrad": True},
    "float64": {"loss.float64": True},
}


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  c = base_config(model="mlp", data_name="modular", opt="adamw", loss="cross_entropy")
  c.data.update(p=113, train_frac=0.4)
  c.data.encoding = "onehot"                 # [onehot(a), onehot(b)], width 2p
  c.model.update(widths=(200, 200), bias=False, activation="relu")
  c.model.init = "torch"                     # their PyTorch MLP: U(+-1/sqrt(fan_in)) weights
  c.loss.float64 = False
  c.opt.learning_rate = 1e-2                # at 1e-3 PerpGrad needs far more than 4k steps
  c.opt.weight_decay = 0.0                   # the point: no weight decay
  c.opt.b1, c.opt.b2 = 0.9, 0.99
  c.opt.update(eps=1e-25, moments_float64=True, perpgrad=False)
  c.train.update(steps=20000, log_every=100, chunk_steps=5000, keep="none")
  c.probes.softmax_collapse = ml_collections.ConfigDict()
  return with_variant(c, variant, VARIANTS, exclusive=(("stablemax", "perpgrad", "float64"),))
