"""The lottery ticket of two-layer networks on modular addition ("On the Mechanism and Dynamics of
Modular Addition: Fourier Features, Lottery Ticket, and Grokking", 2025; [MA25] below).

Each neuron j of f(a, b) = sum_j v_j relu(w_j . [onehot(a), onehot(b)]) is read as three
functions on Z_p, its input halves w_j[:p] (operand a), w_j[p:] (operand b) and its output
weights v_j (over the answer c), each decomposed by analysis.fourier.neuron_spectrum into
amplitudes alpha_a, alpha_b, beta and phases phi_a, phi_b, psi per frequency k = 1..K.
The claims measured here: the neurons become single-frequency, with the phases aligned
(psi = phi_a + phi_b for our separate operand weights), and the frequency that wins inside a
neuron is the one whose initial magnitudes and phase alignment are best (the lottery ticket).
"""
from typing import NamedTuple

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from analysis import fourier
from analysis import plots
from experiments.configs import lottery as lottery_cfg
from experiments.figures import claim, variant_runs, save

SHARE_LEVEL = 0.8          # "single-frequency": the dominant frequency holds >= 80% of the energy
CHANCE_MULTIPLE = 3        # a prediction "works" at >= 3x the chance level 1/K
ALIGN_LEVEL = 0.3          # rad: median |phi_a + phi_b - psi| "aligned" (uniform phases: pi/2)
TEST_ACC_LEVEL = 0.95
N_SHOWN = 4                # neurons whose spectra are drawn
DECISIVE = 2.0             # a "decisive" initial race: best score >= 2x the runner-up's


class Spectra(NamedTuple):
  """The per-frequency spectra of each neuron's three weight vectors (leaves [..., width, K])."""
  a: fourier.NeuronSpectrum
  b: fourier.NeuronSpectrum
  v: fourier.NeuronSpectrum


def spectra(params: dict, p: int) -> Spectra:
  """Spectra of w[..., :p] (operand a), w[..., p:] (operand b) and v (the answer) per neuron.

  Args:
    params: two_layer params, w [..., width, 2p] and v [..., width, p] (leading axes, e.g. the
      sweep member, are kept).
    p: the modulus.

  Returns:
    Spectra whose arrays have the params' leading axes, then [width] or [width, K].
  """
  w, v = jnp.asarray(params["w"]), jnp.asarray(params["v"])
  if w.shape[-1] != 2 * p or v.shape[-1] != p:
    raise ValueError(f"expected w [..., width, {2 * p}] and v [..., width, {p}] (onehot pair, "
                     f"p = {p}); got {w.shape} and {v.shape}")
  lead = w.shape[:-1]

  def one(x):
    s = fourier.neuron_spectrum(jnp.reshape(x, (-1, p)))
    return fourier.NeuronSpectrum(*(jnp.reshape(f, lead + f.shape[1:]) for f in s))
  return Spectra(one(w[..., :p]), one(w[..., p:]), one(v))


def alignment_score(s: Spectra) -> jnp.ndarray:
  """alpha_a alpha_b beta cos(phi_a + phi_b - psi) per neuron and frequency ([..., K]).

  The lottery ticket score: under small initialization the gradient flow decouples into one
  ODE per (neuron, frequency) in which the magnitudes grow at a rate set by the magnitudes and
  cos of the phase misalignment phi_a + phi_b - psi ([MA25], the lottery ticket mechanism). It
  is the frequency-k part of the neuron's correlation with the addition table: for one neuron,
  sum_{a,b} w_a[a] w_b[b] v[(a + b) mod p] = p^2 c_a c_b c_v + (p^2 / 4) sum_k score_k
  (c: the means). Predicted winner: its argmax over k.
  """
  return (s.a.amplitude * s.b.amplitude * s.v.amplitude
          * jnp.cos(s.a.phase + s.b.phase - s.v.phase))


def input_frequency(s: Spectra) -> tuple[jnp.ndarray, jnp.ndarray]:
  """(freq, share): each neuron's dominant frequency in 1..K over its whole input weight w_j
  (energy alpha_a^2 + alpha_b^2 per frequency) and the share of the non-constant input energy
  it holds (1: a single-frequency neuron)."""
  e = jnp.square(s.a.amplitude) + jnp.square(s.b.amplitude)
  tot = jnp.sum(e, axis=-1)
  share = jnp.max(e, axis=-1) / jnp.where(tot > 0, tot, 1)
  return jnp.argmax(e, axis=-1).astype(jnp.int32) + 1, share


