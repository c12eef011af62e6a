"""GD, scalar RMSProp and RMSProp beside their central flows and stable flows (Cohen et al.
2025): the predicted time-averaged loss and squared gradient norm, the effective sharpness held
at 2, the effective learning rate (RMSProp), and distances to the real run's midpoint iterates."""
import matplotlib.pyplot as plt
import numpy as np

from analysis import central_flow_processes as cfp
from experiments.configs import (central_flow_gd, central_flow_rmsprop, central_flow_scalar_rmsprop,
                                 central_flow_speed)
from experiments.figures import claim, finite_claim, save, tidy, variant_runs

CONFIGS = {"gd": central_flow_gd, "scalar_rmsprop": central_flow_scalar_rmsprop,
           "rmsprop": central_flow_rmsprop}
LABEL = {"gd": "GD", "scalar_rmsprop": "scalar RMSProp", "rmsprop": "RMSProp"}


def window_average(x, T, window):
  """The centred `window`-step moving average of x, its first T entries."""
  return np.convolve(x, np.ones(window) / window, mode="same")[:T]


def _draw_for(extra=None, figure=None):
  """The figure's draw function: the processes of every member of its run, each plotted
  (`figure`: the PNG's name, default central_flow_<optimizer>; per member of a sweep,
  _member<i> added) and judged by `claims` and `extra(r)`."""
  def draw(trajs, out, quick):
    traj = trajs["run"]
    report = dict(claims=[], figures=[], notes=[])
    for i in range(traj.n_members):
      tag = f" ({traj.label(i)})" if traj.n_members > 1 else ""
      if traj.diverged[i]:                # no flows to compare with: the report says why
        report["claims"].append(finite_claim(LABEL.get(traj.config["opt"]["name"], "run") + tag,
                                             traj, i))
        continue
      r = cfp.processes(traj, i)
      name = figure or f"central_flow_{r['name']}"
      report["figures"].append(_plot(r, traj.config, out, quick, name + (
          f"_member{i}" if traj.n_members > 1 else "")))
      got = claims(r) + (extra(r) if extra else [])
      report["claims"] += [dict(c, claim=c["claim"] + tag) for c in got]
      report["notes"].append(tracking_note(r) + tag)
    return report
  return draw


