"""Measurements of tensor factorizations (CP and tubal) from a run directory.

Each function reads a Trajectory (analysis.trajectory.load) at its kept steps and returns numpy
float64 arrays; the algebra is dynamics.tensor's.

    cp_norms(traj)            the norm of every CP component, prod_n ||a_r^(n)|| [T, member, R]
    cp_recovery(traj)         + the relative error on the unobserved (test) entries and the
                              number of significant components
    rise_steps(steps, norms)  when each curve first reaches 10%, 50%, 90% of its final value
    jumps(steps, norms)       the significant components' rises in order of arrival, and whether
                              they come one at a time (Razin, Maman, Cohen 2021)
    tubal_recovery(traj)      every Fourier slice's singular values of X = U * U^T, its tubal
                              rank, ||X - X*|| / ||X*|| and the principal angle to the true tubal
                              subspace (Karnik, Veselovska, Iwen, Krahmer 2024)

"Significant" is relative to the largest value of the same tensor: a CP component whose norm
exceeds SIGNIFICANT (5%) of the largest component's, a singular tube whose largest value over
the Fourier slices exceeds TUBAL_RTOL (1e-3) of the largest singular value (docs/notes/
tensor_factorization.md says why these two).
"""
from typing import Optional, Sequence

import numpy as np

from analysis import linear_theory
from dynamics import tensor as tensor_lib
from dynamics.models import cp_factorization, tubal_factorization

SIGNIFICANT = 0.05
TUBAL_RTOL = 1e-3
RISE = (0.1, 0.5, 0.9)


def _require(traj, name: str) -> None:
  got = traj.config["model"]["name"]
  if got != name:
    raise ValueError(f"model {got!r} is not allowed here; this measure needs {name!r}")
  traj.model()              # builds what made the run: x64 on for a float64 run


def _member_params(traj, step: int) -> list[dict]:
  p = traj.params(step)
  n = len(next(iter(p.values())))
  return [{k: np.asarray(v[i]) for k, v in p.items()} for i in range(n)]


def cp_norms(traj, steps: Optional[Sequence[int]] = None) -> dict:
  """dict(steps [T], norms [T, member, R]): every component's Frobenius norm at the kept steps
  (a cp_factorization run), in the model's component order (not sorted: a component keeps its
  index over time)."""
  _require(traj, "cp_factorization")
  steps = np.asarray(traj.kept_steps if steps is None else steps)
  norms = [[np.asarray(cp_factorization.component_norms(p), np.float64)
            for p in _member_params(traj, int(s))] for s in steps]
  return dict(steps=steps, norms=np.asarray(norms))


def significant(norms: np.ndarray, rtol: float = SIGNIFICANT) -> np.ndarray:
  """How many of `norms` (last axis) exceed rtol times their largest: an int array."""
  return np.asarray(tensor_lib.effective_rank(np.asarray(norms), rtol))


def cp_recovery(traj, steps: Optional[Sequence[int]] = None,
                rtol: float = SIGNIFICANT) -> dict:
  """How far the CP tensor W is from the dataset's W* (tensor_completion).

  Returns:
    dict(steps [T], norms [T, member, R] (cp_norms), significant [T, member] (components above
    rtol of the largest), test_error [T, member] = ||P(W - W*)||_F / ||P(W*)||_F over the
    unobserved entries P, train_error [T, member] the same over the observed ones).
  """
  out = cp_norms(traj, steps)
  info = traj.dataset().info
  w_star = np.asarray(info["W_star"], np.float64)
  seen = np.asarray(info["observed"])
  test, train = [], []
  for s in out["steps"]:
    w = np.stack([np.asarray(cp_factorization.tensor(p), np.float64)
                  for p in _member_params(traj, int(s))])
    diff = w - w_star
    test.append(np.linalg.norm(diff[:, ~seen], axis=-1) / np.linalg.norm(w_star[~seen]))
    train.append(np.linalg.norm(diff[:, seen], axis=-1) / np.linalg.norm(w_star[seen]))
  return dict(out, significant=significant(out["norms"], rtol), test_error=np.asarray(test),
              train_error=np.asarray(train))


