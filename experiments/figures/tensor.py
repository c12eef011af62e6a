"""Tensor factorizations from small initialization: CP components learned one at a time, the
CP rank of the target found, a higher rank from a larger start (Razin, Maman, Cohen 2021); an
over-parameterized tubal factorization U * U^T finds the true tubal rank and subspace (Karnik,
Veselovska, Iwen, Krahmer 2024). The measurements are analysis.tensor_measures'."""
import matplotlib.pyplot as plt
import numpy as np

from analysis import tensor_measures as tm
from experiments.configs import cp_implicit_rank, tubal_implicit_rank
from experiments.figures import claim, finite_claim, save, tidy, variant_runs

CP_TEST_ERROR = 0.05       # relative error on the unobserved entries: "small"
TUBAL_ERROR = 1e-3         # ||X - X*|| / ||X*|| and the principal angle's sine: "recovered"


# ---- CP ----------------------------------------------------------------------------------------

def _cp_draw(trajs, out, quick):
  t = trajs["sweep"]
  claims = [finite_claim(f"cp, {t.label(i)}", t, i) for i in range(t.n_members)]
  rec = tm.cp_recovery(t)
  steps, norms = rec["steps"], rec["norms"]                    # [T], [T, member, R]
  alphas = np.asarray(t.coords["model.init_scale"])
  small = int(np.argmin(alphas))
  data = t.config["data"]
  rank, target = data["rank"], np.sort(data["norms"])[::-1]
  jump = tm.jumps(steps, norms[:, small])
  sig, err = rec["significant"][-1], rec["test_error"][-1]
  fig, ax = plt.subplots(1, 3, figsize=(19, 4.8))
  for j, r in enumerate(np.argsort(norms[-1, small])[::-1]):
    ax[0].plot(steps, norms[:, small, r], lw=1.6, color=f"C{j}" if j < 10 else "0.6")
  for s in target:
    ax[0].axhline(s, color="k", ls=":", lw=0.7)
  for h in jump["rise"][:, 1]:
    ax[0].axvline(h, color="0.5", ls="--", lw=0.6)
  top = 1.25 * norms[-1, small].max()
  ax[0].set_ylim(-0.03 * top, top)
  for r, peak in zip(jump["components"], norms[:, small][:, jump["components"]].max(axis=0)):
    if peak > top:                     # an overshoot off the scale: say where it went
      at = steps[np.argmax(norms[:, small, r])]
      ax[0].annotate(f"peaks at {peak:.2g} (step {at})", (at, 0.97 * top), fontsize=8,
                     ha="left", va="top")
  ax[0].set(title=f"component norms, init {alphas[small]:g}\n(dotted: W*'s norms; dashed: each "
            "jump's half-way step)", xlabel="step", ylabel="||a_r^(1) o ... o a_r^(N)||")
  ax[0].grid(alpha=0.3)
  for i, a in enumerate(alphas):
    ax[1].semilogy(np.arange(1, norms.shape[-1] + 1), np.sort(norms[-1, i])[::-1], "o-",
                   label=f"init {a:g}: {sig[i]} significant")
    ax[2].loglog(np.maximum(steps, 1), rec["test_error"][:, i], label=f"init {a:g}")
  ax[1].axhline(tm.SIGNIFICANT * norms[-1, small].max(), color="k", ls=":", lw=0.8)
  tidy([ax[1]], title=f"final component norms, sorted\n(dotted: {tm.SIGNIFICANT:g} x the "
       "largest)", xlabel="component", ylim=(1e-5, 3))
  tidy([ax[2]], title="relative error on the unobserved entries", xlabel="step (+1 at 0)")
  rise = jump["rise"]
  claims += [
      claim(f"init {alphas[small]:g}: the components rise one at a time (in order of arrival, "
            "each reaches 90% of its final norm before the next reaches 10% of its own, from "
            "below 1% of it)", rise[:, 1].round(1).tolist(), "half-way steps strictly "
            "increasing, rise windows [10%, 90%] disjoint",
            jump["one_at_a_time"] and bool(np.all(jump["from_small"])),
            rise_windows=[[round(float(a), 1), round(float(b), 1)] for a, _, b in rise],
            final_norms=jump["final"].round(4).tolist(),
            overshoot=jump["overshoot"].round(3).tolist(), in_order_of_norm=jump["by_norm"]),
      claim(f"init {alphas[small]:g}: the number of significant components (norm > "
            f"{tm.SIGNIFICANT:g} x the largest) equals W*'s CP rank", int(sig[small]), f"= {rank}",
            sig[small] == rank, final_norms=np.sort(norms[-1, small])[::-1].round(4).tolist()),
      claim(f"init {alphas[small]:g}: relative error on the unobserved entries",
            float(err[small]), f"< {CP_TEST_ERROR:g}", err[small] < CP_TEST_ERROR,
            train_error=float(rec["train_error"][-1, small])),
  ]
  larger = [i for i in range(len(alphas)) if i != small]
  claims.append(claim("every larger init ends with more significant components and a larger "
                      "error on the unobserved entries than the smallest",
                      {f"init {alphas[i]:g}": dict(significant=int(sig[i]),
                                                   test_error=float(err[i])) for i in larger},
                      f"significant > {int(sig[small])} and test error > {float(err[small]):.2g}"
                      " for each", all(sig[i] > sig[small] and err[i] > err[small]
                                       for i in larger)))
  notes = [f"init {alphas[small]:g}: the components arrive in order of their final norms: "
           f"{jump['by_norm']} (final norms in order of arrival "
           f"{jump['final'].round(3).tolist()}); which target component is picked up first "
           "depends on the initial alignment as well as on its norm",
           f"init {alphas[small]:g}: the largest norm of each component over the run / its final"
           f" norm, in order of arrival: {jump['overshoot'].round(2).tolist()} (above 1: the "
           "component overshoots and comes back; the unobserved error rises with it)"]
  fig.suptitle(f"CP tensor completion (Razin et al. 2021): order {data['order']}, dimension "
               f"{data['dimension']}, CP rank {rank}, {data['n_observed']} observed entries; "
               f"{t.config['model']['components']} components, GD lr "
               f"{t.config['opt']['learning_rate']:g}, float64 ({'quick' if quick else 'full'})",
               fontsize=11)
  return dict(claims=claims, figures=[save(fig, out, "cp_implicit_rank")], notes=notes)


