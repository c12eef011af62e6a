"""The digits loader: split sizes, determinism, standardization, class subsets."""
import numpy as np
import pytest
from sklearn import datasets

from dynamics.config_utils import ConfigError
from dynamics.data import digits


@pytest.fixture(scope="module")
def raw():
  d = datasets.load_digits()
  return d.data.astype(np.float32), d.target


def test_default_shapes_and_dtypes():
  ds = digits.load_digits()
  assert ds.x_train.shape == (1500, 64) and ds.x_test.shape == (297, 64)
  assert ds.y_train.shape == (1500,) and ds.y_test.shape == (297,)
  assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
  assert ds.num_classes == 10 and ds.in_dim == 64 and ds.out_dim == 10
  assert set(np.unique(ds.y_train)) == set(range(10))
  assert ds.info["class_names"] == [str(k) for k in range(10)]


def test_split_is_a_partition_of_the_raw_data(raw):
  ds = digits.load_digits(standardize=False)
  rows = np.concatenate([ds.x_train, ds.x_test])
  labels = np.concatenate([ds.y_train, ds.y_test])
  order = np.lexsort(rows.T)
  raw_order = np.lexsort(raw[0].T)
  np.testing.assert_array_equal(rows[order], raw[0][raw_order])
  np.testing.assert_array_equal(labels[order], raw[1][raw_order])


def test_deterministic_from_seed():
  a, b, c = digits.load_digits(seed=3), digits.load_digits(seed=3), digits.load_digits(seed=4)
  for f in ("x_train", "y_train", "x_test", "y_test"):
    np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
  assert not np.array_equal(a.y_train, c.y_train)
  assert not np.array_equal(a.x_test, c.x_test)


def test_n_train_subset_keeps_the_test_set():
  full, small = digits.load_digits(standardize=False), digits.load_digits(n_train=100,
                                                                          standardize=False)
  assert small.x_train.shape == (100, 64)
  np.testing.assert_array_equal(small.x_test, full.x_test)
  np.testing.assert_array_equal(small.x_train, full.x_train[:100])


def test_standardization_uses_train_statistics(raw):
  ds = digits.load_digits()
  x = ds.x_train.astype(np.float64)
  std = ds.info["feature_std"]
  live = std > 0
  assert 0 < live.sum() < 64  # digits has pixels that are always 0
  np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-5)
  np.testing.assert_allclose(x[:, live].std(0), 1.0, atol=1e-5)
  # Pixels constant on the train set are exactly 0 in both splits.
  assert np.all(ds.x_train[:, ~live] == 0) and np.all(ds.x_test[:, ~live] == 0)
  # The test set is transformed with the train statistics, not its own.
  plain = digits.load_digits(standardize=False)
  expected = (plain.x_test[:, live] - ds.info["feature_mean"][live]) / std[live]
  np.testing.assert_allclose(ds.x_test[:, live], expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(ds.info["feature_mean"], plain.x_train.mean(0), rtol=1e-6)
  assert abs(ds.x_test[:, live].mean()) > 1e-4  # not standardized on its own statistics


def test_class_subset_is_relabelled(raw):
  ds = digits.load_digits(classes=[8, 3], n_test=50, standardize=False)
  assert ds.num_classes == 2 and ds.info["class_names"] == ["8", "3"]
  assert set(np.unique(ds.y_train)) == {0, 1} and set(np.unique(ds.y_test)) == {0, 1}
  n_kept = int(np.isin(raw[1], [3, 8]).sum())
  assert ds.x_train.shape[0] + ds.x_test.shape[0] == n_kept and ds.x_test.shape[0] == 50
  lookup = {}
  for row, t in zip(raw[0], raw[1]):
    lookup.setdefault(row.tobytes(), set()).add(int(t))
  for x, y in zip(ds.x_train, ds.y_train):
    assert [8, 3][y] in lookup[x.tobytes()]


def test_unflattened_images():
  flat, img = digits.load_digits(), digits.load_digits(flatten=False)
  assert img.x_train.shape == (1500, 8, 8, 1) and img.x_test.shape == (297, 8, 8, 1)
  np.testing.assert_array_equal(img.x_train.reshape(1500, 64), flat.x_train)
  assert img.info["feature_std"].shape == (8, 8, 1)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_test=1797), "data.n_test"),
    (dict(classes=[0, 1], n_test=400), "data.n_test"),
    (dict(n_train=1501), "data.n_train=1501.*1500"),
    (dict(classes=[0, 10]), r"data.classes.*\[0, 9\]"),
    (dict(classes=[2]), "data.classes"),
    (dict(classes=[2, 2]), "data.classes"),
    (dict(standardize="yes"), "data.standardize.*True, False"),
])
def test_bad_values(kwargs, match):
  with pytest.raises(ConfigError, match=match):
    digits.load_digits(**kwargs)