def rise_steps(steps: np.ndarray, values: np.ndarray,
               fracs: Sequence[float] = RISE) -> np.ndarray:
  """The first step at which each curve reaches each fraction of its final (last) value,
  interpolated in log(value) between log points (linear_theory.crossing_steps).

  Args:
    steps: [T] increasing; values: [T, n] positive curves (e.g. one member's component norms).

  Returns:
    [len(fracs), n]: steps[0] where a curve starts above the fraction; nan for a curve whose
    final value is 0.
  """
  values = np.asarray(values, np.float64)
  if values.ndim != 2:
    raise ValueError(f"values must be [T, n]; got shape {values.shape}")
  final = values[-1]
  out = np.full((len(fracs), values.shape[1]), np.nan)
  ok = final > 0
  if ok.any():
    curves = np.maximum(values[:, ok], 1e-300)
    for i, f in enumerate(fracs):
      out[i, ok] = linear_theory.crossing_steps(steps, curves, f * final[ok])
  return out


def jumps(steps: np.ndarray, norms: np.ndarray, rtol: float = SIGNIFICANT,
          start: float = 0.01) -> dict:
  """The significant components' rises (one member's norms [T, R]), in order of arrival.

  A component rises "from small" when it starts below `start` of its final norm. The rises
  come one at a time when, in order of their half-way steps, each is strictly later than the
  one before and each component reaches 90% of its final norm before the next one reaches 10%
  of its own (the rise windows do not overlap).

  Returns:
    dict(components [k] (indices, in order of arrival), final [k] (their final norms), rise
    [k, 3] (the steps at 10%, 50%, 90% of the final norm), overshoot [k] (the largest norm
    over the run / the final one: > 1 when a component overshoots and comes back), from_small
    [k] bool, distinct (half-way steps strictly increasing), one_at_a_time (distinct and no
    overlapping rise windows), by_norm (the order of arrival is that of decreasing final norm)).
  """
  norms = np.asarray(norms, np.float64)
  final = norms[-1]
  comps = np.nonzero(final > rtol * final.max())[0]
  rise = rise_steps(steps, norms[:, comps]).T               # [k, 3]
  order = np.argsort(rise[:, 1], kind="stable")
  comps, rise = comps[order], rise[order]
  half = rise[:, 1]
  distinct = bool(np.all(np.diff(half) > 0))
  apart = bool(np.all(rise[:-1, 2] <= rise[1:, 0]))
  return dict(components=comps, final=final[comps], rise=rise,
              overshoot=norms[:, comps].max(axis=0) / final[comps],
              from_small=norms[0, comps] < start * final[comps], distinct=distinct,
              one_at_a_time=distinct and apart,
              by_norm=bool(np.all(np.diff(final[comps]) <= 0)))


def _top_left(x: np.ndarray, r: int) -> np.ndarray:
  """The first r left t-singular vectors of X [..., n, n, k]: [..., n, r, k]."""
  return np.asarray(tensor_lib.t_svd(x)[0])[..., :r, :]


def tubal_recovery(traj, steps: Optional[Sequence[int]] = None,
                   rtol: float = TUBAL_RTOL) -> dict:
  """X = U * U^T (a symmetric tubal_factorization run) against the dataset's X* = T * T^T.

  Returns:
    dict(steps [T], singular_values [T, member, k, n] (every Fourier slice, descending),
    tubal_rank [T, member] (tubes above rtol of the largest singular value), error [T, member]
    = ||X - X*||_F / ||X*||_F, angle [T, member] the sine of the largest principal angle
    between the span of X's first r left t-singular vectors and T's (r = X*'s tubal rank;
    dynamics.tensor.tubal_principal_angle)).
  """
  _require(traj, "tubal_factorization")
  if traj.config["model"]["factorization"] != "symmetric":
    raise ValueError("model.factorization='asymmetric' is not allowed here; the measure reads "
                     "U * U^T (symmetric)")
  info = traj.dataset().info
  x_star, t_star = np.asarray(info["X_star"]), np.asarray(info["T"])
  r = t_star.shape[1]
  steps = np.asarray(traj.kept_steps if steps is None else steps)
  sv, rank, err, angle = [], [], [], []
  for s in steps:
    x = np.stack([np.asarray(tubal_factorization.tensor(p)) for p in _member_params(traj, int(s))])
    sv.append(np.asarray(tensor_lib.fourier_singular_values(x), np.float64))
    rank.append(np.asarray(tensor_lib.tubal_rank(x, rtol)))
    err.append(np.linalg.norm((x - x_star).reshape(len(x), -1), axis=-1) / np.linalg.norm(x_star))
    t_b = np.broadcast_to(t_star.astype(x.dtype), (len(x),) + t_star.shape)
    angle.append(np.asarray(tensor_lib.tubal_principal_angle(_top_left(x, r), t_b), np.float64))
  return dict(steps=steps, singular_values=np.asarray(sv), tubal_rank=np.asarray(rank),
              error=np.asarray(err), angle=np.asarray(angle))
