"""Helpers shared by the loaders: the declaration of a dataset, class subsets, splits and
standardization.

Each dataset declares its fields once (dynamics.fields) and its builder takes them as arguments:
`dataset(name, FIELDS, check)` gives the builder its defaults, its checks (ConfigError naming
`data.<field>` and what is allowed, before any data is read) and its registry entries.
"""
import functools
import inspect
from typing import Any, Callable, Optional, Sequence

import numpy as np

from dynamics import config_utils as cu
from dynamics import fields
from dynamics.fields import Field

# Rows per chunk when computing or applying statistics on large (CIFAR-sized) arrays.
_CHUNK = 4096

# The seed field of the generated datasets.
SEED = Field(0, "seed of every draw (split into independent streams)", lo=0)


def classes_field(num_classes: int, default: Optional[list[int]] = None) -> Field:
  """The `classes` field: class ids kept (relabelled 0, 1, ... in list order)."""
  return Field(default, "class ids kept, relabelled 0, 1, ... in this order (None: all)",
               kind="list", item="int", lo=0, hi=num_classes - 1, min_len=2,
               check=lambda path, v: len(set(v)) == len(v),
               rule=f"a list of at least 2 distinct integers in [0, {num_classes - 1}]")


def dataset(name: str, schema: fields.Schema, check: Callable[[Any], None] = lambda c: None):
  """Makes fn(**fields) -> Dataset the builder of dataset `name`, whose fields are `schema`.

  The builder takes the fields in the schema's order or by name, with the schema's defaults,
  and checks every call: each field, then the cross-field `check(cfg)` (cheap: it never reads
  data files). It carries `name`, `FIELDS`, `default_config()` and `validate(cfg)` (the data
  section completed by the defaults and checked), which the registry uses.
  """
  signature = inspect.Signature([
      inspect.Parameter(k, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=f.default)
      for k, f in schema.items()])
  validate, default_config = fields.declare("data", schema, check, name=name)

  def wrap(fn):
    @functools.wraps(fn)
    def build(*args, **kwargs):
      cfg = validate(signature.bind(*args, **kwargs).arguments)
      return fn(**{k: cfg[k] for k in schema})
    build.__signature__ = signature
    build.name, build.FIELDS = name, schema
    build.validate, build.default_config = validate, default_config
    return build
  return wrap


def orthonormal(rng: np.random.Generator, d: int, k: int) -> np.ndarray:
  """[d, k] with orthonormal columns, Haar-distributed (QR of a Gaussian, signs fixed)."""
  q, r = np.linalg.qr(rng.standard_normal((d, d)))
  return (q * np.sign(np.diag(r)))[:, :k]


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
    raise cu.ConfigError(f"data.{name}={n} is not allowed; only {n_avail} examples are "
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
