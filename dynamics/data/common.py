"""Helpers shared by the loaders: value checks, class subsets, splits and standardization.

Every check raises config_utils.ConfigError naming the field as `data.<field>` and what is
allowed, so a bad config stops before any data is read.
"""
from typing import Any, Optional, Sequence

import numpy as np

from dynamics import config_utils as cu

# Rows per chunk when computing or applying statistics on large (CIFAR-sized) arrays.
_CHUNK = 4096


def field(name: str) -> str:
  return f"data.{name}"


def check_int(name: str, value: Any, lo: int = 0, hi: Optional[int] = None) -> int:
  """value must be a Python int in [lo, hi] (hi=None: no upper bound)."""
  # Only plain ints: ml_collections refuses to store e.g. numpy ints into an int field.
  ok = isinstance(value, int) and not isinstance(value, bool) and value >= lo
  if ok and hi is not None:
    ok = value <= hi
  if not ok:
    bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
    raise cu.ConfigError(f"{field(name)}={value!r} is not allowed; it must be an integer {bound}")
  return value


def check_bool(name: str, value: Any) -> bool:
  if not isinstance(value, (bool, np.bool_)):
    raise cu.ConfigError(f"{field(name)}={value!r} is not allowed; allowed values: True, False")
  return bool(value)


def check_float(name: str, value: Any, lo: float, hi: float = float("inf"),
                lo_open: bool = False) -> float:
  """value must be a finite number in [lo, hi] ((lo, hi] when lo_open)."""
  if isinstance(value, (int, float)) and not isinstance(value, bool) and not np.isfinite(value):
    raise cu.ConfigError(f"{field(name)}={value!r} is not allowed; it must be finite")
  return cu.check_range(field(name), value, lo, hi, lo_open=lo_open)


def check_classes(name: str, value: Any, num_classes: int) -> None:
  """None (all classes) or a list of at least 2 distinct class ids in [0, num_classes)."""
  if value is None:
    return
  allowed = (f"None (all classes) or a list of at least 2 distinct integers in "
             f"[0, {num_classes - 1}]")
  ok = isinstance(value, (list, tuple)) and len(value) >= 2
  ok = ok and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < num_classes
                  for c in value)
  ok = ok and len(set(value)) == len(value)
  if not ok:
    raise cu.ConfigError(f"{field(name)}={value!r} is not allowed; allowed values: {allowed}")


def select_classes(x: np.ndarray, y: np.ndarray, classes: Optional[Sequence[int]],
                   num_classes: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
  """Keeps the examples of `classes` and relabels classes[i] -> i (list order).

  Returns:
    (x, y, kept) where kept is the list of original class ids, in new-label order.
  """
  if classes is None:
    return x, y.astype(np.int32), list(range(num_classes))
  kept = [int(c) for c in classes]
  lut = np.full(num_classes, -1, dtype=np.int32)
  lut[kept] = np.arange(len(kept), dtype=np.int32)
  mask = lut[y] >= 0
  return x[mask], lut[y[mask]], kept


def take(n_avail: int, n: int, name: str, rng: np.random.Generator) -> np.ndarray:
  """A random subset of n of range(n_avail) (n=0: a permutation of all), as indices."""
  if n > n_avail:
    raise cu.ConfigError(f"{field(name)}={n} is not allowed; only {n_avail} examples are "
                         f"available (0 = all)")
  perm = rng.permutation(n_avail)
  return perm if n == 0 else perm[:n]


def moments(x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
  """Mean and std of x over `axes` (which include 0), in float64, keepdims."""
  count = int(np.prod([x.shape[a] for a in axes]))
  if count == 0:
    raise cu.ConfigError("data: the training set is empty, so it cannot be standardized")
  mean = x.sum(axis=axes, dtype=np.float64, keepdims=True) / count
  ss = np.zeros_like(mean)
  for i in range(0, x.shape[0], _CHUNK):
    d = x[i:i + _CHUNK].astype(np.float64) - mean
    ss += (d * d).sum(axis=axes, keepdims=True)
  return mean, np.sqrt(ss / count)


def normalize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
  """(x - mean) / std as a new float32 array; features with zero std become exactly 0.

  Use with the train-set statistics from `moments` for both splits.
  """
  # A feature that is constant on the train set carries nothing the model could learn from.
  tol = 1e-12 * np.maximum(np.abs(mean), 1.0)
  scale = np.where(std > tol, 1.0 / np.where(std > tol, std, 1.0), 0.0)
  x = np.array(x, dtype=np.float32)
  for i in range(0, x.shape[0], _CHUNK):
    x[i:i + _CHUNK] = ((x[i:i + _CHUNK] - mean) * scale).astype(np.float32)
  return x
