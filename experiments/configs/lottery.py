r"""The lottery ticket of two-layer networks on modular addition ("On the Mechanism and Dynamics
of Modular Addition: Fourier Features, Lottery Ticket, and Grokking", 2025; REFERENCE.md Sec. 3).

f(a, b) = sum_j v_j relu(w_j . [onehot(a), onehot(b)]) (dynamics.models.two_layer, no biases),
p = 23, 512 neurons, ReLU, cross-entropy. Each neuron's input halves w_j[:p], w_j[p:] and output
weights v_j become cosines of ONE frequency k with aligned phases phi_a + phi_b = psi, and the
frequency that wins is set at initialization by its spectral magnitude and phase alignment
(figure: experiments/figures/lottery.py).

Choices, and why:
  * separate weights for a and b (the concatenated one-hot pair), so the alignment condition
    reads psi = phi_a + phi_b.
  * full-batch GD at lr 5 (the gradient flow the lottery argument is about); AdamW gave the
    same agreement with the initial-spectrum prediction in our trials but a lower
    dominant-frequency share.
  * small balanced init (init_scale 0.02, ||v_j|| = ||w_j||): the lottery needs small weights
    (near-uniform softmax, decoupled neurons and frequencies), and both layers must start on
    the same scale for the output phase psi to take part (with v much smaller than w, v
    simply follows phi_a + phi_b and only the input magnitudes matter).
  * 90% of the p^2 pairs train (10% held out to test), with a small coupled L2 (1e-4) so that
    the held-out pairs are answered correctly; without it the neurons and the lottery look
    the same but test accuracy is ~0.3-0.4 at the end.

    python -m experiments.reproduce --figure=lottery            # 5 seeds, figure, report.json
    python -m experiments.main --config=experiments/configs/lottery.py --workdir=/tmp/lottery

Variants: `:quick` (seeds 0 and 1 of the five, nothing else reduced: with 256 neurons the
held-out accuracy stays at 0.87-0.92) for CPU tests and notebooks.
Parameters are kept at log-spaced steps (the winner is decided in the first ~100 steps).
Run time (2-core CPU shared with other jobs, measured, training + figure): full 36-66 s,
--quick 22-35 s.
"""
import ml_collections

from experiments.configs.common import base_config, with_variant

SEEDS = (0, 1, 2, 3, 4)
VARIANTS = {"quick": {"sweep.seed": SEEDS[:2]}}


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  c = base_config(model="two_layer", data_name="modular", opt="gd", loss="cross_entropy")
  c.data.p = 23                    # K = 11 frequencies
  c.data.op = "add"
  c.data.encoding = "onehot"       # x = [onehot(a), onehot(b)], width 2p
  c.data.train_frac = 0.9          # 10% of the pairs held out to test
  c.data.seed = 0                  # the split; the sweep seed is the model init
  c.model.width = 512
  c.model.activation = "relu"
  c.model.init_scale = 0.02        # small init: the decoupled lottery regime
  c.model.balanced = True          # ||v_j|| = ||w_j||: both layers on the same scale
  c.opt.learning_rate = 5.0        # full-batch GD; the race is over by step ~100
  c.opt.weight_decay = 1e-4        # coupled L2; only the held-out accuracy needs it
  c.train.update(steps=4000, log_every=10, chunk_steps=1000)
  c.train.keep = "log:30"          # 0, 10, 20, ... log-spaced to the end
  c.sweep.seed = SEEDS
  return with_variant(c, variant, VARIANTS)
