r"""Early neuron alignment in two-layer ReLU networks from small initialization (Min, Mallada,
Vidal 2024; Boursier & Flammarion 2022; REFERENCE.md Sec. 5): figure `early_alignment`
(experiments/figures/relu.py).

    python -m experiments.reproduce --figure=early_alignment [--quick]
    python -m experiments.main --config=experiments/configs/early_alignment.py:late --workdir=DIR

f(x) = sum_j v_j relu(w_j . x) (dynamics.models.two_layer, width 20, no biases), balanced start
|v_j| = ||w_j|| at scale eps, the logistic loss log(1 + exp(-y f)) (the papers' loss: on
separable data it decays like 1/t), full-batch GD at lr 0.2, float64 (eps reaches 1e-7), on
data 'separable_binary': 40 points in d = 10, each class a cone about +-u (spread 0.3, norms
uniform in [0.5, 1]; margin mu = 0.74). The in-loop probe `alignment` (threshold 0.95, cones)
logs every neuron's norm and cosine with x_+ and x_- (the class sums) and W's stable rank.

What the figure shows: while the norms stay small the directions turn to their cone (x_+ when
v_j > 0, x_- otherwise) in a time that does not depend on eps (the direction ODE is scale
free); then the norms grow like exp(lambda t), lambda = ||x_+|| / (2N), so the loss leaves its
plateau at t ~ ln(1/eps) / lambda; then the loss decays like 1/t and W ends of stable rank at
most 2 (about 1 here: the two cones face each other, x_- ~ -x_+).

Runs (the figure's labels):
  ''         early phase: sweep eps in EPS x seed in SEEDS (one program of 20 members), 600
             steps logged every 2.
  late       the loss decay: sweep eps in EPS, seed 0, 40,000 steps (t = 8,000) logged every 50.
  nN         the alignment time against n: n_train N, eps = EPS_REF, seeds SEEDS, 300 steps.
  spreadS    ... against the margin mu: spread S (mu from the data), n = 40.
  quick      eps in QUICK_EPS, seeds 0, 1; late 10,000 steps at lr 0.8 (the same t = 8,000)
             logged every 100; the figure runs n in QUICK_NS and spread in QUICK_SPREADS only.
Run time (2-core CPU, measured 2026-12-04, training + figure): full 60 s (9 runs; 155 s
with other jobs on the machine), --quick 46 s (4 runs, each ~9 s, most of it compiling).
"""
import ml_collections

from experiments.configs.common import base_config, with_variant

EPS = (1e-3, 1e-4, 1e-5, 1e-6, 1e-7)       # init scales (a sweep axis of one program)
QUICK_EPS = (1e-3, 1e-5, 1e-7)
EPS_REF = 1e-6                              # the n and mu sweeps' init scale
SEEDS = (0, 1, 2, 3)                        # init seeds; the data is one draw (data.seed 0)
NS = (10, 40, 160, 640)                     # n_train for the alignment time against n
QUICK_NS = (10,)
SPREADS = (0.1, 0.3, 0.6)                   # data.spread for the alignment time against mu
QUICK_SPREADS = (0.6,)
THRESHOLD = 0.95                            # aligned: cosine with its own cone >= this
LR = 0.2


def _sweep(eps, seeds) -> dict:
  return {"model": {"init_scale": list(eps)}, "seed": list(seeds)}


VARIANTS = {
    "late": {"train.steps": 40000, "train.log_every": 50, "train.chunk_steps": 40000,
             "train.keep": "log:12", "sweep": {"model": {"init_scale": list(EPS)}}},
    "quick": {"sweep": _sweep(QUICK_EPS, SEEDS[:2])},
    "quick_late": {"train.steps": 10000, "train.log_every": 100, "train.chunk_steps": 10000,
                   "opt.learning_rate": 0.8, "sweep": {"model": {"init_scale": list(QUICK_EPS)}}},
}


def _data_run(**data) -> dict:
  return {**{f"data.{k}": v for k, v in data.items()}, "train.steps": 300,
          "train.chunk_steps": 300, "sweep": {"seed": list(SEEDS)},
          "model.init_scale": EPS_REF}


PATTERNS = {r"n([0-9]+)": lambda n: _data_run(n_train=int(n)),
            r"spread([0-9.]+)": lambda s: _data_run(spread=float(s))}


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  c = base_config(model="two_layer", data_name="separable_binary", opt="gd", loss="logistic")
  c.data.update(n_train=40, n_test=200, dim=10, spread=0.3, min_norm=0.5, seed=0)
  c.model.update(width=20, balanced=True, init_scale=EPS_REF)   # |v_j| = ||w_j|| at scale eps
  c.opt.learning_rate = LR                 # t = 0.2 x step
  c.train.update(steps=600, log_every=2, chunk_steps=600, float64=True, keep="log:8")
  c.probes.alignment = ml_collections.ConfigDict(dict(threshold=THRESHOLD, kind="cones"))
  c.sweep = ml_collections.ConfigDict(_sweep(EPS, SEEDS))
  return with_variant(c, variant, VARIANTS, PATTERNS)
