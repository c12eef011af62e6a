"""Synthetic datasets with known structure, each deterministic from `seed`.

The seed is split into independent streams (teacher / train / test / label noise), so changing
n_train, n_test, noise or label_noise leaves the teacher and the other draws unchanged.
Label noise and target noise apply to the TRAIN split only: test targets are clean, so the test
loss measures the distance to the teacher (or the clean rule).
"""
import numpy as np

from dynamics import config_utils as cu
from dynamics.data import common
from dynamics.data.base import Dataset
from dynamics.fields import Field

ACTIVATIONS = {"relu": lambda z: np.maximum(z, 0.0), "tanh": np.tanh, "linear": lambda z: z}

# Fields several datasets share.
SEED = Field(0, "seed of every draw (split into independent streams)", lo=0)
STD = Field(1.0, "std of the Gaussian noise around each cluster mean", lo=0.0)
NOISE = Field(0.0, "std of the Gaussian noise added to the TRAIN targets", lo=0.0)


def _sizes(n_train: int, n_test: int) -> dict:
  return dict(n_train=Field(n_train, "training examples", lo=1),
              n_test=Field(n_test, "test examples", lo=0))


def _label_noise(default: float) -> Field:
  return Field(default, "fraction of the TRAIN labels moved to another class", lo=0.0, hi=1.0)


LINEAR_TEACHER = dict(
    seed=SEED, in_dim=Field(8, "input dimension", lo=1),
    out_dim=Field(8, "output dimension", lo=1), **_sizes(1000, 0),
    singular_values=Field([5.0, 4.0, 3.0, 2.0, 1.0], "the teacher's singular values S, "
                          "at most min(in_dim, out_dim)", lo=0.0, min_len=1),
    whiten=Field(True, "train inputs with (1/N) X^T X = I exactly"), noise=NOISE)
GAUSSIAN_CLUSTERS = dict(
    seed=SEED, **_sizes(512, 512), dim=Field(2, "input dimension", lo=1),
    num_classes=Field(2, "classes, one blob each", lo=2),
    separation=Field(3.0, "norm of each class mean", lo=0.0), std=STD,
    label_noise=_label_noise(0.0))
XOR_CLUSTERS = dict(
    seed=SEED, **_sizes(256, 1024), dim=Field(50, "input dimension", lo=2),
    mean_norm=Field(5.0, "norm of mu1 and mu2", lo=0.0), std=STD, label_noise=_label_noise(0.1))
TEACHER_STUDENT = dict(
    seed=SEED, in_dim=Field(10, "input dimension", lo=1),
    teacher_width=Field(4, "hidden units of the teacher", lo=1), **_sizes(512, 512),
    activation=Field("relu", "the teacher's activation", choices=tuple(ACTIVATIONS)),
    noise=NOISE)


def _check_linear_teacher(c) -> None:
  sv, k = list(c.singular_values), min(c.in_dim, c.out_dim)
  if len(sv) > k:
    raise cu.ConfigError(f"data.singular_values={sv!r} is not allowed; it must be a list of 1 to "
                         f"min(data.in_dim, data.out_dim)={k} finite numbers >= 0")
  if c.whiten and c.n_train < c.in_dim:
    raise cu.ConfigError(f"data.n_train={c.n_train} is not allowed with data.whiten=True; "
                         f"whitening needs n_train >= data.in_dim={c.in_dim}")


def _orthonormal(rng: np.random.Generator, d: int, k: int) -> np.ndarray:
  """[d, k] with orthonormal columns, Haar-distributed (QR of a Gaussian, signs fixed)."""
  q, r = np.linalg.qr(rng.standard_normal((d, d)))
  return (q * np.sign(np.diag(r)))[:, :k]


def _flip(rng: np.random.Generator, y: np.ndarray, fraction: float, k: int) -> np.ndarray:
  """Exactly round(fraction * N) labels moved to a different class, uniformly."""
  y = y.copy()
  m = int(round(fraction * y.size))
  idx = rng.choice(y.size, size=m, replace=False)
  y[idx] = (y[idx] + rng.integers(1, k, size=m)) % k
  return y


