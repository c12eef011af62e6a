"""Modular arithmetic: labels by brute force, the split, table order, encodings, config errors."""
import ml_collections
import numpy as np
import pytest

from dynamics import data
from dynamics.config_utils import ConfigError
from dynamics.data import modular

OPS = ["add", "sub", "mul", "div", "poly"]


def brute(p, op):
  """Every (a, b, label) in table order, in plain Python."""
  rows = []
  for a in range(p):
    for b in range(1 if op == "div" else 0, p):
      if op == "add":
        c = (a + b) % p
      elif op == "sub":
        c = (a - b) % p
      elif op == "mul":
        c = (a * b) % p
      elif op == "div":
        c = next(c for c in range(p) if (c * b) % p == a)   # the c with c * b = a (mod p)
      else:
        c = (a * a + a * b + b * b) % p
      rows.append((a, b, c))
  return rows


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("p", [3, 7, 11])
def test_labels_match_brute_force(op, p):
  ds = modular.load_modular(p=p, op=op, train_frac=0.5)
  rows = brute(p, op)
  all_x, all_y = ds.info["all_x"], ds.info["all_y"]
  assert all_x.shape == (len(rows), 3) and all_x.dtype == np.int32
  assert all_y.shape == (len(rows),) and all_y.dtype == np.int32
  assert [tuple(r) for r in all_x.tolist()] == [(a, b, p) for a, b, _ in rows]
  assert all_y.tolist() == [c for _, _, c in rows]
  # the splits are rows of the table
  np.testing.assert_array_equal(ds.x_train, all_x[ds.info["train_idx"]])
  np.testing.assert_array_equal(ds.y_train, all_y[ds.info["train_idx"]])
  np.testing.assert_array_equal(ds.x_test, all_x[ds.info["test_idx"]])
  np.testing.assert_array_equal(ds.y_test, all_y[ds.info["test_idx"]])
  assert ds.num_classes == p and ds.out_dim == p and ds.in_dim == 3


def test_table_order_and_info():
  p = 7
  ds = modular.load_modular(p=p, op="add", train_frac=0.3)
  info = ds.info
  assert info["p"] == p and info["op"] == "add" and info["table_shape"] == (p, p)
  a, b = info["all_x"][:, 0], info["all_x"][:, 1]
  np.testing.assert_array_equal(a * p + b, np.arange(p * p))      # index = a * p + b
  table = info["all_y"].reshape(info["table_shape"])
  for i in range(p):
    for j in range(p):
      assert table[i, j] == (i + j) % p
  div = modular.load_modular(p=p, op="div").info
  assert div["table_shape"] == (p, p - 1) and div["b_values"].tolist() == list(range(1, p))
  np.testing.assert_array_equal(div["all_x"][:, 0] * (p - 1) + div["all_x"][:, 1] - 1,
                                np.arange(p * (p - 1)))


@pytest.mark.parametrize("p, op, frac", [(7, "add", 0.3), (11, "div", 0.5), (113, "add", 0.3),
                                         (5, "mul", 0.99)])
def test_split_sizes_and_disjointness(p, op, frac):
  ds = modular.load_modular(p=p, op=op, train_frac=frac)
  n = p * (p - 1) if op == "div" else p * p
  tr, te = ds.info["train_idx"], ds.info["test_idx"]
  assert tr.size == int(frac * n) and tr.size + te.size == n
  assert ds.x_train.shape[0] == tr.size and ds.x_test.shape[0] == te.size
  assert np.intersect1d(tr, te).size == 0
  np.testing.assert_array_equal(np.sort(np.concatenate([tr, te])), np.arange(n))
  assert np.all(np.diff(tr) > 0) and np.all(np.diff(te) > 0)       # sorted, in table order


def test_nanda_split_size():
  # Nanda et al.: int(0.3 * 113^2) = 3,830 training pairs
  assert modular.load_modular(p=113, train_frac=0.3).x_train.shape[0] == 3830


def test_deterministic_and_seeded():
  a = modular.load_modular(p=11, seed=3)
  b = data.load(dict(name="modular", p=11, seed=3))
  c = modular.load_modular(p=11, seed=4)
  for f in ("x_train", "y_train", "x_test", "y_test"):
    np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
  for k in ("train_idx", "test_idx", "all_x", "all_y"):
    np.testing.assert_array_equal(a.info[k], b.info[k])
  assert not np.array_equal(a.info["train_idx"], c.info["train_idx"])
  # the same seed gives the same split whatever the op or the encoding
  d = modular.load_modular(p=11, seed=3, op="poly", encoding="onehot")
  np.testing.assert_array_equal(a.info["train_idx"], d.info["train_idx"])


def test_onehot_encoding():
  p = 5
  tok = modular.load_modular(p=p, op="sub", train_frac=0.4)
  oh = modular.load_modular(p=p, op="sub", train_frac=0.4, encoding="onehot")
  assert oh.x_train.dtype == np.float32 and oh.x_train.shape == (tok.x_train.shape[0], 2 * p)
  assert oh.in_dim == 2 * p and oh.out_dim == p
  np.testing.assert_array_equal(oh.y_train, tok.y_train)
  np.testing.assert_array_equal(oh.y_test, tok.y_test)
  for x_oh, x_tok in ((oh.info["all_x"], tok.info["all_x"]), (oh.x_test, tok.x_test)):
    assert set(np.unique(x_oh).tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(x_oh.sum(axis=1), 2.0)
    np.testing.assert_array_equal(np.argmax(x_oh[:, :p], axis=1), x_tok[:, 0])
    np.testing.assert_array_equal(np.argmax(x_oh[:, p:], axis=1), x_tok[:, 1])


def test_registry_defaults():
  cfg = data.default_config("modular")
  assert (cfg.p, cfg.op, cfg.train_frac, cfg.seed, cfg.encoding) == (
      113, "add", 0.3, 0, "tokens")
  full = data.validate(ml_collections.ConfigDict(dict(name="modular", p=7)))
  assert full.p == 7 and full.op == "add"


@pytest.mark.parametrize("cfg, match", [
    (dict(p=9), r"data\.p=9 .*prime >= 3"),
    (dict(p=2), r"data\.p=2 .*prime >= 3"),
    (dict(p=1), r"data\.p=1 .*prime"),
    (dict(p=7.0), r"data\.p=7\.0 .*prime"),
    (dict(op="pow"), r"data\.op='pow'.*'add'.*'sub'.*'mul'.*'div'.*'poly'"),
    (dict(train_frac=0.0), r"data\.train_frac=0\.0 .*\(0\.0, 1\.0\)"),
    (dict(train_frac=1.0), r"data\.train_frac=1\.0 .*\(0\.0, 1\.0\)"),
    (dict(train_frac=-0.1), r"data\.train_frac=-0\.1"),
    (dict(train_frac=float("nan")), r"data\.train_frac=nan.*finite"),
    (dict(p=3, train_frac=0.01), r"data\.train_frac=0\.01 .*no training pair"),
    (dict(seed=-1), r"data\.seed=-1"),
    (dict(encoding="bits"), r"data\.encoding='bits'.*'tokens'.*'onehot'"),
    (dict(modulus=7), r"unknown field.*modulus.*allowed fields.*p"),
])
def test_config_errors_name_the_field(cfg, match):
  with pytest.raises(ConfigError, match=match):
    data.validate(dict(name="modular", **cfg))
  kw = {k: v for k, v in cfg.items() if k != "modulus"}
  if kw != cfg:
    return
  with pytest.raises(ConfigError, match=match):
    modular.load_modular(**kw)
