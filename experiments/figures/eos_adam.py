"""Adaptive edge of stability (Cohen et al. 2022): Adam's preconditioned sharpness against 38."""

import matplotlib.pyplot as plt
import numpy as np

from analysis import curvature, plots
from experiments.configs import eos_adam
from experiments.figures import claim, finite_claim, variant_runs, save, setup_label, tidy
from experiments.figures.eos import eos_statistics

BAND = (0.9, 1.1)   # P drifts with nu, so the band is wider than GD's (0.95, 1.10)


def _draw(trajs, out, quick):
  t = trajs["adam"]
  lrs = t.coords["opt.learning_rate"]
  thr = curvature.stability_factor(t.config["opt"])      # (2 + 2 b1)/(1 - b1) = 38
  PS = t.metrics["preconditioned_sharpness/max"]           # NaN at step 0 (nu = 0 there)
  S = t.metrics["sharpness/max"]
  colors = plots.member_colors(t.n_members)
  fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
  plots.plot_metric(axes[0], t, "train_loss", log_y=True, title="train loss (Adam)")
  for i, (lr, c) in enumerate(zip(lrs, colors)):
    plots.plot_finite(axes[1], t.steps, PS[i], color=c, lw=1.2, label=f"eta={lr:g}")
    plots.plot_finite(axes[2], t.steps, S[i], color=c, lw=1.2,
                      label=f"eta={lr:g} (2/eta = {2 / lr:.3g})")
  axes[1].axhline(thr, color="k", ls="--", lw=1.2, label=f"(2+2 b1)/(1-b1) = {thr:g}")
  axes[1].set(title="preconditioned sharpness lambda_max(P^-1 H)", xlabel="step",
              ylim=(0, 1.6 * thr))
  # informational: what equilibrates is P^-1 H; H itself has no fixed ceiling, and GD's 2/eta
  # (in the legend) is far above it
  axes[2].set(title="raw sharpness lambda_max(H)", xlabel="step")
  tidy(axes[1:])
  opt = t.config["opt"]
  fig.suptitle(f"Adaptive edge of stability, Adam (b1={opt['b1']:g}, b2={opt['b2']:g}): "
               f"{setup_label(t.config, quick)}", fontsize=11)
  path = save(fig, out, "eos_adam")

  claims, reached = [], []
  for i, lr in enumerate(lrs):
    if t.diverged[i]:
      claims.append(finite_claim(f"eta={lr:g}", t, i))
      continue
    st = eos_statistics(t.steps, PS[i], 1.0, thr)    # threshold thr / 1.0, ratio PS / thr
    if st is None or st["median_ratio"] is None:
      claims.append(claim(f"eta={lr:g}: preconditioned sharpness does not settle at {thr:g} "
                          "within the run", float(np.nanmax(PS[i])), f"< {thr:g}, or reached "
                          "only at the last log points", True,
                          note="informational: the median claim covers only rates that "
                               "reach the threshold and stay near it"))
      continue
    reached.append(float(lr))
    claims.append(claim(
        f"eta={lr:g}: median of lambda_max(P^-1 H)/{thr:g} after the first crossing (step "
        f"{st['first_crossing_step']}, {st['n_log_points_after']} log points)",
        st["median_ratio"],
        f"in [{BAND[0]}, {BAND[1]}]", BAND[0] <= st["median_ratio"] <= BAND[1]))
  claims.append(claim(f"learning rates whose preconditioned sharpness reaches {thr:g}", reached,
                      "at least 2 of the sweep", len(reached) >= 2))
  return dict(claims=claims, figures=[path])


FIGURES = {
    "eos_adam": ("Adam's preconditioned sharpness hovers at (2+2 b1)/(1-b1) = 38 once it "
                 "reaches it (at least 2 rates of the sweep must; Cohen et al. 2022), fc-tanh "
                 "on digits", variant_runs(eos_adam, adam=""), _draw),
}
