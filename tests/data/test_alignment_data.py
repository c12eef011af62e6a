"""The data of the two-layer ReLU alignment and XOR papers: separable_binary's margin mu and
assumptions (checked against a brute-force double loop), xor_clusters' signed labels and
the ranges of its fields."""
import itertools

import numpy as np
import pytest

from dynamics import data
from dynamics.config_utils import ConfigError
from dynamics.data import synthetic


def _brute_margin(x, y):
  x = np.asarray(x, np.float64)
  return min(y[i] * y[j] * (x[i] @ x[j]) / (np.linalg.norm(x[i]) * np.linalg.norm(x[j]))
             for i, j in itertools.product(range(len(x)), repeat=2))


def test_margin_on_constructed_data():
  # two points per class at +-30 degrees about e1 (positive) and -e1 (negative): the worst
  # signed pairs are 60 degrees apart, mu = cos(60 deg) = 0.5
  a = np.deg2rad(30.0)
  p = np.array([[np.cos(a), np.sin(a)], [np.cos(a), -np.sin(a)]])
  x, y = np.concatenate([p, -2 * p]), np.array([1.0, 1.0, -1.0, -1.0])
  assert synthetic.separation_margin(x, y) == pytest.approx(0.5, abs=1e-12)
  assert _brute_margin(x, y) == pytest.approx(0.5, abs=1e-12)
  x[3] = [1.0, 0.0]                       # a negative point inside the positive cone
  assert synthetic.separation_margin(x, y) == pytest.approx(-np.cos(a), abs=1e-12)
  assert _brute_margin(x, y) == pytest.approx(-np.cos(a), abs=1e-12)


@pytest.mark.parametrize("dim,spread,min_norm", [(2, 0.3, 1.0), (7, 0.5, 0.5), (40, 1.0, 0.2)])
def test_separable_binary_meets_the_assumptions(dim, spread, min_norm):
  ds = synthetic.separable_binary(seed=3, n_train=30, n_test=10, dim=dim, spread=spread,
                                  min_norm=min_norm)
  x, y = ds.x_train.astype(np.float64), ds.y_train.astype(np.float64)
  assert x.shape == (30, dim) and y.shape == (30,) and ds.num_classes == 0 and ds.out_dim == 1
  assert set(np.unique(y)) == {-1.0, 1.0} and np.sum(y > 0) == 15
  norms = np.linalg.norm(x, axis=1)
  assert np.all(norms <= 1 + 1e-6) and np.all(norms >= min_norm - 1e-6)
  mu = ds.info["mu"]
  assert mu > 0 and mu == pytest.approx(_brute_margin(x, y), abs=1e-12)
  np.testing.assert_allclose(ds.info["x_plus"], x[y > 0].sum(0), atol=1e-12)
  np.testing.assert_allclose(ds.info["x_minus"], x[y < 0].sum(0), atol=1e-12)
  assert ds.x_test.shape == (10, dim) and set(np.unique(ds.y_test)) == {-1.0, 1.0}


def test_separable_binary_is_in_the_registry_and_deterministic():
  a = data.load(dict(name="separable_binary", seed=2, dim=5))
  b = synthetic.separable_binary(seed=2, dim=5)
  np.testing.assert_array_equal(a.x_train, b.x_train)
  assert not np.array_equal(a.x_train, synthetic.separable_binary(seed=1, dim=5).x_train)


def test_inseparable_data_is_refused_naming_the_field():
  with pytest.raises(ConfigError, match=r"data.spread=5.0 .*not separable.*mu = .*lower "
                     r"data.spread"):
    synthetic.separable_binary(spread=5.0)


@pytest.mark.parametrize("cfg,match", [
    (dict(name="separable_binary", dim=1), r"data.dim=1.*>= 2"),
    (dict(name="separable_binary", min_norm=0.0), r"data.min_norm=0.0.*\(0.0, 1.0\]"),
    (dict(name="xor_clusters", label_noise=0.5), r"data.label_noise=0.5.*\[0.0, 0.5\)"),
    (dict(name="xor_clusters", label_noise=-0.1), r"data.label_noise=-0.1.*\[0.0, 0.5\)"),
    (dict(name="xor_clusters", dim=1), r"data.dim=1.*>= 2"),
])
def test_bad_fields_name_the_field_and_what_is_allowed(cfg, match):
  with pytest.raises(ConfigError, match=match):
    data.load(cfg)


def test_xor_signed_labels_are_the_class_labels_as_plus_minus_one():
  kw = dict(seed=4, n_train=40, n_test=20, dim=100, mean_norm=3.0, label_noise=0.2)
  a, b = synthetic.xor_clusters(**kw), synthetic.xor_clusters(signed=True, **kw)
  np.testing.assert_array_equal(a.x_train, b.x_train)
  np.testing.assert_array_equal(b.y_train, 2.0 * a.y_train - 1)
  np.testing.assert_array_equal(b.y_test, 2.0 * a.y_test - 1)
  assert b.y_train.dtype == np.float32 and b.num_classes == 0 and b.out_dim == 1
  assert np.sum(b.info["flipped"]) == 8
  # clusters +-mu1 carry +1, +-mu2 carry -1 (clean labels)
  k = b.info["train_clusters"]
  np.testing.assert_array_equal(2.0 * b.info["clean_train_labels"] - 1,
                                np.where(k < 2, 1.0, -1.0))
