"""Low-rank tensor recovery: CP tensor completion and tubal tensor sensing, each deterministic
from `seed`. Arrays are float64 (like matrix_sensing) so that the targets hold to rounding.

tensor_completion (Razin, Maman, Cohen 2021): an order-N target
    W* = sum_r s_r a_r^(1) o ... o a_r^(N)   [d, ..., d],
every a_r^(n) a Gaussian direction (unit norm), so the r-th component's norm is s_r (`norms`)
and, for rank <= d, every mode unfolding of W* has rank r. n_observed entries drawn uniformly
without replacement are the train split, the unobserved ones the test split (all of them, or
n_test of them drawn at random). An entry (i_1, ..., i_N) is the example x = [e_{i_1}; ...;
e_{i_N}] [N, d] (one one-hot row per mode) with target W*[i_1, ..., i_N]: the input of the
cp_factorization model, whose mse loss is then the completion loss on the observed entries.
(Razin et al.'s public code draws Gaussian factors and scales W* to unit Frobenius norm; here
the component norms are chosen instead, so that the components' order of appearance is set.)

tubal_sensing (Karnik, Veselovska, Iwen, Krahmer 2024): X* = T * T^T [n, n, k] of tubal rank r
(t-product along the third mode, dynamics.tensor), with T [n, r, k]
  target='orthonormal': the first r left t-singular vectors of a Gaussian [n, r, k] (T^T * T =
                        I, so every Fourier slice of X* is a rank-r projection; the authors'
                        'normalized' setting);
  target='gaussian':    T itself Gaussian, N(0, 1) entries.
The measurements A_i [n, n, k] have iid N(0, 1) entries and y_i = <A_i, X*>, so E[<A, M>^2] =
||M||_F^2 and the engine's mse loss (1/2m) sum_i (<A_i, X> - y_i)^2 has population value
0.5 ||X - X*||_F^2. The authors' code steps U -= nu grad (1/2) sum_i (<A_i, X> - y_i)^2, which
is the engine's GD at learning rate m * nu. The test split is n_test fresh measurements.

The seed's streams: tensor_completion (W*, observed set, test subset); tubal_sensing (X*, train,
test), so n_observed / n_train / n_test leave the target unchanged.
"""
import numpy as np

from dynamics import config_utils as cu
from dynamics.data import common
from dynamics.data.base import Dataset
from dynamics.fields import Field

MAX_ENTRIES = 10 ** 7          # the completion target and its masks are held in memory

TENSOR_COMPLETION = dict(
    seed=common.SEED,
    order=Field(4, "order N of W* (number of modes)", lo=2),
    dimension=Field(10, "d: W* is d x ... x d", lo=1),
    rank=Field(5, "CP rank r of W* (at most dimension)", lo=1),
    norms=Field([1.0, 0.8, 0.6, 0.4, 0.2], "the r component norms s_r of W*", lo=0.0,
                lo_open=True, min_len=1),
    n_observed=Field(2000, "observed entries (the train split)", lo=1),
    n_test=Field(None, "unobserved entries held out as the test split (None: all of them)",
                 kind="int", lo=0))
TARGETS = ("orthonormal", "gaussian")
TUBAL_SENSING = dict(
    seed=common.SEED,
    dimension=Field(10, "n: X* is n x n x tube", lo=1),
    tube=Field(4, "tube length k (third mode)", lo=1),
    rank=Field(2, "tubal rank r of X* (at most dimension)", lo=1),
    target=Field("orthonormal", "T of X* = T * T^T: 'orthonormal' (T^T * T = I) or 'gaussian'",
                 choices=TARGETS),
    n_train=Field(254, "measurements m (the train split; 254 = Karnik et al.'s "
                  "1.2 (n+1) r k ln(n+1) at the defaults)", lo=1),
    n_test=Field(200, "fresh measurements (the test split)", lo=0))


def _check_rank(c) -> None:
  if c.rank > c.dimension:
    raise cu.ConfigError(f"data.rank={c.rank} is not allowed; it must be <= data.dimension="
                         f"{c.dimension}")


def _check_completion(c) -> None:
  _check_rank(c)
  if len(c.norms) != c.rank:
    raise cu.ConfigError(f"data.norms={list(c.norms)!r} is not allowed; it must hold "
                         f"data.rank={c.rank} values > 0 (one per component)")
  entries = c.dimension ** c.order
  if entries > MAX_ENTRIES:
    raise cu.ConfigError(f"data.order={c.order} is not allowed with data.dimension="
                         f"{c.dimension}; W* would have {entries} entries, at most "
                         f"{MAX_ENTRIES} are held in memory")
  if c.n_observed > entries:
    raise cu.ConfigError(f"data.n_observed={c.n_observed} is not allowed; W* has only "
                         f"data.dimension ** data.order = {entries} entries")
  if c.n_test is not None and c.n_test > entries - c.n_observed:
    raise cu.ConfigError(f"data.n_test={c.n_test} is not allowed; only {entries} - "
                         f"{c.n_observed} = {entries - c.n_observed} entries are unobserved")