def _balanced(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
  """n ids in range(k), as equal in count as possible, in random order."""
  return rng.permutation(np.arange(n) % k)


@common.dataset("linear_teacher", LINEAR_TEACHER, _check_linear_teacher)
def linear_teacher(seed, in_dim, out_dim, n_train, n_test, singular_values, whiten,
                   noise) -> Dataset:
  """Regression on a linear teacher W* = U diag(S) V^T (deep linear network theory).

  With whiten=True the train inputs have (1/N) X^T X = I exactly, so with noise=0 the
  input-output correlation (1/N) Y^T X equals W* (Saxe et al. 2014). Arrays are float64 (unlike
  the other datasets) so that these identities hold to ~1e-12; test inputs are N(0, I) draws.

  Returns:
    Dataset with y [N, out_dim], num_classes=0 and info 'W_star' [out_dim, in_dim], 'U'
    [out_dim, k], 'S' [k] (the singular values in the given order), 'V' [in_dim, k].
  """
  r_teacher, r_train, r_test = np.random.default_rng(seed).spawn(3)
  s = np.asarray(singular_values, dtype=np.float64)
  u = _orthonormal(r_teacher, out_dim, s.size)
  v = _orthonormal(r_teacher, in_dim, s.size)
  w = (u * s) @ v.T
  x = r_train.standard_normal((n_train, in_dim))
  if whiten:
    evals, evecs = np.linalg.eigh(x.T @ x / n_train)
    x = x @ ((evecs / np.sqrt(evals)) @ evecs.T)  # x @ M^{-1/2}
  y = x @ w.T + noise * r_train.standard_normal((n_train, out_dim))
  x_test = r_test.standard_normal((n_test, in_dim))
  info = dict(W_star=w, U=u, S=s, V=v)
  return Dataset(x, y, x_test, x_test @ w.T, 0, info)


@common.dataset("gaussian_clusters", GAUSSIAN_CLUSTERS)
def gaussian_clusters(seed, n_train, n_test, dim, num_classes, separation, std,
                      label_noise) -> Dataset:
  """Isotropic Gaussian blobs, one per class, with balanced classes.

  Class means are separation * (random orthonormal directions when num_classes <= dim, else
  random unit vectors). A fraction label_noise of the TRAIN labels moves to another class.

  Returns:
    Dataset with info 'means' [K, dim], 'clean_train_labels', 'flipped' (bool mask).
  """
  r_means, r_train, r_test, r_noise = np.random.default_rng(seed).spawn(4)
  if num_classes <= dim:
    dirs = _orthonormal(r_means, dim, num_classes).T
  else:
    g = r_means.standard_normal((num_classes, dim))
    dirs = g / np.linalg.norm(g, axis=1, keepdims=True)
  means = separation * dirs

  def sample(rng, n):
    y = _balanced(rng, n, num_classes)
    return means[y] + std * rng.standard_normal((n, dim)), y

  x, clean = sample(r_train, n_train)
  x_test, y_test = sample(r_test, n_test)
  y = _flip(r_noise, clean, label_noise, num_classes)
  info = dict(means=means, clean_train_labels=clean.astype(np.int32), flipped=y != clean)
  return Dataset(x.astype(np.float32), y.astype(np.int32), x_test.astype(np.float32),
                 y_test.astype(np.int32), num_classes, info)


@common.dataset("xor_clusters", XOR_CLUSTERS)
def xor_clusters(seed, n_train, n_test, dim, mean_norm, std, label_noise) -> Dataset:
  """XOR-like clusters (benign overfitting / grokking): means +-mu1 (label 1), +-mu2 (label 0).

  mu1 and mu2 are orthogonal with norm mean_norm; the four clusters are equally likely
  (balanced counts). Exactly round(label_noise * n_train) train labels are flipped.

  Returns:
    Dataset (num_classes=2) with info 'mu1', 'mu2', 'clean_train_labels', 'flipped',
    'train_clusters' and 'test_clusters' (cluster ids 0..3 for +mu1, -mu1, +mu2, -mu2).
  """
  r_means, r_train, r_test, r_noise = np.random.default_rng(seed).spawn(4)
  mu = mean_norm * _orthonormal(r_means, dim, 2).T
  means = np.stack([mu[0], -mu[0], mu[1], -mu[1]])
  cluster_label = np.array([1, 1, 0, 0], dtype=np.int32)

  def sample(rng, n):
    k = _balanced(rng, n, 4)
    return means[k] + std * rng.standard_normal((n, dim)), k

  x, k_train = sample(r_train, n_train)
  x_test, k_test = sample(r_test, n_test)
  clean = cluster_label[k_train]
  y = _flip(r_noise, clean, label_noise, 2)
  info = dict(mu1=mu[0], mu2=mu[1], clean_train_labels=clean, flipped=y != clean,
              train_clusters=k_train, test_clusters=k_test)
  return Dataset(x.astype(np.float32), y.astype(np.int32), x_test.astype(np.float32),
                 cluster_label[k_test], 2, info)


@common.dataset("teacher_student", TEACHER_STUDENT)
def teacher_student(seed, in_dim, teacher_width, n_train, n_test, activation,
                    noise) -> Dataset:
  """Regression on a two-layer teacher f*(x) = sum_j a_j act(w_j . x).

  x ~ N(0, I_in_dim), teacher rows w_j of unit norm, a_j = +-1; noise * N(0, 1) is added to the
  TRAIN targets only.

  Returns:
    Dataset with y [N, 1], num_classes=0, info 'w_teacher' [width, in_dim], 'a_teacher' [width].
  """
  r_teacher, r_train, r_test = np.random.default_rng(seed).spawn(3)
  w = r_teacher.standard_normal((teacher_width, in_dim))
  w /= np.linalg.norm(w, axis=1, keepdims=True)
  a = r_teacher.choice(np.array([-1.0, 1.0]), size=teacher_width)
  act = ACTIVATIONS[activation]
  f = lambda x: act(x @ w.T) @ a[:, None]
  # Targets from the float32-rounded inputs, so f*(x_train) reproduces y_train exactly.
  x = r_train.standard_normal((n_train, in_dim)).astype(np.float32)
  y = f(x.astype(np.float64)) + noise * r_train.standard_normal((n_train, 1))
  x_test = r_test.standard_normal((n_test, in_dim)).astype(np.float32)
  return Dataset(x, y.astype(np.float32), x_test, f(x_test.astype(np.float64)).astype(np.float32),
                 0, dict(w_teacher=w, a_teacher=a))


@common.dataset("ufm_samples", dict(
    num_classes=Field(4, "classes C", lo=2),
    per_class=Field(5, "samples n per class (N = C n)", lo=1)))
def ufm_samples(num_classes, per_class) -> Dataset:
  """The samples of the unconstrained features model (dynamics/models/ufm.py): sample i is the
  one-hot vector e_i of R^N (so a model's first layer picks its free feature h_i), its label
  i // per_class. No test split.

  Returns:
    Dataset with x_train [N, N] (the identity), y_train [N] int32 and no test examples.
  """
  n = num_classes * per_class
  y = np.repeat(np.arange(num_classes), per_class).astype(np.int32)
  return Dataset(np.eye(n, dtype=np.float32), y, np.zeros((0, n), np.float32),
                 np.zeros((0,), np.int32), num_classes, {})
