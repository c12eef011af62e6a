"""Low-rank matrix recovery: matrix sensing and matrix completion, each deterministic from `seed`.

Each example is a matrix X [rows, cols] with a scalar target y = <X, M*>, so the matrix
factorization model (dynamics/models/matrix_factorization.py, f(X) = <X, W>) trained with the
mse loss minimises (1/2N) sum_i (<X_i, W> - y_i)^2. Arrays are float64 (like linear_teacher)
so that y = <X, M*> holds to rounding.

matrix_sensing (Jin et al. 2023; Xiong et al. 2023): M* = V diag(spectrum) V^T [d, d], PSD of
rank r, V a Haar-random [d, r] with orthonormal columns. The measurement matrices are symmetric
Gaussian, A = (G + G^T) / 2 with G of iid N(0, 1) entries (diagonal N(0, 1), off-diagonal
N(0, 1/2)); for every symmetric M, <A, M> = <G, M> ~ N(0, ||M||_F^2), so
    E[<A, M>^2] = ||M||_F^2   and   E[<A, M> A] = M,
i.e. the population loss is 0.5 ||W - M*||_F^2 and (1/m) sum_i y_i A_i -> M*.
The test split is n_test fresh measurements of the same M*.

matrix_completion: M* = U diag(spectrum) V^T [rows, cols] (symmetric=True: V diag V^T, PSD,
rows = cols); n_observed entries drawn uniformly without replacement are the train split, as
one-hot matrices e_a e_b^T with targets M*_ab; every unobserved entry is the test split.

The seed's streams: matrix_sensing (M*, train, test); matrix_completion (M*, observed set), so
n_train / n_test / n_observed leave M* unchanged.
"""
import numpy as np

from dynamics import config_utils as cu
from dynamics.data import common
from dynamics.data.base import Dataset
from dynamics.fields import Field

RANK = Field(3, "rank r of M*", lo=1)
SPECTRUM = Field([3.0, 2.0, 1.0], "the r nonzero eigen- / singular values of M*", lo=0.0,
                 lo_open=True, min_len=1)

MATRIX_SENSING = dict(
    seed=common.SEED, dimension=Field(10, "d: M* is d x d", lo=1), rank=RANK, spectrum=SPECTRUM,
    n_train=Field(200, "measurements m (the train split)", lo=1),
    n_test=Field(200, "fresh measurements (the test split)", lo=0))
MATRIX_COMPLETION = dict(
    seed=common.SEED, rows=Field(10, "rows of M*", lo=1), cols=Field(10, "columns of M*", lo=1),
    rank=RANK, spectrum=SPECTRUM,
    n_observed=Field(50, "observed entries (the train split); the rest are the test split",
                     lo=1),
    symmetric=Field(True, "M* = V diag(spectrum) V^T, PSD (rows = cols), for U U^T"))


def _check_spectrum(c, dims: dict) -> None:
  k = min(dims.values())
  if c.rank > k:
    names = " and ".join(f"data.{n}={v}" for n, v in dims.items())
    raise cu.ConfigError(f"data.rank={c.rank} is not allowed; the rank of M* is at most "
                         f"{'min of ' if len(dims) > 1 else ''}{names}")
  if len(c.spectrum) != c.rank:
    raise cu.ConfigError(f"data.spectrum={list(c.spectrum)!r} is not allowed; it must hold "
                         f"data.rank={c.rank} values > 0 (one per rank)")


def _check_sensing(c) -> None:
  _check_spectrum(c, dict(dimension=c.dimension))


def _check_completion(c) -> None:
  _check_spectrum(c, dict(rows=c.rows, cols=c.cols))
  if c.symmetric and c.rows != c.cols:
    raise cu.ConfigError(f"data.rows={c.rows} and data.cols={c.cols} are not allowed with "
                         f"data.symmetric=True; a symmetric M* is square")
  if c.n_observed > c.rows * c.cols:
    raise cu.ConfigError(f"data.n_observed={c.n_observed} is not allowed; M* has only "
                         f"data.rows * data.cols = {c.rows * c.cols} entries")


def symmetric_gaussian(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
  """n symmetric Gaussian matrices (G + G^T) / 2, G [d, d] iid N(0, 1): [n, d, d]."""
  g = rng.standard_normal((n, d, d))
  return 0.5 * (g + np.swapaxes(g, 1, 2))


@common.dataset("matrix_sensing", MATRIX_SENSING, _check_sensing)
def matrix_sensing(seed, dimension, rank, spectrum, n_train, n_test) -> Dataset:
  """Symmetric matrix sensing: y_i = <A_i, M*>, A_i symmetric Gaussian (module docstring).

  Returns:
    Dataset with x [N, d, d] (the A_i), y [N, 1], num_classes=0 and info 'M_star' [d, d],
    'V' [d, r] (eigenvectors, in the order of `spectrum`), 'spectrum' [r].
  """
  r_star, r_train, r_test = np.random.default_rng(seed).spawn(3)
  s = np.asarray(spectrum, dtype=np.float64)
  v = common.orthonormal(r_star, dimension, rank)
  m_star = (v * s) @ v.T
  a, a_test = (symmetric_gaussian(r, n, dimension) for r, n in ((r_train, n_train),
                                                                (r_test, n_test)))
  y = lambda a: np.einsum("nab,ab->n", a, m_star)[:, None]
  return Dataset(a, y(a), a_test, y(a_test), 0, dict(M_star=m_star, V=v, spectrum=s))


@common.dataset("matrix_completion", MATRIX_COMPLETION, _check_completion)
def matrix_completion(seed, rows, cols, rank, spectrum, n_observed, symmetric) -> Dataset:
  """Matrix completion: the observed entries of a low-rank M* (module docstring).

  Returns:
    Dataset with x [N, rows, cols] one-hot matrices e_a e_b^T, y [N, 1] = M*_ab (train: the
    n_observed observed entries; test: all the others, in row-major order), num_classes=0,
    info 'M_star', 'U' [rows, r], 'V' [cols, r], 'spectrum', 'observed' [rows, cols] (bool
    mask), 'train_entries' and 'test_entries' ([N, 2] int (a, b) of each example).
  """
  r_star, r_obs = np.random.default_rng(seed).spawn(2)
  s = np.asarray(spectrum, dtype=np.float64)
  u = common.orthonormal(r_star, rows, rank)
  v = u if symmetric else common.orthonormal(r_star, cols, rank)
  m_star = (u * s) @ v.T
  observed = np.zeros(rows * cols, dtype=bool)
  observed[r_obs.choice(rows * cols, size=n_observed, replace=False)] = True
  observed = observed.reshape(rows, cols)
  train, test = np.argwhere(observed), np.argwhere(~observed)

  def one_hot(entries):
    x = np.zeros((len(entries), rows, cols))
    x[np.arange(len(entries)), entries[:, 0], entries[:, 1]] = 1.0
    return x, m_star[entries[:, 0], entries[:, 1]][:, None]

  (x, y), (x_test, y_test) = one_hot(train), one_hot(test)
  info = dict(M_star=m_star, U=u, V=v, spectrum=s, observed=observed, train_entries=train,
              test_entries=test)
  return Dataset(x, y, x_test, y_test, 0, info)
