"""The phases of two-layer ReLU training read off logged curves (REFERENCE.md Sec. 5): the
alignment and escape times of Min, Mallada, Vidal 2024's early phase, the rate the theory
gives the escape, straight-line fits, and the Bayes-optimal accuracy on Xu et al. 2023's XOR
clusters. Pure numpy on what a run logged (analysis.alignment's in-loop probe, the losses and
accuracies); the figures in experiments/figures/relu.py call these.

Times are in steps; multiply by the learning rate for gradient-flow time t.
"""
import math

import numpy as np

LOSS_SLOPES = {"mse": 1.0, "logistic": 0.5}   # |l'(0)|: the early phase's rate per unit of data


def first_step(steps, reached) -> float:
  """The first step where `reached` [T] (bool) holds; nan if it never does."""
  steps, reached = np.asarray(steps), np.asarray(reached, bool)
  if steps.shape != reached.shape:
    raise ValueError(f"steps {steps.shape} and reached {reached.shape} must have one shape")
  i = np.flatnonzero(reached)
  return float(steps[i[0]]) if i.size else math.nan


def settled_share(matched_cosine, dead, threshold: float) -> np.ndarray:
  """[..., T]: the share of neurons that are aligned with their own cone (matched cosine >=
  threshold: x_+ when v_j > 0, x_- otherwise) or dead, from [..., T, m] per-neuron curves
  (Min et al.: every neuron ends in one of the two)."""
  mc, dead = np.asarray(matched_cosine), np.asarray(dead)
  if mc.shape != dead.shape:
    raise ValueError(f"matched_cosine {mc.shape} and dead {dead.shape} must have one shape")
  return np.mean((mc >= threshold) | (dead > 0), axis=-1)


def alignment_time(steps, matched_cosine, dead, threshold: float) -> float:
  """The first step at which every neuron is aligned with its own cone or dead (matched
  cosine >= threshold; curves [T, m]); nan if never."""
  return first_step(steps, settled_share(matched_cosine, dead, threshold) >= 1.0)


def escape_time(steps, loss, fraction: float = 0.5) -> float:
  """The first step at which the train loss [T] is at most `fraction` of its start: the end of
  the early phase, when the norms have grown enough for the outputs to matter; nan if never."""
  loss = np.asarray(loss, np.float64)
  if not 0 < fraction < 1:
    raise ValueError(f"fraction={fraction} must lie in (0, 1)")
  return first_step(steps, loss <= fraction * loss[0])


def growth_rates(x, y, loss: str = "logistic") -> np.ndarray:
  """[lambda_+, lambda_-]: the exponential rate (per unit of time t = step x lr) at which an
  aligned neuron's norms grow in the early phase, |l'(0)| ||x_+-|| / N.

  A neuron with v_j > 0 along x_+ = sum_{y_i > 0} x_i has d||w_j||/dt = |l'(0)| |v_j| ||x_+||
  / N and d|v_j|/dt = |l'(0)| ||w_j|| ||x_+|| / N while f ~ 0, so both grow like
  exp(lambda_+ t) from a balanced start; the outputs (~ eps^2 exp(2 lambda t)) reach O(1) at
  t ~ ln(1 / eps) / lambda: the escape time is linear in ln(1 / eps) with slope 1 / lambda (in
  time units) for the faster cone.
  """
  if loss not in LOSS_SLOPES:
    raise ValueError(f"loss={loss!r} is not allowed; allowed values: {tuple(LOSS_SLOPES)}")
  x = np.asarray(x, np.float64).reshape(len(x), -1)
  y = np.asarray(y, np.float64).reshape(len(x))
  sums = np.stack([x[y > 0].sum(0), x[y <= 0].sum(0)])
  return LOSS_SLOPES[loss] * np.linalg.norm(sums, axis=1) / len(x)


def line_fit(x, y) -> dict:
  """Least squares y ~ slope x + intercept: dict(slope, intercept, r2)."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  if x.shape != y.shape or x.ndim != 1 or x.size < 2:
    raise ValueError(f"x and y must be [n] with n >= 2; got {x.shape} and {y.shape}")
  slope, intercept = np.polyfit(x, y, 1)
  res = y - (slope * x + intercept)
  tot = np.sum((y - y.mean()) ** 2)
  r2 = 1.0 - np.sum(res ** 2) / tot if tot > 0 else 1.0
  return dict(slope=float(slope), intercept=float(intercept), r2=float(r2))


def xor_bayes_accuracy(mean_norm: float, std: float = 1.0, label_noise: float = 0.0,
                       points: int = 20001) -> float:
  """The Bayes-optimal accuracy on data.xor_clusters' distribution (four equally likely
  Gaussian clusters +-mu1 (label +1), +-mu2 (label -1), mu1 _|_ mu2, ||mu_k|| = mean_norm,
  noise std^2 I), against labels flipped with probability label_noise.

  The Bayes rule is |x . mu1| > |x . mu2| (the likelihoods are cosh(x . mu_k / std^2) up to a
  common factor); with a = mean_norm / std it is right on clean labels with probability
  P(|g2| < |a + g1|) = 1 - 2 E[Phi(-|a + g1|)], g1, g2 ~ N(0, 1) (g1 integrated on a grid).
  Against labels flipped with probability eta the same rule is right with probability
  (1 - eta) acc + eta (1 - acc) (the flip is independent of x), so at large separation the
  optimum is 1 - eta (Xu et al.).
  """
  if not 0 <= label_noise < 0.5:
    raise ValueError(f"label_noise={label_noise} must lie in [0, 0.5)")
  if std <= 0 or mean_norm < 0:
    raise ValueError(f"need std > 0 and mean_norm >= 0; got std={std}, mean_norm={mean_norm}")
  a = mean_norm / std
  g = np.linspace(-12.0, 12.0, points)
  pdf = np.exp(-0.5 * g ** 2) / math.sqrt(2 * math.pi)
  phi = np.array([0.5 * math.erfc(abs(a + t) / math.sqrt(2)) for t in g])   # Phi(-|a + g1|)
  right = 1.0 - float(np.sum(2 * phi * pdf) * (g[1] - g[0]))     # P(|g2| < |a + g1|)
  return (1 - label_noise) * right + label_noise * (1 - right)
