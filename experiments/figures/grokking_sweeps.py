"""When grokking happens: a weight-decay sweep and a train-fraction sweep (Nanda et al. 2023;
Power et al. 2022), on the grokking config.

The fraction runs stop once their test accuracy reaches 99% (`train.test_acc_goal`): the claims
need only that step, and a fraction that never groks still runs the whole horizon. The
weight-decay program runs every member to the end (one compiled program: a stopped member
would save nothing)."""
import matplotlib.pyplot as plt
import numpy as np

from analysis import plots
from experiments.configs import grokking as grokking_cfg
from experiments.figures import claim, save, tidy
from experiments.figures.grokking import phases


GROK_ACC = 0.99       # "grokked": the test accuracy the claims time


def _label(frac: float) -> str:
  return f"frac{round(100 * frac)}"


def _runs(quick):
  q = "quick_" if quick else ""
  runs = {"wd": grokking_cfg.get_config(q + "wd")}
  for f in grokking_cfg.TRAIN_FRACS:
    runs[_label(f)] = c = grokking_cfg.get_config(f"{q}{_label(f)}_seed0")
    c.train.test_acc_goal = GROK_ACC
  return runs


def _curves(ax, t, i, color, label):
  ok = np.isfinite(t.metrics["test_acc"][i])
  ax.plot(t.steps[ok], t.metrics["test_acc"][i][ok], color=color, lw=1.4, label=label)
  ax.plot(t.steps[ok], t.metrics["train_acc"][i][ok], color=color, lw=0.8, ls=":")


def _draw(trajs, out, quick):
  wd_run = trajs["wd"]
  wds = [float(w) for w in wd_run.coords["opt.weight_decay"]]
  fracs = [f for f in grokking_cfg.TRAIN_FRACS if _label(f) in trajs]
  steps = wd_run.config["train"]["steps"]
  grok_wd = [phases(wd_run, i)["test99"] for i in range(len(wds))]
  mem_wd = [phases(wd_run, i)["train99"] for i in range(len(wds))]
  ph_frac = [phases(trajs[_label(f)], 0) for f in fracs]
  # a run that never groks must have run the whole horizon without diverging for that to count
  end_wd = [_ran_to(wd_run, i, steps) for i in range(len(wds))]
  end_frac = [_ran_to(trajs[_label(f)], 0, steps) for f in fracs]
  fig, ax = plt.subplots(1, 3, figsize=(17, 4.6))
  for i, (w, c) in enumerate(zip(wds, plots.member_colors(len(wds)))):
    _curves(ax[0], wd_run, i, c, f"wd={w:g}")
  for f, c in zip(fracs, plots.member_colors(len(fracs))):
    _curves(ax[1], trajs[_label(f)], 0, c, f"train {f:.0%}")
  ax[0].set(title="weight decay: test accuracy (train dotted)")
  ax[1].set(title=f"train fraction (wd 1): test accuracy (train dotted), stop at {GROK_ACC:.0%}")
  for a in ax[:2]:
    a.set(xscale="log", xlabel="step", ylim=(-0.02, 1.02))
  never = 1.3 * steps                 # runs that never reach 99% are drawn at the top
  y = lambda g: [never if s is None else s for s in g]
  ax[2].plot(range(len(wds)), y(grok_wd), "o-", label="vs weight decay (axis: wd)")
  ax[2].plot(range(len(fracs)), y([p["test99"] for p in ph_frac]), "s-",
             label="vs train fraction (axis: fraction)")
  ax[2].axhline(steps, color="k", ls="--", lw=1, label="end of the run (above: never)")
  ax[2].set_xticks(range(max(len(wds), len(fracs))))
  ax[2].set_xticklabels([f"{w:g} / {f:.0%}" for w, f in zip(wds, fracs)])
  ax[2].set(yscale="log", title="steps to 99% test accuracy", xlabel="weight decay / fraction")
  tidy(ax)
  p = wd_run.config["data"]["p"]
  fig.suptitle(f"When grokking happens, (a + b) mod {p} ({'quick' if quick else 'full'}, "
               "seed 0)", fontsize=11)
  path = save(fig, out, "grokking_sweeps")
  return dict(claims=_claims(wds, grok_wd, mem_wd, fracs, ph_frac, steps, end_wd, end_frac),
              figures=[path])


def _ran_to(t, i, steps) -> bool:
  """Member i ran to `steps` without diverging."""
  return not bool(t.diverged[i]) and int(t.stop_step[i]) >= steps


def _never(grokked, ran_to_end):
  """(measured, holds) for a "never groks within the run" claim."""
  if grokked is not None:
    return grokked, False
  if not ran_to_end:
    return "stopped early (diverged)", False
  return None, True


def _claims(wds, grok_wd, mem_wd, fracs, ph_frac, steps, end_wd=None, end_frac=None):
  """end_wd, end_frac: whether each run ran the whole horizon without diverging (default:
  all did)."""
  end_wd = [True] * len(wds) if end_wd is None else end_wd
  end_frac = [True] * len(fracs) if end_frac is None else end_frac
  claims = []
  pos = [(w, g) for w, g in zip(wds, grok_wd) if w > 0]
  done = [g for _, g in pos]
  if 0.0 in wds:
    i0 = wds.index(0.0)
    measured, holds = _never(grok_wd[i0], end_wd[i0])
    claims.append(claim("weight decay 0: step of 99% test accuracy", measured,
                        f"never within {steps:,} steps (Nanda et al.: no grokking without "
                        "weight decay)", holds))
  claims.append(claim("weight decay > 0: steps to 99% test accuracy", done,
                      f"every one within {steps:,} steps", all(g is not None for g in done)))
  claims.append(claim(
      f"steps to grok ordered by weight decay {[w for w, _ in pos]}", done,
      "increasing with weight decay, as REFERENCE.md reports for Nanda et al.'s setup "
      "(0.3: ~3k, 1: 5-10k, 3: ~20k)",
      all(g is not None for g in done) and bool(np.all(np.diff(done) > 0))))
  small, large = ph_frac[0], ph_frac[-1]
  measured, holds = _never(small["test99"], end_frac[0])
  claims.append(claim(f"train fraction {fracs[0]:.0%}: step of 99% test accuracy",
                      measured, f"never within {steps:,} steps (Nanda et al.: <= 20% "
                      "does not grok in 40k)", holds))
  gap = None if large["test99"] is None or large["train99"] is None else (
      large["test99"] - large["train99"])
  claims.append(claim(f"train fraction {fracs[-1]:.0%}: steps between 99% train and 99% test "
                      "accuracy", gap, f"<= {steps // 10:,} (10% of the run: generalizes at "
                      "once, Nanda et al.: >= 60%)", gap is not None and gap <= steps // 10))
  mid = [(f, p["test99"]) for f, p in zip(fracs[1:-1], ph_frac[1:-1])]
  claims.append(claim(f"train fractions {[f for f, _ in mid]}: steps to 99% test accuracy",
                      [g for _, g in mid], f"every one within {steps:,} steps (30-50% groks)",
                      all(g is not None for _, g in mid)))
  return claims


FIGURES = {
    "grokking_sweeps": ("when grokking happens: weight decay 0 / 0.3 / 1 / 3 and train "
                        "fraction 20-70% (seed 0)", _runs, _draw),
}
