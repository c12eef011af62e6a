"""'cifar_digits': the digits dressed as a CIFAR-10 subset, checked against a direct
recomputation."""
import numpy as np
import pytest
from sklearn import datasets

from dynamics import data
from dynamics.config_utils import ConfigError
from dynamics.data import digits

MEAN = np.array([0.4914, 0.4822, 0.4465])
STD = np.array([0.2470, 0.2435, 0.2616])


def _expected(img8x8):
  """An 8x8 digit (0..16) as the normalized [3, 32, 32] CIFAR-style tensor, pixel by pixel."""
  out = np.empty((3, 32, 32))
  for c in range(3):
    for i in range(32):
      for j in range(32):
        out[c, i, j] = (img8x8[i // 4, j // 4] * 255 / 16 - 255 * MEAN[c]) / (255 * STD[c])
  return out


def test_layout_classes_shift_and_normalization():
  ds = data.load(dict(name="cifar_digits"))
  assert ds.x_train.shape == (1000, 3072) and ds.x_test.shape == (0, 3072)
  assert ds.num_classes == 4 and np.bincount(ds.y_train).tolist() == [250] * 4
  raw = datasets.load_digits()
  for label, k in enumerate((0, 1, 2, 3)):
    orig = raw.images[raw.target == k]                  # [n_k, 8, 8], dataset order
    block = ds.x_train[250 * label:250 * (label + 1)].reshape(250, 3, 32, 32)
    assert np.all(ds.y_train[250 * label:250 * (label + 1)] == label)
    np.testing.assert_allclose(block[0], _expected(orig[0]), rtol=1e-6, atol=1e-6)
    n = orig.shape[0]
    shifted = np.zeros((8, 8))
    shifted[:, 1:] = orig[0][:, :-1]                    # one pixel to the right, column 0 empty
    np.testing.assert_allclose(block[n], _expected(shifted), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(block[249], _expected(
        np.pad(orig[249 - n], ((0, 0), (1, 0)))[:, :8]), rtol=1e-6, atol=1e-6)


def test_unflattened_and_config_errors():
  ds = digits.load_cifar_digits(classes=(7, 3), per_class=10, flatten=False)
  assert ds.x_train.shape == (20, 3, 32, 32) and ds.info["class_names"] == ["7", "3"]
  # three identical channels up to their own normalization
  x = ds.x_train
  np.testing.assert_allclose(x[:, 1] * STD[1] + MEAN[1], x[:, 0] * STD[0] + MEAN[0], atol=1e-6)
  with pytest.raises(ConfigError, match=r"data.per_class=1000 .*integer in \[1, "):
    data.load(dict(name="cifar_digits", per_class=1000))
  with pytest.raises(ConfigError, match="data.classes=None is not allowed"):
    data.load(dict(name="cifar_digits", classes=None))
