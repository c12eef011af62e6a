"""Two-layer ReLU networks f(x) = sum_j v_j relu(w_j . x): early neuron alignment from small
initialization (Min, Mallada, Vidal 2024; Boursier & Flammarion 2022) and benign overfitting
then grokking on XOR clusters (Xu, Wang, Frei, Vardi, Hu 2023). The curves are what the runs
logged (the in-loop probe `alignment`, losses, accuracies); the measurements on them are
analysis.relu_phases'."""
import matplotlib.pyplot as plt
import numpy as np

from analysis import alignment as al
from analysis import relu_phases as rp
from experiments.configs import early_alignment as ea
from experiments.configs import xor_grokking as xg
from experiments.figures import claim, finite_claim, save, tidy, variant_runs

SHARE_AT_INIT = 0.25     # aligned or dead at init (random directions: about none)
SMALL_OUTPUT = 0.05      # sum_j ||w_j||^2 (>= |f(x)| for ||x|| <= 1, balanced) at alignment
EPS_SPREAD = 0.10        # alignment time: (max - min) / mean over eps
ESCAPE_R2 = 0.99
ESCAPE_SLOPE_TOL = 0.15  # escape slope against 1 / (lambda lr) (relative)
DECAY_SLOPE = (-1.3, -0.9)
RANK_TOL = 0.01          # W's stable rank against its neurons laid along their cones


# ---- early alignment --------------------------------------------------------------------------

def _alignment_runs(quick):
  ns, spreads = (ea.QUICK_NS, ea.QUICK_SPREADS) if quick else (ea.NS, ea.SPREADS)
  runs = variant_runs(ea, eps="", late="late")(quick)
  runs.update({f"n{n}": ea.get_config(f"n{n}") for n in ns})
  runs.update({f"spread{s}": ea.get_config(f"spread{s}") for s in spreads})
  return runs


def _times(t):
  """Per member: (alignment step, escape step, sum ||w_j||^2 at the alignment step)."""
  m, steps = t.metrics, t.steps
  out = []
  for i in range(t.n_members):
    ta = rp.alignment_time(steps, m["alignment/matched_cosine"][i], m["alignment/dead"][i],
                           ea.THRESHOLD)
    te = rp.escape_time(steps, m["train_loss"][i])
    row = int(np.searchsorted(steps, ta)) if np.isfinite(ta) else -1
    out.append((ta, te, float(np.sum(m["alignment/norms"][i, row] ** 2))))
  return np.array(out)


def _by_eps(t):
  """{eps: member indices} of a run sweeping model.init_scale (and maybe the seed)."""
  eps = np.asarray(t.coords["model.init_scale"])
  return {float(e): np.flatnonzero(eps == e) for e in dict.fromkeys(eps.tolist())}


