"""scikit-learn's bundled 8x8 handwritten digits (1,797 images; ships with sklearn, no download).

The examples (after the optional class subset) are shuffled by `seed`; the first `n_test` of
that order form the test set and the next `n_train` (0 = all the rest) the train set, so
changing `n_train` keeps the same test set.
"""
import functools

import ml_collections
import numpy as np

from dynamics import config_utils as cu
from dynamics.data import common
from dynamics.data.base import Dataset

NUM_CLASSES = 10
NUM_EXAMPLES = 1797

DEFAULTS = dict(seed=0, n_train=0, n_test=297, classes=None, standardize=True, flatten=True)


def default_config() -> ml_collections.ConfigDict:
  """Every field of the 'digits' dataset with its default."""
  return ml_collections.ConfigDict(dict(name="digits", **DEFAULTS))


def check(c: dict) -> None:
  """Raises ConfigError for a bad value among the (complete) fields `c`."""
  common.check_int("seed", c["seed"])
  common.check_int("n_train", c["n_train"], 0, NUM_EXAMPLES - 1)
  common.check_int("n_test", c["n_test"], 0, NUM_EXAMPLES - 1)
  common.check_classes("classes", c["classes"], NUM_CLASSES)
  common.check_bool("standardize", c["standardize"])
  common.check_bool("flatten", c["flatten"])


@functools.lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray]:
  from sklearn import datasets  # imported lazily: only this dataset needs scikit-learn
  d = datasets.load_digits()
  x, y = d.data.astype(np.float32), d.target.astype(np.int32)
  x.setflags(write=False)
  y.setflags(write=False)
  return x, y


def load_digits(seed: int = 0, n_train: int = 0, n_test: int = 297, classes=None,
                standardize: bool = True, flatten: bool = True) -> Dataset:
  """The digits dataset split, subset and standardized as configured.

  Args:
    seed: seed of the shuffle that decides the split.
    n_train: number of training examples; 0 = all that remain after the test split.
    n_test: number of test examples.
    classes: None (all 10) or a list of digit ids; kept and relabelled classes[i] -> i.
    standardize: subtract the train-set per-pixel mean and divide by its std (pixels constant on
      the train set become 0 in both splits).
    flatten: [N, 64] inputs if True, else [N, 8, 8, 1].

  Returns:
    A classification Dataset; info has 'feature_mean' and 'feature_std' (raw train-set
    statistics, shape [64] or [8, 8, 1]) and 'class_names' (the original digit of each label).
  """
  check(dict(seed=seed, n_train=n_train, n_test=n_test, classes=classes,
             standardize=standardize, flatten=flatten))
  x, y = _raw()
  x, y, kept = common.select_classes(x, y, classes, NUM_CLASSES)
  n = x.shape[0]
  if n_test >= n:
    raise cu.ConfigError(f"data.n_test={n_test} is not allowed; only {n} examples are "
                         f"available for classes={classes!r}, and the train set needs one")
  perm = np.random.default_rng(seed).permutation(n)
  test_idx, rest = perm[:n_test], perm[n_test:]
  if n_train > rest.size:
    raise cu.ConfigError(f"data.n_train={n_train} is not allowed; only {rest.size} examples "
                         f"remain after the test split (0 = all)")
  train_idx = rest if n_train == 0 else rest[:n_train]
  x_train, y_train = x[train_idx], y[train_idx]
  x_test, y_test = x[test_idx], y[test_idx]
  mean, std = common.moments(x_train, (0,))
  if standardize:
    x_train, x_test = common.normalize(x_train, mean, std), common.normalize(x_test, mean, std)
  shape = (-1, 64) if flatten else (-1, 8, 8, 1)
  info = dict(feature_mean=mean.reshape(shape[1:]), feature_std=std.reshape(shape[1:]),
              class_names=[str(c) for c in kept])
  return Dataset(x_train.reshape(shape).astype(np.float32), y_train.astype(np.int32),
                 x_test.reshape(shape).astype(np.float32), y_test.astype(np.int32),
                 len(kept), info)