def misalignment(s: Spectra, freq) -> jnp.ndarray:
  """phi_a + phi_b - psi at each neuron's frequency freq (1..K), wrapped to (-pi, pi]."""
  idx = jnp.asarray(freq)[..., None] - 1
  d = sum(jnp.take_along_axis(x.phase, idx, axis=-1)[..., 0] * sign
          for x, sign in ((s.a, 1), (s.b, 1), (s.v, -1)))
  return jnp.angle(jnp.exp(1j * d))


def lottery_measures(traj) -> dict:
  """The neuron statistics at every kept step, for every member.

  Returns:
    dict of numpy arrays: steps [T]; freq, share, misalign [T, member, width] (the input
    weights' dominant frequency and its energy share, and the phase misalignment there);
    pred_align and pred_magnitude [member, width] (winners predicted from the step-0 spectra:
    argmax of alignment_score, and analysis.fourier.predicted_frequency of the three amplitude
    spectra, i.e. magnitudes only); margin [member, width] (the best initial alignment score
    over the runner-up's; inf where only the best is > 0, 1 where none is); init_spectra and
    final_spectra (Spectra of numpy arrays); p and K.
  """
  p = int(traj.config["data"]["p"])
  steps = list(traj.kept_steps)
  rows, init = [], None
  for step in steps:
    last = spectra(traj.params(step), p)
    init = last if init is None else init
    freq, share = input_frequency(last)
    rows.append((freq, share, misalignment(last, freq)))
  amp = lambda x: jnp.reshape(x.amplitude, (-1, x.amplitude.shape[-1]))
  pred_m = jnp.reshape(fourier.predicted_frequency(amp(init.a), amp(init.b), amp(init.v)),
                       init.a.freq.shape)
  score = np.asarray(alignment_score(init))
  best, second = np.sort(score, axis=-1)[..., -1], np.sort(score, axis=-1)[..., -2]
  with np.errstate(divide="ignore", invalid="ignore"):
    margin = np.where(second > 0, best / second, np.where(best > 0, np.inf, 1.0))
  to_np = lambda sp: Spectra(*(fourier.NeuronSpectrum(*map(np.asarray, x)) for x in sp))
  out = {name: np.stack([np.asarray(r[i]) for r in rows])
         for i, name in enumerate(("freq", "share", "misalign"))}
  out.update(steps=np.asarray(steps), pred_align=np.argmax(score, axis=-1) + 1,
             pred_magnitude=np.asarray(pred_m), margin=margin, init_spectra=to_np(init),
             final_spectra=to_np(last), p=p, K=fourier.num_frequencies(p))
  return out


def _neuron_panel(ax, lm, j):
  k = np.arange(1, lm["K"] + 1)
  for sp, style, name in ((lm["init_spectra"], "o:", "init"), (lm["final_spectra"], "s-", "end")):
    e = np.sqrt(sp.a.amplitude[0, j] ** 2 + sp.b.amplitude[0, j] ** 2)
    ax.plot(k, e / e.max(), style, ms=4, lw=1.2, label=f"{name} (max {e.max():.2g})")
  pa = lm["pred_align"][0, j]
  ax.axvline(pa, color="tab:red", ls="--", lw=1, label=f"predicted k={pa}")
  ax.set(title=f"neuron {j}: input amplitude / its max; final k={lm['freq'][-1, 0, j]}",
         xlabel="frequency k", ylabel="sqrt(alpha_a^2 + alpha_b^2) / max", ylim=(0, 1.08))
  ax.set_xticks(k[::2])
  ax.legend(fontsize=7)