def _alignment_draw(trajs, out, quick):
  claims = [finite_claim(label, t) for label, t in trajs.items()]
  t = trajs["eps"]
  lr = t.config["opt"]["learning_rate"]
  times = _times(t)
  groups = _by_eps(t)
  eps = np.array(list(groups))
  ta = np.array([np.median(times[g, 0]) for g in groups.values()])
  te = np.array([np.median(times[g, 1]) for g in groups.values()])
  fig, ax = plt.subplots(2, 3, figsize=(19, 9.5))
  m = t.metrics
  share = rp.settled_share(m["alignment/matched_cosine"], m["alignment/dead"], ea.THRESHOLD)
  for k, (e, g) in enumerate(groups.items()):
    i = g[0]
    ax[0, 0].plot(t.steps * lr, share[i], f"C{k}-", label=f"eps = {e:.0e}")
    ax[0, 1].semilogy(t.steps * lr, m["alignment/max_norm"][i] / e, f"C{k}-",
                      label=f"eps = {e:.0e}")
    ax[0, 1].axvline(times[i, 1] * lr, color=f"C{k}", ls=":", lw=0.8)
  ax[0, 0].axvline(np.median(times[:, 0]) * lr, color="k", ls="--", lw=0.8,
                   label="alignment time (median)")
  tidy([ax[0, 0]], title=f"share of neurons aligned with their cone (cos >= {ea.THRESHOLD}) "
       "or dead", xlabel="t = step x lr")
  tidy([ax[0, 1]], title="max_j ||w_j|| / eps (dotted: loss at half its start)",
       xlabel="t = step x lr")
  # the alignment while small: every eps member
  small = times[:, 2]
  start = share[:, 0]
  claims.append(claim(
      "the share of neurons aligned with their cone or dead rises from its value at init to 1 "
      "(the alignment time): the largest share at init, each member", float(np.max(start)),
      f"<= {SHARE_AT_INIT} (then 1 at the alignment time, each member)",
      np.max(start) <= SHARE_AT_INIT and np.all(np.isfinite(times[:, 0])),
      share_at_start=[round(float(s), 3) for s in start]))
  claims.append(claim(
      "every neuron aligns with its own cone (cos >= 0.95) or dies while the norms are small: "
      "sum_j ||w_j||^2 (a bound on |f(x)| for ||x|| <= 1) at the alignment time, each member",
      float(np.max(small)), f"<= {SMALL_OUTPUT} for every eps and seed (targets +-1)",
      np.all(np.isfinite(times[:, 0])) and np.max(small) <= SMALL_OUTPUT,
      alignment_steps=times[:, 0].tolist(), eps=t.coords["model.init_scale"].tolist()))
  # alignment and escape times against ln(1/eps)
  x = np.log(1 / eps)
  lam = rp.growth_rates(t.dataset().x_train, t.dataset().y_train, "logistic")
  pred = 1 / (lam.max() * lr)                       # steps per unit of ln(1/eps)
  fit = rp.line_fit(x, te)
  ax[0, 2].plot(x, ta * lr, "ko", label="alignment time (median over seeds)")
  ax[0, 2].plot(x, te * lr, "C3s", label=f"escape (loss at half): slope {fit['slope'] * lr:.2f}"
                f", R^2 {fit['r2']:.4f}")
  ax[0, 2].plot(x, (fit["intercept"] + fit["slope"] * x) * lr, "C3-", lw=0.8)
  ax[0, 2].plot(x, (np.mean(te - pred * x) + pred * x) * lr, "k:", lw=1,
                label=f"slope 1 / lambda = {pred * lr:.2f} (theory)")
  tidy([ax[0, 2]], title="times against ln(1/eps)", xlabel="ln(1/eps)", ylabel="t")
  spread = float((ta.max() - ta.min()) / ta.mean())
  rel = fit["slope"] / pred - 1
  claims += [
      claim("the alignment time does not grow with ln(1/eps) (the direction ODE is scale free): "
            "(max - min) / mean of the median alignment step over eps",
            round(spread, 4), f"<= {EPS_SPREAD}", spread <= EPS_SPREAD,
            steps=ta.tolist(), eps=eps.tolist()),
      claim("the early phase ends (loss at half its start) at a step linear in ln(1/eps): R^2 "
            "of the line, and its slope against 1 / (lambda lr), lambda = ||x_+|| / (2N)",
            dict(r2=round(fit["r2"], 5), slope=round(fit["slope"], 2),
                 relative_to_theory=round(rel, 4)),
            f"R^2 >= {ESCAPE_R2}, slope within {ESCAPE_SLOPE_TOL:.0%} of {pred:.2f}",
            fit["r2"] >= ESCAPE_R2 and abs(rel) <= ESCAPE_SLOPE_TOL,
            escape_steps=te.tolist(), lambda_plus_minus=lam.round(4).tolist()),
  ]
  claims.append(_n_mu_claim(trajs, ax[1, 0]))
  claims += _late(trajs["late"], ax[1, 1], ax[1, 2])
  fig.suptitle(f"Early alignment in a two-layer ReLU network (Min, Mallada, Vidal 2024): width "
               f"{t.config['model']['width']}, balanced init at scale eps, logistic loss, GD lr "
               f"{lr:g}, separable data n = {t.config['data']['n_train']}, d = "
               f"{t.config['data']['dim']}, mu = {t.dataset().info['mu']:.2f} "
               f"({'quick' if quick else 'full'})", fontsize=11)
  return dict(claims=claims, figures=[save(fig, out, "early_alignment")], notes=[])


def _n_mu_claim(trajs, ax):
  """The alignment time over the n and spread runs against the bound log n / sqrt(mu)."""
  labels = [k for k in trajs if k.startswith(("n", "spread"))]
  rows = []
  for label in labels:
    t = trajs[label]
    ta = np.median(_times(t)[:, 0])
    n, mu = t.config["data"]["n_train"], t.dataset().info["mu"]
    rows.append((label, n, mu, ta, np.log(n) / np.sqrt(mu)))
  bound = np.array([r[4] for r in rows])
  meas = np.array([r[3] for r in rows])
  for label, n, mu, ta, b in rows:
    ax.plot(b, ta, "o", label=f"{label}: n = {n}, mu = {mu:.2f}")
  lo, hi = np.argmin(bound), np.argmax(bound)
  grow_b, grow_m = bound[hi] / bound[lo], meas[hi] / meas[lo]
  tidy([ax], fontsize=7, title="alignment step (median over seeds) against log n / sqrt(mu)",
       xlabel="log n / sqrt(mu)", ylabel="step", xscale="log", yscale="log")
  return claim("the alignment time against the theory's O(log n / sqrt(mu)) over the n and "
               "spread runs: its growth from the smallest to the largest bound, against the "
               "bound's growth", dict(measured=round(float(grow_m), 3),
                                      bound=round(float(grow_b), 3)),
               "finite, and measured growth <= the bound's (an upper bound; how close: "
               "the two numbers)", np.all(np.isfinite(meas)) and grow_m <= grow_b,
               runs={r[0]: dict(n=r[1], mu=round(r[2], 4), step=float(r[3]),
                                bound=round(float(r[4]), 4)) for r in rows})


