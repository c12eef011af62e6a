"""scikit-learn's bundled 8x8 handwritten digits (1,797 images; ships with sklearn, no download).

The examples (after the optional class subset) are shuffled by `seed`; the first `n_test` of
that order form the test set and the next `n_train` (0 = all the rest) the train set, so
changing `n_train` keeps the same test set.
"""
import functools

import numpy as np

from dynamics import config_utils as cu
from dynamics.data import common
from dynamics.data.base import Dataset
from dynamics.fields import Field

NUM_CLASSES = 10
NUM_EXAMPLES = 1797

FIELDS = dict(
    seed=Field(0, "seed of the shuffle that decides the split", lo=0),
    n_train=Field(0, "training examples; 0 = all that remain after the test split", lo=0,
                  hi=NUM_EXAMPLES - 1),
    n_test=Field(297, "test examples", lo=0, hi=NUM_EXAMPLES - 1),
    classes=common.classes_field(NUM_CLASSES),
    standardize=Field(True, "subtract the train-set per-pixel mean and divide by its std "
                      "(pixels constant on the train set become 0 in both splits)"),
    flatten=Field(True, "[N, 64] inputs, else [N, 8, 8, 1]"),
)


@functools.lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray]:
  from sklearn import datasets  # imported lazily: only this dataset needs scikit-learn
  d = datasets.load_digits()
  x, y = d.data.astype(np.float32), d.target.astype(np.int32)
  x.setflags(write=False)
  y.setflags(write=False)
  return x, y


@common.dataset("digits", FIELDS)
def load_digits(seed, n_train, n_test, classes, standardize, flatten) -> Dataset:
  """The digits dataset split, subset and standardized as configured (the fields of FIELDS).

  Returns:
    A classification Dataset; info has 'feature_mean' and 'feature_std' (raw train-set
    statistics, shape [64] or [8, 8, 1]) and 'class_names' (the original digit of each label).
  """
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


# ---- "CIFAR-shaped digits" -------------------------------------------------------------------
# CIFAR-10 channel statistics (of images scaled to [0, 1]), as torchvision examples use them.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
CIFAR_DIGITS_FIELDS = dict(
    classes=common.classes_field(NUM_CLASSES, [0, 1, 2, 3]),
    per_class=Field(250, "images per class (at most twice the smallest class)", lo=1),
    flatten=Field(True, "[N, 3072] (channel-major, a flattened [3, 32, 32]), else "
                  "[N, 3, 32, 32]"),
)


def _check_cifar_digits(c) -> None:
  """per_class is at most twice the smallest chosen class (originals and shifted copies)."""
  _, y = _raw()
  most = 2 * min(int(np.sum(y == k)) for k in c.classes)
  Field(0, lo=1, hi=most).check("data.per_class", c.per_class)


@common.dataset("cifar_digits", CIFAR_DIGITS_FIELDS, _check_cifar_digits)
def load_cifar_digits(classes, per_class, flatten) -> Dataset:
  """Digits dressed as a CIFAR-10 subset: the data of the central-flow speed configuration.

  For each class in `classes` (labelled 0, 1, ... in that order): its images in the dataset's
  order, then the same images shifted one pixel to the right (column 0 zero), the first
  `per_class` of those; each 8x8 image scaled from 0..16 to 0..255, enlarged to 32x32 by 4x4
  pixel replication, repeated on three channels and normalized per channel with CIFAR-10's
  mean and std (times 255). Everything is training data (no test split), class by class.

  Returns:
    A Dataset with N = len(classes) * per_class training examples and an empty test set.
  """
  x, y = _raw()
  imgs, labels = [], []
  for label, k in enumerate(classes):
    orig = x[y == k].reshape(-1, 8, 8)
    shifted = np.zeros_like(orig)
    shifted[:, :, 1:] = orig[:, :, :-1]                                    # one pixel right
    imgs.append(np.concatenate([orig, shifted])[:per_class])
    labels.append(np.full(per_class, label, np.int32))
  img = np.concatenate(imgs).astype(np.float64) * (255.0 / 16.0)          # [N, 8, 8], 0..255
  img = np.repeat(np.repeat(img, 4, axis=1), 4, axis=2)                    # [N, 32, 32]
  mean = 255.0 * np.asarray(CIFAR_MEAN).reshape(1, 3, 1, 1)
  std = 255.0 * np.asarray(CIFAR_STD).reshape(1, 3, 1, 1)
  chw = (img[:, None] - mean) / std                                        # [N, 3, 32, 32]
  x_out = chw.reshape(chw.shape[0], -1) if flatten else chw
  empty = np.zeros((0,) + x_out.shape[1:], np.float32)
  return Dataset(x_out.astype(np.float32), np.concatenate(labels), empty,
                 np.zeros((0,), np.int32), len(classes),
                 dict(class_names=[str(k) for k in classes]))
