r"""Grokking on modular addition (Nanda et al. 2023, "Progress measures for grokking via
mechanistic interpretability", Fig. 1, 2 and 7).

Their configuration exactly: p = 113, tokens [a, b, =], 30% of the p^2 pairs for training
(3,830), full batch; the one-layer transformer (d_model 128, 4 heads of 32, d_mlp 512, ReLU, no
LayerNorm, untied); AdamW lr 1e-3, weight decay 1, betas (0.9, 0.98), 10-step linear warmup;
cross-entropy computed in float64 (the model in float32); 40k steps; five seeds (model init;
the split is data.seed) in one vmapped program. Parameters are kept every 1,000 steps for
the progress measures.

    python -m experiments.reproduce --figure=grokking            # 5 seeds, figure, report.json
    python -m experiments.main --config=experiments/configs/grokking.py --workdir=/tmp/grok

Variants: `:quick` (p = 53, 50% train, d_model 64, d_mlp 256, lr 3e-3, 2,500 steps: groks on a
2-core CPU), `:wd` (weight decay 0 / 0.3 / 1 / 3 as the sweep, seed 0), `:nowd` (weight decay
0), `:fracNN` (train fraction NN%, e.g. `:frac50`), `:seed0` (seed 0 only); combine with `_`,
e.g. `:quick_wd`. `--figure=grokking_sweeps` runs `:wd` and `:fracNN_seed0` for the fractions
in TRAIN_FRACS.
Figure: train/test loss and accuracy (log-log) for every member, W_E's Fourier norms, and the
progress measures (restricted and excluded loss, Gini of W_E and W_L, weight norm) with the
phases marked.
Run time (2-core CPU, measured): --quick ~1 min; --figure=grokking_sweeps --quick ~2 min.
The full configuration (6.4 GFLOP per step per seed, the last block computed at the last
position only; 13.9 when every position was computed, before 2026-12-01) is a GPU job: on the
2-core CPU its five seeds took 0.40 s per step before that change, so a 15k-step run (the
horizon of its claims; what `--steps=15000` launches) took ~1 h 45 min; after it, 0.17-0.2 s
per step (steps 15k-40k in 1 h 15 min, 2026-12-01). The full
--figure=grokking_sweeps: the `:wd` program (four members) takes 0.12 s per step on that CPU
(0.3 before the change); the four single-seed fraction runs, which stop at 99% test
accuracy, ~50 min (before the change; 38 of them for 20%, which never groks and runs
all 40k steps).
"""
import ml_collections

from experiments.configs.common import base_config, with_variant

SEEDS = (0, 1, 2, 3, 4)
WEIGHT_DECAYS = (0.0, 0.3, 1.0, 3.0)
TRAIN_FRACS = (0.2, 0.3, 0.5, 0.7)


VARIANTS = {
    # p = 53, 50% train, a smaller model and a larger rate: groks in 2,500 steps on a CPU
    "quick": {"data.p": 53, "data.train_frac": 0.5, "opt.learning_rate": 3e-3,
              "model.d_model": 64, "model.n_heads": 4, "model.d_head": 16, "model.d_mlp": 256,
              "train.steps": 2500, "train.log_every": 20, "train.chunk_steps": 1000,
              "train.keep": "every:100", "sweep.seed": SEEDS[:3]},
    "wd": {"sweep": dict(opt=dict(weight_decay=WEIGHT_DECAYS))},       # seed 0 only
    "nowd": {"opt.weight_decay": 0.0},
    "seed0": {"sweep": {}},
}
# fracNN: train fraction NN%
PATTERNS = {r"frac([0-9]+)": lambda nn: {"data.train_frac": int(nn) / 100}}


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  c = base_config(model="transformer", data_name="modular", opt="adamw", loss="cross_entropy")
  c.data.update(p=113, op="add", train_frac=0.3, seed=0)
  c.loss.float64 = True                  # float64 cross-entropy: no loss spikes from absorption
  c.opt.update(learning_rate=1e-3, weight_decay=1.0, b1=0.9, b2=0.98)
  c.opt.schedule.update(name="warmup", warmup_steps=10)
  c.train.update(steps=40000, log_every=100, chunk_steps=5000, keep="every:1000")
  c.probes.weight_norm = ml_collections.ConfigDict()
  c.sweep.seed = SEEDS
  return with_variant(c, variant, VARIANTS, PATTERNS, exclusive=(("wd", "nowd"),))