def _late(t, ax_loss, ax_rank):
  """The loss decay after alignment and W's stable rank, from the long run."""
  lr = t.config["opt"]["learning_rate"]
  m = t.metrics
  slopes = []
  for k, (e, g) in enumerate(_by_eps(t).items()):
    i = g[0]
    time, loss = t.steps * lr, m["train_loss"][i]
    ok = time > 0
    ax_loss.loglog(time[ok], loss[ok], f"C{k}-", label=f"eps = {e:.0e}")
    ax_rank.plot(time, m["alignment/stable_rank"][i], f"C{k}-", label=f"eps = {e:.0e}")
    late = t.steps >= t.steps[-1] / 10
    slopes.append(float(np.polyfit(np.log(t.steps[late]), np.log(loss[late]), 1)[0]))
  tmax = t.steps[-1] * lr
  ax_loss.loglog([tmax / 10, tmax], [m["train_loss"][0, -1] * 10, m["train_loss"][0, -1]], "k--",
                 label="1 / t")
  tidy([ax_loss], title="train loss (logistic)", xlabel="t = step x lr")
  ax_rank.set_xscale("symlog", linthresh=10)
  tidy([ax_rank], title="stable rank ||W||_F^2 / ||W||_2^2 of the first layer",
       xlabel="t = step x lr")
  sr = m["alignment/stable_rank"][:, -1]
  x = t.dataset().x_train
  y = t.dataset().y_train
  cones = al.target_directions(x, y, "cones")
  cos = float(cones[0] @ cones[1])
  # the same neurons laid exactly along their cones: the rank the alignment leaves
  ideal = al.aligned_stable_rank(m["alignment/norms"][:, -1], m["alignment/cosines"][:, -1],
                                 cones)
  gap = np.abs(sr / ideal - 1)
  return [
      claim("after alignment the loss decays like 1/t: fitted slope of log loss against log "
            "step over the last decade, each eps", [round(s, 4) for s in slopes],
            f"each in [{DECAY_SLOPE[0]}, {DECAY_SLOPE[1]}] (2-homogeneous nets: -1 up to a "
            "log factor)", all(DECAY_SLOPE[0] <= s <= DECAY_SLOPE[1] for s in slopes),
            end_loss=m["train_loss"][:, -1].tolist()),
      claim("the first layer ends approximately low rank: stable rank of W at the end, each "
            "eps, against that of the same neurons laid exactly along their cones (<= 2: two "
            f"directions; about 1 here, as cos(x_+, x_-) = {cos:.3f})", sr.round(4).tolist(),
            f"within {RANK_TOL:.0%} of the aligned rows' {ideal.round(4).tolist()}",
            np.all(gap <= RANK_TOL), aligned=ideal.round(5).tolist(),
            relative_gap=gap.round(5).tolist(),
            at_start=m["alignment/stable_rank"][:, 0].round(3).tolist()),
  ]


# ---- XOR clusters: benign overfitting, then grokking ------------------------------------------

