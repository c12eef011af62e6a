"""Neuron alignment in two-layer ReLU networks f(x) = sum_j v_j relu(w_j . x) (REFERENCE.md
Sec. 5: Min, Mallada, Vidal 2024; Boursier & Flammarion 2022; Xu et al. 2023).

From a small balanced initialization the neuron norms stay small at first while each direction
w_j / ||w_j|| follows d w_j/dt = sign(v_j) (1/n) sum_i y_i 1[w_j . x_i > 0] x_i (the data-weighted
sum of its active inputs, `driving_vector`); on data with margin mu > 0 (separable_binary) a
neuron with v_j > 0 ends aligned with x_+ = sum_{y_i > 0} x_i or dead, one with v_j < 0 with
x_- = sum_{y_i < 0} x_i. Then the norms grow and the first layer ends approximately low rank.

The directions the theory names (`target_directions`, unit rows [k, d], computed from the
training data only, so the in-loop probe and the post hoc measure see the same ones):

    kind='cones'  [x_+, x_-]: the class sums (labels y > 0 / y <= 0 for float targets, 1 / 0
                  for class ids). The extreme rays of the two data cones (`cone_extreme_rays`)
                  bound where a neuron's direction can settle; x_+ and x_- lie inside.
    kind='rays'   the extreme rays of the positive cone, then of the negative one
                  (`cone_extreme_rays`, in input order): a neuron's best cosine says how close
                  it lies to the cone's boundary.
    kind='xor'    [u1, -u1, u2, -u2]: the XOR cluster-mean directions, estimated as the top and
                  bottom eigenvectors of S_1 - S_0 (S_c = the second moment of class c's inputs,
                  (1 - 2 eta)(mu1 mu1^T - mu2 mu2^T) + noise for Xu et al.'s clusters).

`measures(w, v, x, targets, threshold)` is pure jnp (jits and vmaps): per neuron the norm, the
cosines with the targets, the best cosine, the matched cosine (cones: with x_+ when v_j > 0,
x_- otherwise), dead or not (no training input active); the shares aligned (best cosine >=
threshold) and dead; the singular values and stable rank ||W||_F^2 / ||W||_2^2 of W [m, d].
It is the in-loop probe `alignment` (analysis/probes.py) and, from a kept checkpoint,
`at_step(traj, step, member)` / `over_kept(traj, member)`.
"""
from typing import Optional

import jax.numpy as jnp
import numpy as np

KINDS = ("cones", "rays", "xor")


def directions(w):
  """w_j / ||w_j|| row by row ([m, d]); a zero row stays zero."""
  n = jnp.linalg.norm(w, axis=-1, keepdims=True)
  return w / jnp.where(n > 0, n, 1)


def cosines(w, targets):
  """[m, k]: the cosine of each neuron w_j (rows of w) with each target direction (rows)."""
  return directions(w) @ directions(targets).T


def stable_rank(w):
  """||W||_F^2 / ||W||_2^2 (0 for the zero matrix); a leading batch axis is allowed."""
  sv = jnp.linalg.svd(w, compute_uv=False)
  top = sv[..., 0] ** 2
  return jnp.where(top > 0, jnp.sum(sv ** 2, axis=-1) / jnp.where(top > 0, top, 1), 0)


def _positive(y) -> np.ndarray:
  """Boolean [N]: the positive class (float targets > 0, or class id 1)."""
  y = np.asarray(y).reshape(len(y), -1)
  if y.shape[1] != 1:
    raise ValueError(f"binary labels must be [N] or [N, 1]; got shape {y.shape}")
  y = y[:, 0]
  if np.issubdtype(y.dtype, np.integer):
    if not set(np.unique(y).tolist()) <= {0, 1}:
      raise ValueError("class-id labels must be 0 or 1 for the binary alignment measures; got "
                       f"{sorted(set(np.unique(y).tolist()))}")
    return y == 1
  return y > 0


def target_directions(x, y, kind: str = "cones") -> np.ndarray:
  """The unit directions the theory names for binary data x [N, d], labels y (see module
  docstring), float64 [k, d]."""
  x = np.asarray(x, np.float64).reshape(len(x), -1)
  pos = _positive(y)
  if kind == "cones":
    t = np.stack([x[pos].sum(0), x[~pos].sum(0)])
  elif kind == "rays":
    rays = cone_extreme_rays(x, y)
    t = x[rays["positive"] + rays["negative"]]
  elif kind == "xor":
    s = x[pos].T @ x[pos] / max(pos.sum(), 1) - x[~pos].T @ x[~pos] / max((~pos).sum(), 1)
    evals, evecs = np.linalg.eigh(s)
    u1, u2 = evecs[:, -1], evecs[:, 0]
    t = np.stack([u1, -u1, u2, -u2])
  else:
    raise ValueError(f"kind={kind!r} is not allowed; allowed values: {KINDS}")
  n = np.linalg.norm(t, axis=1, keepdims=True)
  if np.any(n == 0):
    raise ValueError("a target direction is zero: each class needs inputs with a nonzero sum")
  return t / n


