"""Grokking figures (Nanda et al. 2023): loss and accuracy of every seed, W_E's Fourier norms and
the progress measures computed from the kept checkpoints."""
import matplotlib.pyplot as plt
import numpy as np

from analysis import plots
from analysis.grokking import progress_measures
from experiments.configs import grokking as grokking_cfg
from experiments.figures import claim, variant_runs, save, tidy

LOSS_LEVEL = 1.0      # nats: "falls" = first kept step below this (log p ~ 4-4.7 at the start)


def _first(steps, values, pred):
  hit = np.flatnonzero(pred(values))       # NaN (a stopped member) compares False
  return int(steps[hit[0]]) if hit.size else None


def phases(traj, member: int = 0) -> dict:
  """Step marks of one member: train accuracy 99%, test accuracy 90% and 99% (None if never).

  Our operational version of Nanda et al.'s phases: memorization ends when the train accuracy
  reaches 99%; circuit formation runs from there until the test accuracy reaches 90%; the
  cleanup phase contains the rest of the jump to 99%. (Not 50%: addition is commutative, and a
  model that has learned a + b = b + a answers every test pair whose swap is in the train set,
  about train_frac of them, so test accuracy can rest near 50% long before any circuit exists.)
  """
  s, m = traj.steps, traj.metrics
  return dict(train99=_first(s, m["train_acc"][member], lambda a: a >= 0.99),
              test90=_first(s, m["test_acc"][member], lambda a: a >= 0.9),
              test99=_first(s, m["test_acc"][member], lambda a: a >= 0.99))


def _mark(ax, ph):
  for (name, step), c in zip(ph.items(), ("tab:gray", "tab:orange", "tab:green")):
    if step:
      ax.axvline(step, color=c, ls=":", lw=1.2, label=f"{name[:-2]} acc {name[-2:]}%")


def _draw(trajs, out, quick):
  t = trajs["main"]
  pm = progress_measures(t, member=0)
  ph = phases(t, member=0)
  fig, ax = plt.subplots(2, 3, figsize=(17, 9))
  ax = ax.ravel()
  plots.loss_and_accuracy(ax[0], ax[1], t)
  for a in ax[:2]:
    a.set_xscale("log")
  k = np.arange(1, len(pm["W_E_norms"]) + 1)
  ax[2].bar(k, pm["W_E_norms"], color=["tab:red" if f in pm["keys"] else "tab:gray" for f in k])
  ax[2].set(title=f"W_E Fourier norms at the end ({t.label(0)}); red: key frequencies",
            xlabel="frequency k")
  s = pm["steps"]
  for name, style in (("train_loss", "k-"), ("test_loss", "k--"), ("restricted_loss", "C0-"),
                      ("excluded_loss", "C3-")):
    if name in pm:
      ax[3].semilogy(s, pm[name], style, lw=1.4, label=name.replace("_", " "))
  ax[3].set(title="progress measures: losses (restricted: all pairs; excluded: train)")
  ax[4].plot(s, pm["gini_W_E"], "C2-", label="Gini of W_E Fourier norms")
  ax[4].plot(s, pm["gini_W_L"], "C4-", label="Gini of W_L Fourier norms")
  ax[4].set(title="sparsity in the Fourier basis", ylim=(0, 1))
  ax[5].plot(s, pm["weight_norm"], "C1-", label="sum of squared weights")
  ax[5].set(title="weight norm")
  for a in ax[3:]:
    _mark(a, ph)
  tidy(ax[3:], xlabel="step")
  cfg = t.config
  m = cfg["model"]
  fig.suptitle(f"Grokking on (a + b) mod {pm['p']}: {m['n_layers']}-layer transformer "
               f"d_model {m['d_model']}, d_mlp {m['d_mlp']}, {cfg['data']['train_frac']:.0%} "
               f"train, AdamW wd {cfg['opt']['weight_decay']:g} "
               f"({'quick' if quick else 'full'}); progress measures of {t.label(0)}",
               fontsize=11)
  path = save(fig, out, "grokking")
  return dict(claims=_claims(t, pm, ph, quick), figures=[path],
              key_frequencies=pm["keys"], phases=ph)


def _claims(t, pm, ph, quick):
  limit = t.config["train"]["steps"] if quick else 15000
  grok = [phases(t, i)["test99"] for i in range(t.n_members)]
  claims = [claim(
      "steps to 99% test accuracy, per seed", grok,
      f"every seed within {limit:,} steps" + ("" if quick else " (a plain JAX version on one "
                                              "H100: 6k-9k for every seed)"),
      all(g is not None and g <= limit for g in grok))]
  n = len(pm["keys"])
  claims.append(claim("number of key frequencies (neuron rule, final checkpoint)",
                      f"{n}: {sorted(int(k) for k in pm['keys'])}",
                      "3 to 7 (Nanda et al.: 5, {14, 35, 41, 42, 52}; other seeds 3-5)",
                      3 <= n <= 7))
  if not n:
    return claims
  r_fall = _first(pm["steps"], pm["restricted_loss"], lambda v: v < LOSS_LEVEL)
  t_fall = _first(pm["steps"], pm["test_loss"], lambda v: v < LOSS_LEVEL)
  claims.append(claim(
      f"restricted loss falls below {LOSS_LEVEL:g} nat before the test loss does (steps)",
      [r_fall, t_fall], "restricted first (Nanda et al., Fig. 7)",
      r_fall is not None and (t_fall is None or r_fall < t_fall)))
  if ph["train99"] is not None and ph["test90"] is not None:
    # the first kept steps at or after each mark
    i0 = int(np.searchsorted(pm["steps"], ph["train99"]))
    i1 = int(np.searchsorted(pm["steps"], ph["test90"]))
    e0, e1 = pm["excluded_loss"][min(i0, len(pm["steps"]) - 1)], pm["excluded_loss"][i1]
    claims.append(claim(
        "excluded loss (train split) at test acc 90% over its value at train acc 99%",
        float(e1 / e0), "> 1: it rises during circuit formation (Nanda et al., Fig. 7)",
        e1 > e0))
  ev = float(pm["trig_variance"][-1])
  claims.append(claim("share of logit variance explained by sum_k alpha_k cos(w_k(a+b-c)) at "
                      "the end", ev, ">= 0.9 (Nanda et al.: ~0.95)", ev >= 0.9))
  return claims


FIGURES = {
    "grokking": ("grokking on (a+b) mod p, Nanda et al. 2023: loss and accuracy of every seed, "
                 "key frequencies, restricted / excluded loss, Gini, weight norm",
                 variant_runs(grokking_cfg, main=""), _draw),
}
