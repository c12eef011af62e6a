"""Neural collapse: the unconstrained features model against its closed-form optimum, and the
perturbed model's distance from collapse against beta (Zhu et al. 2021; Tirer et al. 2023)."""
import matplotlib.pyplot as plt
import numpy as np

from analysis import neural_collapse as nc
from experiments.configs import ufm
from experiments.figures import claim, finite_claim, save

BETAS = (0.1, 1.0, 10.0)   # GD at lr 1 needs beta / N < 2: N = 20 samples in the quick runs
TOL = 1e-6       # the "collapsed": relative gap and NC measures below this, float64


def _ufm_runs(quick):
  q = "quick_" if quick else ""
  runs = {"cross_entropy": ufm.get_config(q.rstrip("_")), "mse": ufm.get_config(q + "mse")}
  runs.update({f"beta{b:g}": ufm.get_config(f"{q}beta{b:g}") for b in BETAS})
  return runs


def _last(traj, key):
  return float(traj.metrics[f"neural_collapse/{key}"][0, -1])


def _ufm_draw(trajs, out, quick):
  fig, ax = plt.subplots(1, 3, figsize=(15, 4.4))
  claims = [finite_claim(label, t) for label, t in trajs.items()]
  for i, loss in enumerate(("cross_entropy", "mse")):
    t = trajs[loss]
    r = nc.ufm_objective(t)
    best = r["optimum"]["objective"]
    gap = np.abs(r["objective"] - best) / best
    ok = r["steps"] > 0
    ax[0].loglog(r["steps"][ok], np.maximum(gap[ok], 1e-17), f"C{i}o-", ms=3, label=loss)
    for key, ls in (("nc1", "-"), ("nc3", "--"), ("etf_features", ":")):
      y = t.metrics[f"neural_collapse/{key}"][0]
      ax[1].semilogy(t.steps[1:], np.maximum(y[1:], 1e-33), f"C{i}{ls}", label=f"{loss}: {key}")
    end = {k: _last(t, k) for k in ("nc1", "etf_features", "etf_weights", "nc3", "nc4")}
    claims += [
        claim(f"{loss}: GD's final objective against the closed-form minimum (relative gap)",
              float(gap[-1]), f"<= {TOL:g}", gap[-1] <= TOL, closed_form=best,
              measured_objective=float(r["objective"][-1])),
        claim(f"{loss}: NC1, NC2 (distance of the features' and weights' Gram matrices to the "
              "simplex ETF) and NC3 at the end", end, f"each <= {TOL:g}",
              all(end[k] <= TOL for k in ("nc1", "etf_features", "etf_weights", "nc3"))),
        claim(f"{loss}: mean feature norm ||h_i|| at the end against the closed form's",
              float(r["feature_norm"][-1]), f"{r['optimum']['feature_norm']:.6g} within 1e-4",
              abs(r["feature_norm"][-1] / r["optimum"]["feature_norm"] - 1) <= 1e-4),
    ]
  ax[0].set(title="objective - closed-form minimum (relative)", xlabel="step")
  ax[1].set(title="neural collapse measures", xlabel="step")
  betas = [0.0] + list(BETAS)
  nc1 = [_last(trajs["cross_entropy"], "nc1")] + [_last(trajs[f"beta{b:g}"], "nc1")
                                                  for b in BETAS]
  ax[2].loglog(BETAS, nc1[1:], "C3o-", label=f"perturbed model, end of GD (beta = 0: "
               f"{nc1[0]:.1e})")
  ax[2].set(title="NC1 of the perturbed model", xlabel="beta (anchor weight)")
  for a in ax:
    a.grid(alpha=0.3)
    a.legend(fontsize=7)
  c = trajs["cross_entropy"].config
  fig.suptitle(f"Unconstrained features model: K={c['data']['num_classes']} classes x "
               f"{c['data']['per_class']}, d={c['model']['dim']}, lambda_W=lambda_H="
               f"{c['model']['lambda_W']:g}, GD lr {c['opt']['learning_rate']:g}, float64 "
               f"({'quick' if quick else 'full'})", fontsize=11)
  path = save(fig, out, "ufm")
  grows = bool(np.all(np.diff(nc1) > 0))
  claims.append(claim("perturbed model: NC1 at the end of GD grows with beta "
                      f"(beta = {', '.join(f'{b:g}' for b in betas)})", nc1,
                      "strictly increasing", grows))
  return dict(claims=claims, figures=[path], notes=[])


FIGURES = {
    "ufm": ("the unconstrained features model: GD reaches the closed-form collapsed optimum "
            "(cross-entropy and MSE, float64); the perturbed model's NC1 grows with beta "
            "(Zhu et al. 2021; Tirer et al. 2023)", _ufm_runs, _ufm_draw),
}