# ---- tubal -------------------------------------------------------------------------------------

def _slices(ax, steps, sv, title):
  """Every Fourier slice's singular values [T, k, n] over the steps (slice j: color j)."""
  k, n = sv.shape[1:]
  for j in range(k):
    for i in range(n):
      ax.semilogy(np.maximum(steps, 1), np.maximum(sv[:, j, i], 1e-30), color=f"C{j}", lw=1.0,
                  alpha=0.8, label=f"Fourier slice {j}" if i == 0 else None)
  ax.set(title=title, xlabel="step (+1 at 0)", ylim=(1e-16, 3), xscale="log")


def _tubal_draw(trajs, out, quick):
  t = trajs["sweep"]
  claims = [finite_claim(f"tubal, {t.label(i)}", t, i) for i in range(t.n_members)]
  rec = tm.tubal_recovery(t)
  steps, sv = rec["steps"], rec["singular_values"]             # [T, member, k, n]
  alphas = np.asarray(t.coords["model.init_scale"])
  order = np.argsort(alphas)
  small, large = int(order[0]), int(order[-1])
  r = t.config["data"]["rank"]
  rank, err, angle = (rec[k][-1] for k in ("tubal_rank", "error", "angle"))
  fig, ax = plt.subplots(1, 3, figsize=(19, 4.8))
  for a, i in ((ax[0], small), (ax[1], large)):
    _slices(a, steps, sv[:, i], f"singular values of every Fourier slice of U * U^T\nalpha "
            f"{alphas[i]:g} (end: tubal rank {rank[i]})")
  for i, a in enumerate(alphas):
    ax[2].loglog(np.maximum(steps, 1), rec["error"][:, i], f"C{i}-",
                 label=f"alpha {a:g}: ||X - X*|| / ||X*||")
    ax[2].loglog(np.maximum(steps, 1), rec["angle"][:, i], f"C{i}--",
                 label=f"alpha {a:g}: sin(principal angle)")
  tidy(ax[:2], fontsize=7)
  tidy([ax[2]], fontsize=7, title="recovery error, and the principal angle\nto the true tubal "
       "subspace", xlabel="step (+1 at 0)")
  top = sv[-1, small, :, :r]
  rest = sv[-1, small, :, r:].max() / sv[-1, small].max()
  claims += [
      claim(f"alpha {alphas[small]:g}: tubal rank of U * U^T at the end (tubes above "
            f"{tm.TUBAL_RTOL:g} x the largest singular value) equals X*'s", int(rank[small]),
            f"= {r}", rank[small] == r, largest_other=float(rest),
            top_values_minus_one=float(np.abs(top - 1).max())),
      claim(f"alpha {alphas[small]:g}: relative recovery error ||X - X*|| / ||X*|| and the sine "
            "of the principal angle between the learned and the true tubal subspace",
            dict(error=float(err[small]), angle=float(angle[small])),
            f"both < {TUBAL_ERROR:g}", err[small] < TUBAL_ERROR and angle[small] < TUBAL_ERROR),
      claim("the recovery error and the principal angle at the end grow with alpha",
            {f"alpha {alphas[i]:g}": dict(error=float(err[i]), angle=float(angle[i]),
                                          tubal_rank=int(rank[i])) for i in order},
            "increasing along alpha", bool(np.all(np.diff(err[order]) > 0) and
                                           np.all(np.diff(angle[order]) > 0))),
      claim(f"alpha {alphas[large]:g}: a larger start keeps more than the true tubal rank",
            int(rank[large]), f"> {r}", rank[large] > r),
  ]
  d, m = t.config["data"], t.config["model"]
  fig.suptitle(f"Tubal sensing (Karnik et al. 2024): X* {d['dimension']}x{d['dimension']}x"
               f"{d['tube']} of tubal rank {r}, {d['n_train']} Gaussian measurements; U * U^T "
               f"with width {m['width']}, GD lr {t.config['opt']['learning_rate']:g}, float64 "
               f"({'quick' if quick else 'full'})", fontsize=11)
  return dict(claims=claims, figures=[save(fig, out, "tubal_implicit_rank")], notes=[])


FIGURES = {
    "cp_implicit_rank": ("CP tensor completion from small init: the components are learned one "
                         "at a time and their number is the target's CP rank; larger inits end "
                         "with higher rank and larger test error (Razin, Maman, Cohen 2021)",
                         variant_runs(cp_implicit_rank, sweep=""), _cp_draw),
    "tubal_implicit_rank": ("over-parameterized tubal factorization U * U^T on tubal sensing from "
                            "small init: every Fourier slice learns the true rank, the tubal "
                            "subspace is recovered; the error grows with the init scale (Karnik "
                            "et al. 2024)", variant_runs(tubal_implicit_rank, sweep=""),
                            _tubal_draw),
}