def _plot(r, cfg, out, quick, figure):
  s, name = r["settings"], r["name"]
  T, real, lab, W = len(r["cf"].loss), r["real"], LABEL[name], s["window"]
  steps, ok = np.arange(T), slice(W // 2, T - W // 2)   # where the window lies inside the run
  panels = 5 if name != "gd" else 4
  fig, ax = plt.subplots(1, panels, figsize=(4.4 * panels, 4.4))
  ax[0].semilogy(steps, real["loss"][:T], color="0.6", lw=0.8, label=lab)
  ax[0].semilogy(steps[ok], window_average(real["loss"], T, W)[ok], "k-", lw=1.2,
                 label=f"{lab}, {W}-step average")
  ax[0].semilogy(steps, r["cf"].predicted_loss, "C3--", lw=1.5,
                 label="central flow: predicted time-averaged loss")
  ax[0].semilogy(steps, r["gf"].loss, "C0:", lw=1.2, label="stable flow")
  ax[1].plot(steps, real["sharpness"][:T], color="0.6", lw=0.8, label=lab)
  ax[1].plot(steps, r["cf"].sharpness, "C3-", label="central flow")
  ax[1].plot(steps, r["gf"].sharpness, "C0:", label="stable flow")
  ax[1].axhline(2, color="k", ls="--", lw=1, label="2 (stability threshold)")
  ax[2].semilogy(steps[ok], window_average(real["grad_sq"], T, W)[ok], "k-", lw=1.2,
                 label=f"{lab}, {W}-step average")
  ax[2].semilogy(steps, r["cf"].predicted_grad_sq, "C3--", label="central flow: predicted")
  ax[2].semilogy(steps, r["gf"].predicted_grad_sq, "C0:", label="stable flow")
  ax[3].plot(r["marks"], r["dist_mid_cf"], "C3o-", label=f"|{lab} midpoint - central flow|")
  ax[3].plot(r["marks"], r["dist_mid_gf"], "C0s-", label=f"|{lab} midpoint - stable flow|")
  ax[3].plot(r["marks"], r["perp_real_cf"], "C2^:",
             label=f"|{lab} - central flow|, orthogonal to V")
  titles = ["loss", "effective sharpness lambda_max(P^-1 H)", "squared gradient norm",
            "distance in weight space"]
  if name != "gd":
    ax[4].plot(steps, real["effective_lr"][:T], color="0.6", lw=0.8, label=lab)
    ax[4].plot(steps, r["cf"].effective_lr, "C3--", label="central flow")
    ax[4].plot(steps, r["gf"].effective_lr, "C0:", label="stable flow")
    titles.append("effective learning rate 1/mean(P)")
  for a, t in zip(ax, titles):
    tidy([a], 7, title=t, xlabel=f"step (after {s['start']} {lab} steps)")
  o, m, d = cfg["opt"], cfg["model"], cfg["data"]
  hp = f"eta={o['learning_rate']:g}" + (f", b2={o['b2']:g}" if name != "gd" else "")
  ds = f"{d['n_train']} digits (0-3)" if d["name"] == "digits" else d["name"]
  fig.suptitle(f"{lab} and its central flow: fc-{m['activation']} "
               f"{'x'.join(map(str, m['widths']))}, MSE, {ds}, {hp}, "
               f"{r['n_params']:,} parameters, float64 ({'quick' if quick else 'full'})",
               fontsize=11)
  return save(fig, out, figure)


def tracking_note(r) -> str:
  """How many directions the central flow tracked and how close that came to too few."""
  cf, ks, k_max = r["cf"], np.asarray(r["k_cf"]), int(r["k_max"])
  full = float(np.mean(np.asarray(cf.num_active) == ks))
  sat = float(np.mean(cf.saturated))
  grew = (f"k = {ks[0]}" if ks.min() == ks.max() else
          f"k = {ks[0]} growing to {ks.max()} (by step {int(np.argmax(ks == ks.max()))})")
  return (f"{grew} tracked directions (at most {k_max}): all tracked active at {full:.0%} of "
          f"the central flow's steps; smallest tracked effective eigenvalue above 1.5 (the "
          f"public code would add a direction) at {sat:.0%}")


def _median(x):
  """The median, or None for a run shorter than two windows."""
  return float(np.median(x)) if np.size(x) else None


def claims(r) -> list:
  """The report's claims for one optimizer's processes (cfp.processes' output); the real run's
  loss, squared gradient norm and effective learning rate are averaged over the settings'
  `window` steps."""
  T, real, lab, W = len(r["cf"].loss), r["real"], LABEL[r["name"]], r["settings"]["window"]
  stable_substeps = r["settings"]["stable_substeps"]
  lo, hi = W, T - W
  ratio = r["cf"].predicted_loss[lo:hi] / window_average(real["loss"], T, W)[lo:hi]
  gratio = r["cf"].predicted_grad_sq[lo:hi] / window_average(real["grad_sq"], T, W)[lo:hi]
  gmean = (float(np.mean(r["cf"].predicted_grad_sq[W:T]) / np.mean(real["grad_sq"][W:T]))
           if T > W else None)
  S = r["cf"].sharpness / 2
  reached = np.flatnonzero(np.abs(S - 1) < 1e-2)
  dev = float(np.max(np.abs(S[reached[0]:] - 1))) if reached.size else None
  out = [
      claim(f"central flow's predicted time-averaged loss over {lab}'s {W}-step average "
            "loss (median over the run)", _median(ratio), "in [0.9, 1.1] (within 10%)",
            bool(np.size(ratio)) and 0.9 <= np.median(ratio) <= 1.1,
            whole_run_ratio=(float(np.mean(r["cf"].predicted_loss[W:T]) /
                                   np.mean(real["loss"][W:T])) if T > W else None)),
      # the squared gradient norm is almost all oscillation, which waxes and wanes over the
      # self-stabilization cycles (tens of steps): compared as a time average over the run
      claim(f"central flow's predicted time-averaged squared gradient norm over {lab}'s, "
            f"both averaged over steps {W}-{T}", gmean, "in [0.8, 1.25]",
            gmean is not None and 0.8 <= gmean <= 1.25, windowed_median=_median(gratio)),
      claim(f"at the end: |{lab} midpoint - stable flow| / |{lab} midpoint - central flow|",
            float(r["dist_mid_gf"][-1] / r["dist_mid_cf"][-1]), ">= 5",
            r["dist_mid_gf"][-1] >= 5 * r["dist_mid_cf"][-1]),
      claim("central flow: effective sharpness / 2 from its first arrival at 2 to the end "
            "(max deviation)", dev, "<= 0.03 (held at 2)", dev is not None and dev <= 0.03),
      claim("stable flow: effective sharpness / 2 at the end", float(r["gf"].sharpness[-1] / 2),
            "> 1 (sharpens past 2)", r["gf"].sharpness[-1] / 2 > 1),
      # the stable flow is stiff: its Euler substep dt is stable only while dt * S_eff < 2
      claim("stable flow integrated stably: max effective sharpness x its substep dt",
            float(np.max(r["gf"].sharpness) / stable_substeps), "< 2",
            np.max(r["gf"].sharpness) / stable_substeps < 2),
  ]
  if r["name"] != "gd":
    avg = window_average(real["effective_lr"], T, W)[-W]
    err = lambda p: float(abs(r[p].effective_lr[-W] / avg - 1))
    out += [
        claim(f"effective learning rate {W} steps before the end: central flow's relative "
              f"error against {lab}'s {W}-step average", err("cf"),
              "<= 0.02 and below the stable flow's", err("cf") <= 0.02 and err("cf") < err("gf"),
              stable_flow=err("gf")),
        claim(f"at the end: |nu_{lab} - nu_flow| / |nu_{lab}|, central flow",
              float(r["nu_err_cf"][-1]), "below the stable flow's",
              r["nu_err_cf"][-1] < r["nu_err_gf"][-1], stable_flow=float(r["nu_err_gf"][-1])),
    ]
  return out


# the public code's numbers at step 180 on central_flow_speed's configuration (REFERENCE.md Sec. 2)
PUBLIC_AT_180 = dict(gd_sharpness=99.7, cf_sharpness=100.0, gf_sharpness=206.0,
                     dist_gd_cf=0.019, dist_gd_gf=0.14, predicted_loss=0.018, gd_loss=0.017)


def public_comparison(r) -> list:
  """central_flow_speed: the measured numbers at step 180 (or the last mark before it) beside
  the public code's; sharpness in raw units (effective / eta)."""
  eta, marks = r["eta"], r["marks"]
  m = int(marks[marks <= 180][-1]) if np.any(marks <= 180) else int(marks[0])
  i = int(np.flatnonzero(marks == m)[0])
  f = min(m, len(r["cf"].loss) - 1)        # the flows' log entry s is the state at step s
  got = dict(gd_sharpness=float(r["real"]["sharpness"][m] / eta),
             cf_sharpness=float(r["cf"].sharpness[f] / eta),
             gf_sharpness=float(r["gf"].sharpness[f] / eta),
             dist_gd_cf=float(r["dist_real_cf"][i]), dist_gd_gf=float(r["dist_real_gf"][i]),
             predicted_loss=float(r["cf"].predicted_loss[f]),
             gd_loss=float(r["real"]["loss"][m]))
  ok = (abs(got["cf_sharpness"] * eta / 2 - 1) < 0.01 and got["gf_sharpness"] > 2 / eta
        and got["dist_gd_gf"] >= 5 * got["dist_gd_cf"])
  # a run of exactly m steps logs its flows at steps 0..m-1: say so rather than label step m-1 m
  at = f"at step {m}" + (f" (the flows' sharpness and predicted loss at step {f}, their last "
                         "log entry)" if f < m else "")
  return [claim(f"{at}: the public code's picture (central flow at 2/eta, gradient "
                "flow above it, GD >= 5x closer to the central flow)", got,
                f"public code at step 180: {PUBLIC_AT_180}", ok)]


FIGURES = {
    f"central_flow_{name}": (
        f"{LABEL[name]} beside its central flow and stable flow (Cohen et al. 2025): predicted "
        "time-averaged loss and gradient norm, effective sharpness at 2"
        + (", effective learning rate" if name != "gd" else "") + ", distances",
        variant_runs(CONFIGS[name], run=""), _draw_for())
    for name in CONFIGS
}
FIGURES["central_flow_speed"] = (
    "GD and its central flow on the public code's minimal example (CIFAR-shaped digits, "
    "MLP 3072-256-256-4 GELU, lr 0.02, 400 steps, directions added from 3): --quick: 40 steps",
    variant_runs(central_flow_speed, run=""), _draw_for(public_comparison, "central_flow_speed"))
FIGURES["central_flow_speed_seeds"] = (
    "central_flow_speed with initialization seeds 0-4 (one sweep), to step 180 (the public "
    "code's comparison step) only: how much the step-180 numbers move with the draw of the "
    "weights; --quick: 40 steps",
    lambda quick: {"run": central_flow_speed.get_config("quick_seeds" if quick else
                                                        "seeds_steps180")},
    _draw_for(public_comparison, "central_flow_speed"))
