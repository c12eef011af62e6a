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

from experiments.configs.common import base_config

SEEDS = (0, 1, 2, 3, 4)
WEIGHT_DECAYS = (0.0, 0.3, 1.0, 3.0)
TRAIN_FRACS = (0.2, 0.3, 0.5, 0.7)


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  parts = set(variant.split("_")) - {""}
  fracs = {v for v in parts if v.startswith("frac") and v[4:].isdigit()}
  if parts - fracs - {"quick", "wd", "nowd", "seed0"} or len(fracs) > 1 or {"wd", "nowd"} <= parts:
    raise ValueError(f"grokking variant {variant!r} is not allowed; combine 'quick', 'seed0', at "
                     "most one of 'wd', 'nowd' and at most one 'fracNN' (e.g. 'quick_frac50')")
  quick = "quick" in parts
  c = base_config(model="transformer", data_name="modular", opt="adamw", loss="cross_entropy")
  c.data.p = 53 if quick else 113
  c.data.op = "add"
  c.data.train_frac = 0.5 if quick else 0.3
  if fracs:
    c.data.train_frac = int(fracs.pop()[4:]) / 100
  c.data.seed = 0
  if quick:
    c.model.update(dict(d_model=64, n_heads=4, d_head=16, d_mlp=256))
  c.loss.float64 = True                  # float64 cross-entropy: no loss spikes from absorption
  c.opt.learning_rate = 3e-3 if quick else 1e-3
  c.opt.weight_decay = 1.0
  c.opt.b1, c.opt.b2 = 0.9, 0.98
  c.opt.schedule.name = "warmup"
  c.opt.schedule.warmup_steps = 10
  c.train.steps = 2500 if quick else 40000
  c.train.log_every = 20 if quick else 100
  c.train.chunk_steps = 1000 if quick else 5000
  c.train.keep = "every:100" if quick else "every:1000"
  c.probes.weight_norm = ml_collections.ConfigDict()
  if "wd" in parts:
    c.sweep.opt = ml_collections.ConfigDict(dict(weight_decay=WEIGHT_DECAYS))
  elif "seed0" not in parts:
    c.sweep.seed = SEEDS[:3] if quick else SEEDS
  if "nowd" in parts:
    c.opt.weight_decay = 0.0
  return c