def _xor_draw(trajs, out, quick):
  t = trajs["xor"]
  c = t.config["data"]
  eta = c["label_noise"]
  bayes = rp.xor_bayes_accuracy(c["mean_norm"], c["std"], 0.0)       # clean test labels
  bayes_noisy = rp.xor_bayes_accuracy(c["mean_norm"], c["std"], eta)
  target = bayes - xg.NEAR_BAYES
  m, steps = t.metrics, t.steps
  claims = [finite_claim(f"xor, {t.label(i)}", t, i) for i in range(t.n_members)]
  fit = np.array([rp.first_step(steps, m["train_acc"][i] >= 1.0) for i in range(t.n_members)])
  grok = np.array([rp.first_step(steps, m["test_acc"][i] >= target)
                   for i in range(t.n_members)])
  rows = [int(np.searchsorted(steps, s)) if np.isfinite(s) else -1 for s in fit]
  test_at_fit = np.array([m["test_acc"][i, r] for i, r in enumerate(rows)])
  final = m["test_acc"][:, -1]
  noisy = lambda acc: (1 - eta) * acc + eta * (1 - acc)   # the same network on flipped labels
  fig, ax = plt.subplots(1, 2, figsize=(15, 5))
  x = np.maximum(steps, 0.5)
  for i in range(t.n_members):
    ax[0].semilogx(x, m["train_acc"][i], f"C{i}--", lw=1)
    ax[0].semilogx(x, m["test_acc"][i], f"C{i}-", lw=1.5, label=f"{t.label(i)}: test (solid), "
                   "train (dashed)")
    for s, y, mark in ((fit[i], 1.01, "v"), (grok[i], target, "^")):
      if np.isfinite(s):
        ax[0].plot(max(s, 0.5), y, f"C{i}{mark}", ms=9)
    ax[1].loglog(x, m["train_loss"][i], f"C{i}-", lw=1, label=f"{t.label(i)}: train")
    ax[1].loglog(x, m["test_loss"][i], f"C{i}:", lw=1, label="test (clean labels)")
  ax[0].axhline(bayes, color="k", ls="--", lw=0.8, label=f"Bayes, clean test labels "
                f"({bayes:.4f})")
  ax[0].axhline(1 - eta, color="k", ls=":", lw=0.8, label=f"Bayes on labels flipped at eta: "
                f"{bayes_noisy:.3f} ~ 1 - eta")
  ax[0].axhline(0.5, color="gray", ls=":", lw=0.8)
  tidy([ax[0]], fontsize=7, title=f"accuracy (v: 100% train; ^: test within {xg.NEAR_BAYES} of "
       "Bayes)", xlabel="step (0 drawn at 0.5)")
  tidy([ax[1]], fontsize=7, title="loss (logistic)", xlabel="step (0 drawn at 0.5)")
  claims += [
      claim(f"100% training accuracy, the {eta:.0%} flipped labels included, within the first "
            f"{xg.FIT_WITHIN} steps, while the (clean) test accuracy is near chance: the step "
            "and the test accuracy then, each seed",
            dict(steps=fit.tolist(), test_acc=test_at_fit.round(3).tolist()),
            f"steps <= {xg.FIT_WITHIN}, test accuracy <= {xg.CHANCE_MAX}",
            np.all(fit <= xg.FIT_WITHIN) and np.all(test_at_fit <= xg.CHANCE_MAX),
            flipped=int(np.sum(t.dataset().info["flipped"]))),
      claim(f"later the clean test accuracy comes within {xg.NEAR_BAYES} of the Bayes-optimal "
            f"{bayes:.4f} (on labels flipped at eta = {eta:g}: within "
            f"{(1 - 2 * eta) * xg.NEAR_BAYES:.3f} of {bayes_noisy:.3f} ~ 1 - eta): that step "
            "against the fitting step, each seed",
            dict(steps=grok.tolist(), ratio_to_fit=(grok / np.maximum(fit, 1)).round(1).tolist()),
            f"reached by every seed, at least {xg.LATER_FACTOR}x later than the fit",
            np.all(np.isfinite(grok)) and np.all(grok >= xg.LATER_FACTOR * np.maximum(fit, 1))),
      claim("the overfitting stays benign: final clean test accuracy (train accuracy 100%)",
            final.round(4).tolist(), f"each >= {target:.4f} (Bayes - {xg.NEAR_BAYES})",
            np.all(final >= target) and np.all(m["train_acc"][:, -1] >= 1.0),
            bayes_clean=round(bayes, 6), bayes_noisy=round(bayes_noisy, 6),
            on_noisy_labels=noisy(final).round(4).tolist(),
            train_acc_end=m["train_acc"][:, -1].tolist()),
  ]
  fig.suptitle(f"XOR clusters with {eta:.0%} label noise (Xu et al. 2023): d = {c['dim']}, n = "
               f"{c['n_train']}, ||mu|| = {c['mean_norm']:g}, width "
               f"{t.config['model']['width']}, GD lr {t.config['opt']['learning_rate']:g}, first "
               f"layer at {t.config['model']['init_scale']:g} ({'quick' if quick else 'full'})",
               fontsize=11)
  return dict(claims=claims, figures=[save(fig, out, "xor_grokking")], notes=[])


FIGURES = {
    "early_alignment": ("two-layer ReLU from small balanced init: neurons align with the data "
                        "cones while small (time independent of eps), escape at ~ln(1/eps), "
                        "then the loss decays like 1/t and W ends low rank (Min, Mallada, Vidal "
                        "2024)", _alignment_runs, _alignment_draw),
    "xor_grokking": ("two-layer ReLU on XOR clusters with label noise: 100% train accuracy "
                     "within the first steps at chance test accuracy, near-Bayes test accuracy "
                     "much later (Xu et al. 2023)", variant_runs(xg, xor=""), _xor_draw),
}
