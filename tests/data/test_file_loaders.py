"""CIFAR-10 binary and MNIST IDX readers, against small files written in those formats."""
import gzip
import os

import numpy as np
import pytest

from dynamics import data
from dynamics.config_utils import ConfigError
from dynamics.data import files

N_PER_BATCH, N_TEST = 4, 6


def _images(rng, n, shape):
  x = rng.integers(0, 256, size=(n,) + shape, dtype=np.uint8)
  x[:, 0, 0, ...] = 0
  return x


@pytest.fixture
def cifar(tmp_path):
  """Five train batches and a test batch; image i has a unique id in pixel (0, 0, R)."""
  rng = np.random.default_rng(0)
  n = 5 * N_PER_BATCH
  images = _images(rng, n + N_TEST, (32, 32, 3))
  images[:, 0, 0, 0] = np.arange(n + N_TEST)
  labels = np.arange(n + N_TEST) % 10
  for b in range(5):
    sl = slice(b * N_PER_BATCH, (b + 1) * N_PER_BATCH)
    files.write_cifar10_bin(str(tmp_path), images[sl], labels[sl], f"data_batch_{b + 1}.bin")
  files.write_cifar10_bin(str(tmp_path), images[n:], labels[n:], "test_batch.bin")
  return tmp_path, images[:n], labels[:n], images[n:], labels[n:]


def _by_id(x, ids_scale=255.0):
  """Indices that sort loaded [0,1]-scaled images back into writing order (by their id pixel)."""
  return np.argsort(np.rint(x[:, 0, 0, 0] * ids_scale))


def test_cifar_bytes_on_disk(tmp_path):
  img = np.zeros((1, 32, 32, 3), np.uint8)
  img[0, 2, 5, 1] = 77  # row 2, column 5, green
  img[0, 31, 31, 2] = 200  # last blue pixel
  fname = files.write_cifar10_bin(str(tmp_path), img, np.array([7]), "one.bin")
  raw = open(fname, "rb").read()
  assert len(raw) == 3073 and raw[0] == 7
  assert raw[1 + 1024 + 2 * 32 + 5] == 77 and raw[3072] == 200
  assert sum(raw[1:]) == 277
  x, y = files.read_cifar10_bin(fname)
  np.testing.assert_array_equal(x, img)
  np.testing.assert_array_equal(y, [7])


def test_cifar_round_trip(cifar):
  path, x_tr, y_tr, x_te, y_te = cifar
  ds = files.load_cifar10(str(path), standardize=False, flatten=False)
  assert ds.x_train.shape == (20, 32, 32, 3) and ds.x_test.shape == (N_TEST, 32, 32, 3)
  assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
  assert ds.num_classes == 10 and ds.info["class_names"][0] == "airplane"
  order = _by_id(ds.x_train)
  np.testing.assert_array_equal(ds.x_train[order], x_tr.astype(np.float32) / np.float32(255))
  np.testing.assert_array_equal(ds.y_train[order], y_tr)
  order = _by_id(ds.x_test)
  np.testing.assert_array_equal(ds.x_test[order] * 255, x_te.astype(np.float32))
  np.testing.assert_array_equal(ds.y_test[order], y_te)