def _draw(trajs, out, quick):
  t = trajs["main"]
  lm = lottery_measures(t)
  K, s = lm["K"], lm["steps"]
  fig, ax = plt.subplots(2, 4, figsize=(21, 9))
  ax = ax.ravel()
  plots.loss_and_accuracy(ax[0], ax[1], t)
  for a in ax[:2]:
    a.set_xscale("log")
  colors = plots.member_colors(t.n_members)
  x = np.maximum(s, 1)          # step 0 drawn at 1 on the log axis
  for i, c in enumerate(colors):
    sh = lm["share"][:, i]
    ax[2].plot(x, np.median(sh, axis=1), "-", color=c, lw=1.5, label=t.label(i))
    ax[2].fill_between(x, *np.quantile(sh, [0.25, 0.75], axis=1), color=c, alpha=0.15)
    agree = np.mean(lm["freq"][:, i] == lm["pred_align"][i], axis=1)
    ax[2].plot(x, agree, "--", color=c, lw=1.2)
  ax[2].axhline(1 / K, color="gray", ls=":", label=f"chance 1/K = {1 / K:.3f}")
  ax[2].set(xscale="log", ylim=(0, 1), xlabel="step (0 drawn at 1)",
            title="solid: median dominant-frequency share (IQR band)\ndashed: share of "
                  "neurons at the predicted frequency")
  ax[2].legend(fontsize=7)
  conf = np.zeros((K, K))
  np.add.at(conf, (lm["freq"][-1].ravel() - 1, lm["pred_align"].ravel() - 1), 1)
  im = ax[3].imshow(conf, origin="lower", cmap="Blues", extent=(0.5, K + 0.5, 0.5, K + 0.5))
  fig.colorbar(im, ax=ax[3], fraction=0.046, label="neurons")
  agree = float(np.mean(lm["freq"][-1] == lm["pred_align"]))
  ax[3].set(xlabel="predicted: argmax alpha_a alpha_b beta cos(phi_a+phi_b-psi) at init",
            ylabel="final dominant frequency",
            title=f"predicted vs final, all seeds\n{agree:.0%} on the diagonal "
                  f"(chance {1 / K:.0%})")
  for n, a in enumerate(ax[4:]):
    _neuron_panel(a, lm, n * (lm["freq"].shape[-1] // N_SHOWN))
  m, d = t.config["model"], t.config["data"]
  fig.suptitle(f"Lottery ticket on (a + b) mod {lm['p']}: two-layer {m['activation']} width "
               f"{m['width']}, init scale {m['init_scale']:g} (balanced), GD lr "
               f"{t.config['opt']['learning_rate']:g}, {d['train_frac']:.0%} train "
               f"({'quick' if quick else 'full'}); spectra of {t.label(0)}", fontsize=11)
  path = save(fig, out, "lottery")
  return dict(claims=_claims(t, lm), figures=[path])


def _per_member(values):
  return [round(float(v), 4) for v in values]


def _claims(t, lm):
  K = lm["K"]
  share0 = np.median(lm["share"][0], axis=-1)
  share1 = np.median(lm["share"][-1], axis=-1)
  claims = [claim(
      "median dominant-frequency share of the input weights at the end, per seed",
      _per_member(share1),
      f">= {SHARE_LEVEL} (single-frequency neurons, [MA25]; at init "
      f"{np.median(share0):.2f})", bool(np.all(share1 >= SHARE_LEVEL)),
      init=_per_member(share0))]
  chance = 1 / K
  decisive = lm["margin"] >= DECISIVE
  hits = lm["freq"][-1] == lm["pred_align"]
  extra = dict(pred_align=dict(
      decisive_share=round(float(np.mean(decisive)), 4),
      decisive_agreement=round(float(np.mean(hits[decisive])), 4) if decisive.any() else None,
      note=f"decisive: neurons whose best initial score is >= {DECISIVE}x the runner-up's"))
  for key, what in (("pred_align", "magnitude x phase alignment, "
                                   "argmax alpha_a alpha_b beta cos(phi_a + phi_b - psi)"),
                    ("pred_magnitude", "magnitudes only, argmax alpha_a alpha_b beta")):
    agree = np.mean(lm["freq"][-1] == lm[key], axis=-1)
    claims.append(claim(
        f"share of neurons whose final frequency is the one predicted from the initial "
        f"spectra ({what}), per seed", _per_member(agree),
        f">= {CHANCE_MULTIPLE}/K = {CHANCE_MULTIPLE * chance:.3f} (chance 1/K = {chance:.3f}; "
        "[MA25]: the winner is set at init by magnitude and phase alignment)",
        bool(np.all(agree >= CHANCE_MULTIPLE * chance)), **extra.get(key, {})))
  mis = np.median(np.abs(lm["misalign"][-1]), axis=-1)
  claims.append(claim(
      "median |phi_a + phi_b - psi| at each neuron's frequency at the end (rad), per seed",
      _per_member(mis), f"<= {ALIGN_LEVEL} (phase alignment, [MA25]; random phases: "
      f"pi/2; at init {np.median(np.abs(lm['misalign'][0])):.2f})",
      bool(np.all(mis <= ALIGN_LEVEL))))
  used = [len(np.unique(f)) for f in lm["freq"][-1]]
  claims.append(claim("number of distinct final frequencies among the neurons, per seed", used,
                      f"all K = {K} (frequency diversification, [MA25])",
                      all(u == K for u in used)))
  acc = t.metrics["test_acc"][:, -1]
  claims.append(claim(
      f"test accuracy at the end (held-out {1 - t.config['data']['train_frac']:.0%}), per seed",
      _per_member(acc), f">= {TEST_ACC_LEVEL} (Fourier features answer held-out "
      "pairs)", bool(np.all(acc >= TEST_ACC_LEVEL))))
  return claims


FIGURES = {
    "lottery": ("lottery ticket of two-layer ReLU nets on (a+b) mod p, [MA25]: "
                "single-frequency neurons, phase alignment, winners predicted from the initial "
                "spectra", variant_runs(lottery_cfg, main=""), _draw),
}
