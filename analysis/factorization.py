"""Measurements of linear networks and matrix factorizations from a run directory.

Each function reads a Trajectory (analysis.trajectory.load) at its kept steps and returns numpy
float64 arrays; the closed forms to compare them with are in analysis.linear_theory.

    end_to_end(traj)        the learned matrix at every kept step, [T, member, rows, cols]
                            (column convention: deep_linear's W_total = (W_1 ... W_L)^T)
    mode_strengths(traj)    u_i = U_i^T W_total V_i on the data's teacher modes (Saxe et al.)
    gram_eigenvalues(traj)  the eigenvalues of U U^T (symmetric factorization), descending
    recovery(traj)          ||W - M*||_F^2, the relative error on the unobserved entries and the
                            effective rank, against the dataset's M*
    effective_rank(m)       Roy & Vetterli's exp(entropy of the normalized singular values)
"""
from typing import Optional

import numpy as np

from analysis import linear_theory
from dynamics.models import deep_linear, matrix_factorization


def effective_rank(m: np.ndarray) -> np.ndarray:
  """exp(-sum_i p_i ln p_i), p_i = sigma_i / sum_j sigma_j (Roy & Vetterli 2007; the measure of
  Arora, Cohen, Hu, Luo 2019). 1 for rank one, n for n equal singular values; 0 for the zero
  matrix. A leading batch axis is allowed: [..., rows, cols] -> [...]."""
  sv = np.linalg.svd(np.asarray(m, np.float64), compute_uv=False)
  total = sv.sum(axis=-1, keepdims=True)
  p = np.where(total > 0, sv / np.where(total > 0, total, 1.0), 0.0)
  h = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)
  return np.where(total[..., 0] > 0, np.exp(h), 0.0)


def _matrix_of(name: str):
  """params (leaves [member, ...]) -> [member, rows, cols], column convention."""
  if name == "deep_linear":
    one = lambda p: np.asarray(deep_linear.end_to_end(p), np.float64).T
  elif name == "matrix_factorization":
    one = lambda p: np.asarray(matrix_factorization.matrix(p), np.float64)
  else:
    raise ValueError(f"model {name!r} has no end-to-end matrix here; allowed: deep_linear, "
                     f"matrix_factorization")

  def of(params):
    n = len(next(iter(params.values())))
    return np.stack([one({k: np.asarray(v[i], np.float64) for k, v in params.items()})
                     for i in range(n)])
  return of


def end_to_end(traj, steps: Optional[list] = None) -> tuple[np.ndarray, np.ndarray]:
  """(steps [T], W [T, member, rows, cols]) at the kept steps (or the given kept ones).

  deep_linear: the map x -> y as a matrix [out_dim, in_dim]; matrix_factorization: U U^T,
  U V^T or W_N ... W_1 [rows, cols] (the model reads <X, W>)."""
  steps = list(traj.kept_steps if steps is None else steps)
  of = _matrix_of(traj.config["model"]["name"])
  return np.asarray(steps), np.stack([of(traj.params(s)) for s in steps])


def teacher_svd(traj):
  """(U, s, V) of the run's training data (linear_theory.input_output_svd: whitened inputs)."""
  ds = traj.dataset()
  return linear_theory.input_output_svd(ds.x_train, ds.y_train)


def mode_strengths(traj, steps: Optional[list] = None) -> dict:
  """u_i(t) = U_i^T W_total V_i on the modes of the data's Sigma_yx with s_i > 0.

  Returns:
    dict(steps [T], time [T] = step x learning rate (per member: [member, T] when the rate is
    swept), s [k], strengths [T, member, k], off_diagonal [T, member]: the largest |U_i^T W V_j|
    with i != j, or with either outside the k modes (0 for a decoupled start)).
  """
  u, s, v = teacher_svd(traj)
  k = int(np.sum(s > 1e-9 * s.max()))
  steps, w = end_to_end(traj, steps)
  coupling = np.einsum("oa,tmoi,ib->tmab", u, w, v)      # the full basis of the SVD
  diag = np.einsum("tmaa->tma", coupling)[..., :k]
  off = coupling.copy()
  idx = np.arange(min(off.shape[-2:]))
  off[..., idx, idx] = 0.0
  lr = np.asarray(traj.coords.get("opt.learning_rate",
                                  [traj.config["opt"]["learning_rate"]] * traj.n_members))
  time = steps[None, :] * lr[:, None]
  return dict(steps=steps, time=time if np.ptp(lr) > 0 else time[0], s=s[:k],
              strengths=diag, off_diagonal=np.abs(off).max(axis=(-2, -1)))


def gram_eigenvalues(traj, steps: Optional[list] = None) -> dict:
  """Eigenvalues of U U^T (a symmetric matrix_factorization run) at the kept steps, descending:
  dict(steps [T], eigenvalues [T, member, d])."""
  steps, w = end_to_end(traj, steps)
  sym = 0.5 * (w + np.swapaxes(w, -1, -2))
  return dict(steps=steps, eigenvalues=np.linalg.eigvalsh(sym)[..., ::-1])


def recovery(traj, steps: Optional[list] = None) -> dict:
  """How far the learned matrix is from the dataset's M* (matrix_sensing / matrix_completion).

  Returns:
    dict(steps [T], squared_error [T, member] = ||W - M*||_F^2, unobserved_error [T, member] =
    ||P(W - M*)||_F / ||P(M*)||_F over the entries outside the training set (matrix_completion;
    all entries for sensing), effective_rank [T, member]).
  """
  info = traj.dataset().info
  m_star = np.asarray(info["M_star"], np.float64)
  mask = ~np.asarray(info.get("observed", np.zeros(m_star.shape, bool)))
  steps, w = end_to_end(traj, steps)
  diff = w - m_star
  unobs = np.sqrt(np.sum((diff * mask) ** 2, axis=(-2, -1)) / np.sum((m_star * mask) ** 2))
  return dict(steps=steps, squared_error=np.sum(diff ** 2, axis=(-2, -1)),
              unobserved_error=unobs, effective_rank=effective_rank(w))
