"""Modular arithmetic c = a OP b (mod p): the grokking task (Power et al. 2022; Nanda et al. 2023).

Nanda, Chan, Lieberum, Smith, Steinhardt 2023 ("Progress measures for grokking via mechanistic
interpretability", Sec. 3): p = 113, the input is the three tokens [a, b, =] with '=' the token p
(vocabulary p + 1), the label is (a + b) mod p, and 30% of the p^2 pairs are trained on (full
batch), the rest are the test set.

Table order: every pair is enumerated a-major, index = a * n_b + (b - b_0), where b runs over
b_0..p-1 (b_0 = 0, n_b = p; for op='div' b_0 = 1, n_b = p - 1 since b must be invertible). For
every op but 'div' this is the index a * p + b of the p x p table. info['all_x'] / info['all_y']
hold every pair in that order and info['train_idx'] / info['test_idx'] (sorted) say which rows
form each split, so analysis code rebuilds the full table as info['all_y'].reshape(
info['table_shape']) and the train mask from train_idx.

The split: a permutation of the table indices drawn from np.random.default_rng(seed); its
first floor(train_frac * n_pairs) entries are the train set (as Nanda et al.'s int(): 3,830 of
12,769 pairs at p = 113, train_frac = 0.3). x_train = all_x[train_idx] (train
rows in table order, not in permutation order; full-batch training does not see the order and
minibatches are reshuffled by the training loop).

Encodings:
  'tokens': x int32 [N, 3] = [a, b, p] (p is the '=' token), for the transformer.
  'onehot': x float32 [N, 2p] = [onehot(a), onehot(b)], for the bias-free MLP and two-layer
            networks on the concatenated one-hot pair (Prieto et al. 2025; Gromov 2023).
"""
import math

import numpy as np

from dynamics import config_utils as cu
from dynamics.data import common
from dynamics.data.base import Dataset
from dynamics.fields import Field

NAME = "modular"
OPS = ("add", "sub", "mul", "div", "poly")
ENCODINGS = ("tokens", "onehot")


def is_prime(n: int) -> bool:
  """Trial division (p is at most a few thousand in practice)."""
  return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


FIELDS = dict(
    p=Field(113, "the modulus", lo=3, check=lambda path, v: is_prime(v),
            rule="a prime >= 3 (e.g. 113)"),
    op=Field("add", "a+b, a-b, a*b, a*b^(p-2) (b in 1..p-1) or a^2+ab+b^2", choices=OPS),
    train_frac=Field(0.3, "share of the pairs trained on: floor(train_frac * n_pairs)",
                     lo=0.0, hi=1.0, lo_open=True, hi_open=True),
    seed=Field(0, "seed of the permutation that picks the train pairs", lo=0),
    encoding=Field("tokens", "tokens (int32 [N, 3] = [a, b, p]) or onehot (float32 [N, 2p])",
                   choices=ENCODINGS),
)


def _check(c) -> None:
  n_pairs = c.p * (c.p - 1) if c.op == "div" else c.p * c.p
  if math.floor(c.train_frac * n_pairs) < 1:
    raise cu.ConfigError(f"data.train_frac={c.train_frac!r} is not allowed with data.p={c.p}: "
                         f"floor(train_frac * {n_pairs} pairs) = 0 leaves no training pair")


def table(p: int, op: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(a, b, c) int64 arrays of every pair in table order, with c = a OP b mod p."""
  b_values = np.arange(1, p) if op == "div" else np.arange(p)
  a, b = np.meshgrid(np.arange(p), b_values, indexing="ij")   # a-major: index a * n_b + j
  a, b = a.reshape(-1).astype(np.int64), b.reshape(-1).astype(np.int64)
  if op == "div":   # Fermat: b^(p-2) is the inverse of b mod a prime p
    return a, b, np.mod(a * np.array([pow(int(v), p - 2, p) for v in b], np.int64), p)
  c = {"add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b,
       "poly": lambda: a * a + a * b + b * b}[op]()
  return a, b, np.mod(c, p)


def encode(a: np.ndarray, b: np.ndarray, p: int, encoding: str) -> np.ndarray:
  """The model inputs of the pairs (a, b): int32 tokens [N, 3] or float32 one-hots [N, 2p]."""
  n = a.shape[0]
  if encoding == "tokens":
    return np.stack([a, b, np.full(n, p)], axis=1).astype(np.int32)
  x = np.zeros((n, 2 * p), dtype=np.float32)
  x[np.arange(n), a] = 1.0
  x[np.arange(n), p + b] = 1.0
  return x


@common.dataset(NAME, FIELDS, _check)
def load_modular(p, op, train_frac, seed, encoding) -> Dataset:
  """All pairs (a, b) of Z_p with labels a OP b mod p, split into train and test.

  Returns:
    A Dataset with num_classes = p, int32 labels in [0, p), and info 'p', 'op', 'encoding',
    'table_shape' ((p, p), or (p, p - 1) for 'div'), 'b_values' (the b of each table column),
    'train_idx' / 'test_idx' (sorted int64 indices into the table order) and 'all_x' / 'all_y'
    (every pair in table order, same encoding).
  """
  a, b, c = table(p, op)
  n = a.shape[0]
  n_train = math.floor(train_frac * n)
  perm = np.random.default_rng(seed).permutation(n)
  train_idx, test_idx = np.sort(perm[:n_train]), np.sort(perm[n_train:])
  all_x, all_y = encode(a, b, p, encoding), c.astype(np.int32)
  b_values = np.arange(1, p) if op == "div" else np.arange(p)
  info = dict(p=p, op=op, encoding=encoding, table_shape=(p, b_values.size), b_values=b_values,
              train_idx=train_idx, test_idx=test_idx, all_x=all_x, all_y=all_y)
  return Dataset(all_x[train_idx], all_y[train_idx], all_x[test_idx], all_y[test_idx], p, info)