def test_cifar_subfolder_flatten_and_standardize(cifar, tmp_path):
  path = cifar[0]
  os.makedirs(tmp_path / "cifar-10-batches-bin", exist_ok=True)
  for f in files.CIFAR10_FILES:
    os.replace(path / f, tmp_path / "cifar-10-batches-bin" / f)
  img = files.load_cifar10(str(tmp_path), standardize=False, flatten=False)
  flat = files.load_cifar10(str(tmp_path), standardize=False)
  assert flat.x_train.shape == (20, 3072)
  np.testing.assert_array_equal(flat.x_train[:, :3], img.x_train[:, 0, 0, :])  # HWC order
  np.testing.assert_array_equal(flat.x_train, img.x_train.reshape(20, -1))
  std = files.load_cifar10(str(tmp_path), flatten=False)
  x = std.x_train.astype(np.float64)
  np.testing.assert_allclose(x.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
  np.testing.assert_allclose(x.std(axis=(0, 1, 2)), 1.0, atol=1e-5)
  assert std.info["mean"].shape == (3,)
  np.testing.assert_allclose(std.info["mean"], img.x_train.mean(axis=(0, 1, 2)), rtol=1e-5)


def test_cifar_subsets_classes_and_seed(cifar):
  path = str(cifar[0])
  a = files.load_cifar10(path, n_train=5, n_test=3, seed=1)
  b = files.load_cifar10(path, n_train=5, n_test=3, seed=1)
  c = files.load_cifar10(path, n_train=5, n_test=3, seed=2)
  assert a.x_train.shape == (5, 3072) and a.x_test.shape == (3, 3072)
  np.testing.assert_array_equal(a.x_train, b.x_train)
  assert not np.array_equal(a.x_train, c.x_train)
  sub = files.load_cifar10(path, classes=[7, 2], standardize=False, flatten=False)
  ids = np.rint(sub.x_train[:, 0, 0, 0] * 255).astype(int)
  np.testing.assert_array_equal(sub.y_train, np.where(ids % 10 == 7, 0, 1))
  assert set(ids % 10) == {2, 7} and sub.num_classes == 2
  assert sub.info["class_names"] == ["horse", "bird"]
  with pytest.raises(ConfigError, match="data.n_train=21.*20"):
    files.load_cifar10(path, n_train=21)


def test_cifar_missing_and_corrupt_files(cifar):
  path = cifar[0]
  os.remove(path / "data_batch_3.bin")
  with pytest.raises(FileNotFoundError, match="data_batch_3.bin") as e:
    files.load_cifar10(str(path))
  assert "data.path" in str(e.value) and "test_batch.bin" in str(e.value)
  assert f"{str(path)!r} lacks data_batch_3.bin)" in str(e.value)     # only the missing one
  assert isinstance(e.value, ConfigError)
  with open(path / "data_batch_3.bin", "wb") as f:
    f.write(b"\x00" * 3000)
  with pytest.raises(ValueError, match="data_batch_3.bin.*3073"):
    files.load_cifar10(str(path))


def _write_mnist(path, gz, n_train=12, n_test=5, hw=(28, 28)):
  rng = np.random.default_rng(1)
  x = _images(rng, n_train + n_test, hw)
  x[:, 0, 0] = np.arange(n_train + n_test)
  y = rng.integers(0, 10, n_train + n_test)
  files.write_mnist_idx(str(path), x[:n_train], y[:n_train], "train", gzip=gz)
  files.write_mnist_idx(str(path), x[n_train:], y[n_train:], "t10k", gzip=gz)
  return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def test_mnist_header_bytes(tmp_path):
  x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  fi, fl = files.write_mnist_idx(str(tmp_path), x, np.array([4, 9]), "train")
  raw = open(fi, "rb").read()
  assert raw[:4] == b"\x00\x00\x08\x03" and raw[4:16] == bytes([0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4])
  assert raw[16:] == bytes(range(24))
  assert open(fl, "rb").read() == b"\x00\x00\x08\x01\x00\x00\x00\x02\x04\x09"
  np.testing.assert_array_equal(files.read_idx(fi, files.IDX_IMAGES_MAGIC), x)
  fz, _ = files.write_mnist_idx(str(tmp_path), x, np.array([4, 9]), "t10k", gzip=True)
  assert fz.endswith(".gz") and gzip.open(fz).read() == raw


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_round_trip(tmp_path, gz):
  x_tr, y_tr, x_te, y_te = _write_mnist(tmp_path, gz)
  ds = files.load_mnist(str(tmp_path), standardize=False, flatten=False)
  assert ds.x_train.shape == (12, 28, 28, 1) and ds.x_test.shape == (5, 28, 28, 1)
  order = _by_id(ds.x_train)
  np.testing.assert_array_equal(ds.x_train[order, ..., 0] * 255, x_tr.astype(np.float32))
  np.testing.assert_array_equal(ds.y_train[order], y_tr)
  order = _by_id(ds.x_test)
  np.testing.assert_array_equal(ds.y_test[order], y_te)
  flat = files.load_mnist(str(tmp_path))
  assert flat.x_train.shape == (12, 784) and flat.in_dim == 784
  x = flat.x_train.astype(np.float64)
  assert abs(x.mean()) < 1e-5 and abs(x.std() - 1) < 1e-5  # one global mean and std
  assert np.ndim(flat.info["mean"]) == 0
  assert abs(x.mean(0)).max() > 0.05  # ... so per pixel it is not centred


def test_mnist_via_registry_and_subfolder(tmp_path):
  _write_mnist(tmp_path / "MNIST" / "raw", gz=True)
  ds = data.load(dict(name="mnist", path=str(tmp_path), n_train=4, classes=[3, 5, 1]))
  assert ds.x_train.shape[0] <= 4 and ds.num_classes == 3
  assert ds.info["class_names"] == ["3", "5", "1"]


def test_mnist_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte") as e:
    data.load(dict(name="mnist", path=str(tmp_path)))
  assert "data.path" in str(e.value) and "t10k-labels-idx1-ubyte" in str(e.value)
  with pytest.raises(ConfigError, match="data.path.*required.*t10k-images-idx3-ubyte"):
    data.load(dict(name="mnist"))
  _write_mnist(tmp_path, gz=False)
  os.rename(tmp_path / "t10k-labels-idx1-ubyte", tmp_path / "moved")
  with pytest.raises(FileNotFoundError) as e:
    files.load_mnist(str(tmp_path))
  assert f"{str(tmp_path)!r} lacks t10k-labels-idx1-ubyte)" in str(e.value)
  os.rename(tmp_path / "moved", tmp_path / "t10k-labels-idx1-ubyte")
  fname = tmp_path / "train-images-idx3-ubyte"
  raw = bytearray(fname.read_bytes())
  raw[3] = 0x01  # images file claiming to be a labels file
  fname.write_bytes(bytes(raw))
  with pytest.raises(ValueError, match="train-images-idx3-ubyte.*magic number 2049.*2051"):
    files.load_mnist(str(tmp_path))
  raw[3] = 0x03
  fname.write_bytes(bytes(raw[:-10]))  # truncated
  with pytest.raises(ValueError, match="train-images-idx3-ubyte.*bytes"):
    files.load_mnist(str(tmp_path))
  fname.write_bytes(bytes(raw))
  files.write_mnist_idx(str(tmp_path), np.zeros((3, 28, 28), np.uint8), np.zeros(3), "x")
  os.replace(tmp_path / "x-labels-idx1-ubyte", tmp_path / "t10k-labels-idx1-ubyte")
  with pytest.raises(ValueError, match="5 images.*3 labels"):
    files.load_mnist(str(tmp_path))
