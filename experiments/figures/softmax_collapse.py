"""Softmax Collapse without weight decay, and its fixes (Prieto et al. 2025): test accuracy,
train loss, collapse share and gradient-weight cosine of softmax, StableMax and PerpGrad runs."""
import matplotlib.pyplot as plt
import numpy as np

from experiments.configs import softmax_collapse as sc_cfg
from experiments.figures import claim, finite_claim, save, tidy, variant_runs

RUNS = ("softmax", "stablemax", "perpgrad")
COLORS = {"softmax": "tab:red", "stablemax": "tab:blue", "perpgrad": "tab:green"}


_runs = variant_runs(sc_cfg, softmax="", stablemax="stablemax", perpgrad="perpgrad")


def _final(t, name):
  v = t.metrics[name][0]
  return float(v[np.isfinite(v)][-1])


def _draw(trajs, out, quick):
  panels = [("test_acc", "test accuracy (train dotted)", False),
            ("train_loss", "train loss", True),
            # measured with softmax on the logits for every run: StableMax's logits grow
            # large without that mattering to its own loss
            ("softmax_collapse/share", "share of train samples in softmax collapse", False),
            ("softmax_collapse/grad_weight_cosine", "cos(gradient, weights)", False)]
  fig, ax = plt.subplots(1, 4, figsize=(20, 4.4))
  for name in RUNS:
    t = trajs[name]
    for a, (metric, title, log) in zip(ax, panels):
      y = t.metrics[metric][0]
      ok = np.isfinite(y) & ((y > 0) if log else True)
      a.plot(t.steps[ok], y[ok], color=COLORS[name], lw=1.3, label=name)
      a.set(title=title, xlabel="step", yscale="log" if log else "linear")
    ax[0].plot(t.steps, t.metrics["train_acc"][0], color=COLORS[name], lw=0.8, ls=":")
  tidy(ax)
  cfg = trajs["softmax"].config
  moments = " (moments float64)" if cfg["opt"].get("moments_float64") else ""
  fig.suptitle(f"No weight decay, float32 model (StableMax's loss in float64): MLP "
               f"{'x'.join(map(str, cfg['model']['widths']))} "
               f"without bias on one-hot (a, b), (a + b) mod {cfg['data']['p']}, "
               f"{cfg['data']['train_frac']:.0%} train, AdamW lr {cfg['opt']['learning_rate']:g}"
               f"{moments} ({'quick' if quick else 'full'})", fontsize=11)
  path = save(fig, out, "softmax_collapse")
  return dict(claims=_claims(trajs), figures=[path])


def _claims(trajs):
  sm = trajs["softmax"]
  share = sm.metrics["softmax_collapse/share"][0]
  # a run's final numbers describe its end only if it got there: divergence fails its claims
  claims = [finite_claim(name, trajs[name]) for name in RUNS]
  claims += [
      claim("softmax, no weight decay: largest share of training samples in softmax collapse",
            float(np.nanmax(share)), "> 0.5 (Prieto et al.: collapse takes over once the train "
            "set is fit)", np.nanmax(share) > 0.5),
      claim("softmax, no weight decay: test accuracy at the end", _final(sm, "test_acc"),
            "< 0.5 (no grokking)", _final(sm, "test_acc") < 0.5),
  ]
  for name in ("stablemax", "perpgrad"):
    acc = _final(trajs[name], "test_acc")
    claims.append(claim(f"{name}, no weight decay: test accuracy at the end", acc,
                        ">= 0.9 (Prieto et al.: generalization without regularization)",
                        acc >= 0.9))
  acc = trajs["stablemax"].metrics["test_acc"][0]
  best = int(np.nanargmax(acc))
  claims.append(claim("stablemax: highest test accuracy and its step",
                      [float(acc[best]), int(trajs["stablemax"].steps[best])],
                      "reported (a late loss spike can undo generalization before the end)",
                      True, note="informational"))
  cos = sm.metrics["softmax_collapse/grad_weight_cosine"][0]
  half = cos[len(cos) // 2:]
  claims.append(claim("softmax: median cos(gradient, weights) over the second half",
                      float(np.nanmedian(half)), "reported (Prieto et al.: near -1 under naive "
                      "loss minimization, the gradient scaling the weights up)", True,
                      note="informational"))
  return claims


FIGURES = {
    "softmax_collapse": ("without weight decay: softmax collapse in float32 stalls "
                         "generalization; StableMax and PerpGrad (Prieto et al. 2025)",
                         _runs, _draw),
}
