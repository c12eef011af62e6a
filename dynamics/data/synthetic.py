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
STD = Field(1.0, "std of the Gaussian noise around each cluster mean", lo=0.0)
NOISE = Field(0.0, "std of the Gaussian noise added to the TRAIN targets", lo=0.0)


def _sizes(n_train: int, n_test: int) -> dict:
  return dict(n_train=Field(n_train, "training examples", lo=1),
              n_test=Field(n_test, "test examples", lo=0))


def _label_noise(default: float) -> Field:
  return Field(default, "fraction of the TRAIN labels moved to another class", lo=0.0, hi=1.0)


LINEAR_TEACHER = dict(
    seed=common.SEED, in_dim=Field(8, "input dimension", lo=1),
    out_dim=Field(8, "output dimension", lo=1), **_sizes(1000, 0),
    singular_values=Field([5.0, 4.0, 3.0, 2.0, 1.0], "the teacher's singular values S, "
                          "at most min(in_dim, out_dim)", lo=0.0, min_len=1),
    whiten=Field(True, "train inputs with (1/N) X^T X = I exactly"), noise=NOISE)
GAUSSIAN_CLUSTERS = dict(
    seed=common.SEED, **_sizes(512, 512), dim=Field(2, "input dimension", lo=1),
    num_classes=Field(2, "classes, one blob each", lo=2),
    separation=Field(3.0, "norm of each class mean", lo=0.0), std=STD,
    label_noise=_label_noise(0.0))
XOR_CLUSTERS = dict(
    seed=common.SEED, **_sizes(256, 1024), dim=Field(50, "input dimension d", lo=2),
    mean_norm=Field(5.0, "norm of mu1 and mu2 (the cluster separation)", lo=0.0), std=STD,
    label_noise=Field(0.1, "noise rate eta: fraction of the TRAIN labels flipped", lo=0.0,
                      hi=0.5, hi_open=True),
    signed=Field(False, "labels +-1 as float targets [N] for a one-output model (Xu et al.); "
                 "False: class ids 0 / 1"))
SEPARABLE_BINARY = dict(
    seed=common.SEED, **_sizes(40, 200), dim=Field(2, "input dimension d", lo=2),
    spread=Field(0.3, "size of the Gaussian perturbation of the class direction, N(0, "
                 "spread^2 I / d), before normalizing (larger: wider cones, smaller mu)",
                 lo=0.0),
    min_norm=Field(1.0, "input norms are uniform in [min_norm, 1]", lo=0.0, hi=1.0,
                   lo_open=True))