def cone_extreme_rays(x, y) -> dict:
  """Indices of the inputs that span extreme rays of each class's cone {sum_i a_i x_i, a >= 0}.

  x_i spans an extreme ray when it is not a nonnegative combination of the other inputs of its
  class that are not parallel to it (a linear-programming feasibility check, scipy's HiGHS);
  of several parallel inputs only the first is kept.

  Returns:
    dict(positive=[indices], negative=[indices]) into x.
  """
  from scipy import optimize       # scikit-learn's dependency; only this function needs it
  x = np.asarray(x, np.float64).reshape(len(x), -1)
  pos = _positive(y)
  out = {}
  for name, mask in (("positive", pos), ("negative", ~pos)):
    idx = np.flatnonzero(mask)
    u = x[idx] / np.linalg.norm(x[idx], axis=1, keepdims=True)
    rays = []
    for a, i in enumerate(idx):
      parallel = u @ u[a] > 1 - 1e-12
      if np.any(parallel[:a]):                 # a copy of an earlier input's ray
        continue
      others = u[~parallel]
      inside = len(others) > 0 and optimize.linprog(
          np.zeros(len(others)), A_eq=others.T, b_eq=u[a], bounds=(0, None),
          method="highs").status == 0
      if not inside:
        rays.append(int(i))
    out[name] = rays
  return out


def aligned_stable_rank(norms, cosines, targets) -> np.ndarray:
  """The stable rank W would have with every neuron exactly along its best-matching target:
  rows norms_j t_{c(j)}, c(j) = argmax_k cosines[j, k] (their `stable_rank`).

  Args:
    norms: [..., m] the neuron norms ||w_j||. cosines: [..., m, k] their cosines with the
      targets (the probe's 'norms' and 'cosines'). targets: [k, d] the target directions.

  Returns:
    [...] the stable rank ||R||_F^2 / ||R||_2^2 of those rows: what `stable_rank` of the
    measured W should approach once every neuron is aligned (1 for one direction, 2 for two
    orthogonal ones carrying equal weight).
  """
  t = np.asarray(targets, np.float64)
  t = t / np.linalg.norm(t, axis=-1, keepdims=True)
  rows = np.asarray(norms, np.float64)[..., None] * t[np.argmax(np.asarray(cosines), axis=-1)]
  return np.asarray(stable_rank(jnp.asarray(rows)))


def driving_vector(w, x, y):
  """(1/n) sum_i y_i 1[w_j . x_i > 0] x_i for every neuron (rows of w [m, d]) -> [m, d]: the
  early-phase velocity of w_j / (sign(v_j) ||w_j||) under the mean squared loss with targets y
  (f ~ 0), Min et al.'s x(w_j); under the logistic loss (loss.name='logistic') half of it
  (|l'(0)| = 1/2), the same directions at half the speed."""
  y = jnp.asarray(y).reshape(x.shape[0]).astype(x.dtype)
  active = (x @ w.T > 0).astype(x.dtype)                      # [N, m]
  return (active * y[:, None]).T @ x / x.shape[0]


def measures(w, v, x, targets, threshold: float = 0.9) -> dict:
  """The alignment measures of one network (pure jnp; see the module docstring).

  Args:
    w: first layer [m, d] (row j = w_j). v: second layer [m, out] (only its sign is used, for
      'matched_cosine' when targets are the two cones and out = 1).
    x: training inputs [N, d] (for 'dead'). targets: unit rows [k, d].
    threshold: a neuron is aligned when its best cosine is at least this.

  Returns:
    dict(norms [m], v_norms [m], max_norm, cosines [m, k], best_cosine [m], matched_cosine [m]
    (only when k = 2 and out = 1), dead [m] (0/1), aligned_share, dead_share,
    singular_values [min(m, d)], stable_rank).
  """
  targets = jnp.asarray(targets, w.dtype)
  c = cosines(w, targets)
  best = jnp.max(c, axis=1)
  dead = jnp.all(x.reshape(x.shape[0], -1) @ w.T <= 0, axis=0).astype(w.dtype)
  norms = jnp.linalg.norm(w, axis=1)
  out = dict(norms=norms, v_norms=jnp.linalg.norm(v, axis=1), max_norm=jnp.max(norms),
             cosines=c, best_cosine=best, dead=dead,
             aligned_share=jnp.mean((best >= threshold).astype(w.dtype)),
             dead_share=jnp.mean(dead), singular_values=jnp.linalg.svd(w, compute_uv=False),
             stable_rank=stable_rank(w))
  if targets.shape[0] == 2 and v.shape[1] == 1:
    out["matched_cosine"] = jnp.where(v[:, 0] > 0, c[:, 0], c[:, 1])
  return out


def of_params(params, x, targets, threshold: float = 0.9) -> dict:
  """measures() of a two_layer model's params {'w', 'v'}."""
  if not (isinstance(params, dict) and "w" in params and "v" in params):
    got = sorted(params) if isinstance(params, dict) else type(params).__name__
    raise ValueError(f"the alignment measures need a two-layer model's params with leaves 'w' "
                     f"and 'v' (model.name='two_layer'); got {got}")
  return measures(params["w"], params["v"], jnp.asarray(x, params["w"].dtype), targets,
                  threshold)


def at_step(traj, step: int, member: int, kind: str = "cones",
            threshold: float = 0.9) -> dict:
  """The alignment measures of one sweep member at a kept step, as numpy arrays, with the
  targets from the run's training data (as the in-loop probe computes them)."""
  data = traj.problem().data
  targets = target_directions(data["x_train"], data["y_train"], kind)
  out = of_params(traj.params(step, member), data["x_train"], targets, threshold)
  return {k: np.asarray(a) for k, a in out.items()}


def over_kept(traj, member: int, kind: str = "cones", threshold: float = 0.9,
              steps: Optional[list] = None) -> dict:
  """at_step at every kept step (or the given kept ones), stacked: dict(steps [T], and each
  measure with a leading [T] axis)."""
  steps = list(traj.kept_steps if steps is None else steps)
  each = [at_step(traj, s, member, kind, threshold) for s in steps]
  return dict(steps=np.asarray(steps), **{k: np.stack([e[k] for e in each]) for k in each[0]})