def _cp_tensor(factors: np.ndarray, norms: np.ndarray) -> np.ndarray:
  """sum_r s_r a_r^(1) o ... o a_r^(N) from factors [N, d, r]."""
  out = 0.0
  for r, s in enumerate(norms):
    t = s * factors[0][:, r]
    for f in factors[1:]:
      t = np.multiply.outer(t, f[:, r])
    out = out + t
  return out


def one_hot_entries(entries: np.ndarray, dimension: int) -> np.ndarray:
  """Entries [M, N] (ints) -> the mode-wise one-hot inputs [M, N, dimension]."""
  entries = np.asarray(entries, dtype=np.int64)
  x = np.zeros(entries.shape + (dimension,))
  m, n = np.indices(entries.shape)
  x[m, n, entries] = 1.0
  return x


@common.dataset("tensor_completion", TENSOR_COMPLETION, _check_completion)
def tensor_completion(seed, order, dimension, rank, norms, n_observed, n_test) -> Dataset:
  """CP tensor completion: the observed entries of a low-CP-rank W* (module docstring).

  Returns:
    Dataset with x [M, order, dimension] (one one-hot row per mode), y [M, 1] = W*[entry]
    (train: the observed entries; test: the unobserved ones, in row-major order), num_classes
    0, and info 'W_star' [d, ..., d], 'factors' [order, d, rank] (unit columns), 'norms'
    [rank], 'observed' (bool mask of W*'s shape), 'train_entries', 'test_entries' ([M, order]).
  """
  r_star, r_obs, r_test = np.random.default_rng(seed).spawn(3)
  s = np.asarray(norms, dtype=np.float64)
  g = r_star.standard_normal((order, dimension, rank))
  factors = g / np.linalg.norm(g, axis=1, keepdims=True)
  w_star = _cp_tensor(factors, s)
  shape = (dimension,) * order
  observed = np.zeros(w_star.size, dtype=bool)
  observed[r_obs.choice(w_star.size, size=n_observed, replace=False)] = True
  observed = observed.reshape(shape)
  train, test = np.argwhere(observed), np.argwhere(~observed)
  if n_test is not None:
    test = test[np.sort(r_test.choice(len(test), size=n_test, replace=False))]
  split = lambda e: (one_hot_entries(e, dimension), w_star[tuple(e.T)][:, None])
  (x, y), (x_test, y_test) = split(train), split(test)
  info = dict(W_star=w_star, factors=factors, norms=s, observed=observed, train_entries=train,
              test_entries=test)
  return Dataset(x, y, x_test, y_test, 0, info)


def _t_gram(t: np.ndarray) -> np.ndarray:
  """T * T^T for a real T [n, r, k], through the Fourier slices: hat(X)_j = hat(T)_j hat(T)_j^H."""
  ft = np.fft.rfft(t, axis=2)
  return np.fft.irfft(np.einsum("arj,brj->abj", ft, np.conj(ft)), n=t.shape[2], axis=2)


def _t_orthonormal(t: np.ndarray) -> np.ndarray:
  """The left t-singular vectors of T [n, r, k] (r <= n): [n, r, k] with Q^T * Q = I."""
  k = t.shape[2]
  ft = np.fft.rfft(t, axis=2)
  q = np.empty_like(ft)
  for j in range(ft.shape[2]):
    real = j == 0 or 2 * j == k               # self-conjugate slices: a real basis
    q[:, :, j] = np.linalg.svd(ft[:, :, j].real if real else ft[:, :, j], full_matrices=False)[0]
  return np.fft.irfft(q, n=k, axis=2)


@common.dataset("tubal_sensing", TUBAL_SENSING, _check_rank)
def tubal_sensing(seed, dimension, tube, rank, target, n_train, n_test) -> Dataset:
  """Tubal sensing: y_i = <A_i, X*>, X* = T * T^T of tubal rank r, A_i Gaussian (module
  docstring).

  Returns:
    Dataset with x [M, n, n, k] (the A_i), y [M, 1], num_classes=0 and info 'X_star'
    [n, n, k], 'T' [n, r, k].
  """
  r_star, r_train, r_test = np.random.default_rng(seed).spawn(3)
  t = r_star.standard_normal((dimension, rank, tube))
  if target == "orthonormal":
    t = _t_orthonormal(t)
  x_star = _t_gram(t)
  a, a_test = (r.standard_normal((m, dimension, dimension, tube))
               for r, m in ((r_train, n_train), (r_test, n_test)))
  y = lambda a: np.einsum("mabj,abj->m", a, x_star)[:, None]
  return Dataset(a, y(a), a_test, y(a_test), 0, dict(X_star=x_star, T=t))