TEACHER_STUDENT = dict(
    seed=common.SEED, in_dim=Field(10, "input dimension", lo=1),
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


def _clusters(rng: np.random.Generator, n: int, means: np.ndarray,
              std: float) -> tuple[np.ndarray, np.ndarray]:
  """n draws means[k] + std * N(0, I), k balanced over the clusters: (x, k)."""
  k = _balanced(rng, n, len(means))
  return means[k] + std * rng.standard_normal((n, means.shape[1])), k


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
  u = common.orthonormal(r_teacher, out_dim, s.size)
  v = common.orthonormal(r_teacher, in_dim, s.size)
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
    dirs = common.orthonormal(r_means, dim, num_classes).T
  else:
    g = r_means.standard_normal((num_classes, dim))
    dirs = g / np.linalg.norm(g, axis=1, keepdims=True)
  means = separation * dirs
  x, clean = _clusters(r_train, n_train, means, std)
  x_test, y_test = _clusters(r_test, n_test, means, std)
  y = _flip(r_noise, clean, label_noise, num_classes)
  info = dict(means=means, clean_train_labels=clean.astype(np.int32), flipped=y != clean)
  return Dataset(x.astype(np.float32), y.astype(np.int32), x_test.astype(np.float32),
                 y_test.astype(np.int32), num_classes, info)


@common.dataset("xor_clusters", XOR_CLUSTERS)
def xor_clusters(seed, n_train, n_test, dim, mean_norm, std, label_noise,
                 signed) -> Dataset:
  """XOR-like clusters (benign overfitting / grokking): means +-mu1 (label 1), +-mu2 (label 0).

  Xu, Wang, Frei, Gu et al. 2023, "Benign Overfitting and Grokking in ReLU Networks for XOR
  Cluster Data": x = mu + xi with mu one of +-mu1, +-mu2 and xi ~ N(0, std^2 I_d), usually in
  high dimension d >> n_train, with a fraction eta = label_noise < 1/2 of the training labels
  flipped (at eta >= 1/2 the noisy labels carry no information). mu1 and mu2 are orthogonal
  with norm mean_norm; the four clusters are equally likely (balanced counts). Exactly
  round(label_noise * n_train) train labels are flipped; test labels are clean (the
  Bayes-optimal test accuracy on the noisy distribution would be 1 - eta at large separation).
  signed=True gives their labels y in {+1 (+-mu1), -1 (+-mu2)} as float32 targets [N] for a
  one-output model f(x) = sum_j v_j relu(w_j . x) (num_classes 0); the draws are the same.

  Returns:
    Dataset (num_classes=2, or 0 with signed) with info 'mu1', 'mu2', 'clean_train_labels',
    'flipped', 'train_clusters' and 'test_clusters' (cluster ids 0..3 for +mu1, -mu1, +mu2,
    -mu2).
  """
  r_means, r_train, r_test, r_noise = np.random.default_rng(seed).spawn(4)
  mu = mean_norm * common.orthonormal(r_means, dim, 2).T
  means = np.stack([mu[0], -mu[0], mu[1], -mu[1]])
  cluster_label = np.array([1, 1, 0, 0], dtype=np.int32)
  x, k_train = _clusters(r_train, n_train, means, std)
  x_test, k_test = _clusters(r_test, n_test, means, std)
  clean = cluster_label[k_train]
  y = _flip(r_noise, clean, label_noise, 2)
  info = dict(mu1=mu[0], mu2=mu[1], clean_train_labels=clean, flipped=y != clean,
              train_clusters=k_train, test_clusters=k_test)
  x, x_test, y_test = x.astype(np.float32), x_test.astype(np.float32), cluster_label[k_test]
  if signed:   # class 1 (+-mu1) -> +1, class 0 (+-mu2) -> -1
    sign = lambda labels: (2.0 * labels - 1).astype(np.float32)
    return Dataset(x, sign(y), x_test, sign(y_test), 0, info)
  return Dataset(x, y.astype(np.int32), x_test, y_test, 2, info)


def separation_margin(x: np.ndarray, y: np.ndarray) -> float:
  """mu = min_{i,j} <y_i x_i, y_j x_j> / (||x_i|| ||x_j||) over all pairs (i = j included), in
  float64: > 0 exactly when every pair of same-label inputs is positively correlated and every
  pair of opposite-label inputs negatively (Min, Mallada, Vidal 2024, Assumption 1)."""
  z = np.asarray(x, np.float64).reshape(len(x), -1) * np.sign(np.asarray(y, np.float64))[:, None]
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  return float(np.min(z @ z.T))


@common.dataset("separable_binary", SEPARABLE_BINARY)
def separable_binary(seed, n_train, n_test, dim, spread, min_norm) -> Dataset:
  """Binary data with positively correlated classes (early neuron alignment).

  Min, Mallada, Vidal 2024 ("Early Neuron Alignment in Two-layer ReLU Networks with Small
  Initialization") assume ||x_i|| <= 1 and a margin mu > 0 with
  <y_i x_i, y_j x_j> >= mu ||x_i|| ||x_j|| for all i, j: each class lies in a cone of half-angle
  below 45 degrees about its direction and the two cones face away from each other. (Boursier &
  Flammarion 2022's orthogonally separable data ask less: <x_i, x_j> y_i y_j > 0 for same
  labels, <= 0 for opposite ones; data with mu > 0 satisfies it too.) Here, with a random unit
  vector u: x_i = y_i r_i (u + spread g_i) / ||u + spread g_i||, g_i ~ N(0, I_d / d), norms r_i
  uniform in [min_norm, 1], labels y_i = +-1 balanced; the same for the test split.

  Raises:
    ConfigError naming data.spread when the drawn training set has mu <= 0 (inseparable in
    this sense): lower data.spread.

  Returns:
    Dataset with y [N] float32 in {-1, +1} (num_classes 0: a one-output model) and info 'mu'
    (separation_margin of the train split), 'u' [d], 'x_plus' and 'x_minus' [d]: the sums of the
    positive and negative train inputs (the directions the neurons of Min et al. align with).
  """
  r_dir, r_train, r_test = np.random.default_rng(seed).spawn(3)
  u = r_dir.standard_normal(dim)
  u /= np.linalg.norm(u)

  def sample(rng, n):
    y = 2.0 * _balanced(rng, n, 2) - 1.0
    z = u + spread * rng.standard_normal((n, dim)) / np.sqrt(dim)
    r = rng.uniform(min_norm, 1.0, size=n)
    return (y * r)[:, None] * z / np.linalg.norm(z, axis=1, keepdims=True), y

  x, y = sample(r_train, n_train)
  x_test, y_test = sample(r_test, n_test)
  x, x_test = x.astype(np.float32), x_test.astype(np.float32)
  mu = separation_margin(x, y)
  if not mu > 0:
    raise cu.ConfigError(f"data.spread={spread} is not allowed with data.dim={dim}, "
                         f"data.n_train={n_train}, data.seed={seed}: the drawn data is not "
                         f"separable with a margin (mu = {mu:.3g}, must be > 0); lower "
                         "data.spread")
  info = dict(mu=mu, u=u, x_plus=x[y > 0].astype(np.float64).sum(0),
              x_minus=x[y < 0].astype(np.float64).sum(0))
  return Dataset(x, y.astype(np.float32), x_test, y_test.astype(np.float32), 0, info)


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
