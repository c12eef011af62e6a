"""CIFAR-10 and MNIST from a LOCAL directory, in their standard binary formats (never downloads).

CIFAR-10 "binary version": data_batch_1.bin ... data_batch_5.bin and test_batch.bin, in
data.path or data.path/cifar-10-batches-bin/; each record is 1 label byte then 3072 pixel bytes
(1024 R, 1024 G, 1024 B, each a row-major 32x32 plane).
MNIST IDX: train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
t10k-labels-idx1-ubyte, each optionally gzipped (.gz), in data.path or data.path/MNIST/raw/.
Fashion-MNIST files use the same names and format and load the same way.

Pixels are scaled to [0, 1] and, with standardize=True, standardized with train-set statistics
(per channel for CIFAR-10, one global mean and std for MNIST). `seed` draws the random subsets
of n_train / n_test examples (0 = all) after the class subset, and shuffles their order.
"""
import gzip as gzip_lib
import itertools
import os
import struct

import numpy as np

from dynamics import config_utils as cu
from dynamics.data import common
from dynamics.data.base import Dataset
from dynamics.fields import Field

CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch.bin"
CIFAR10_FILES = CIFAR10_TRAIN_FILES + (CIFAR10_TEST_FILE,)
CIFAR10_SUBDIR = "cifar-10-batches-bin"
CIFAR10_CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                       "ship", "truck")
CIFAR10_RECORD = 1 + 32 * 32 * 3

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")
MNIST_SUBDIR = os.path.join("MNIST", "raw")
IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension

NUM_CLASSES = 10


class DataFilesNotFound(cu.ConfigError, FileNotFoundError):
  """The data files are not in data.path; the message names the files expected."""


def _expected(name: str) -> str:
  if name == "cifar10":
    return (f"{', '.join(CIFAR10_FILES)} (the CIFAR-10 binary version, extracted) in data.path "
            f"or data.path/{CIFAR10_SUBDIR}/")
  return (f"{', '.join(MNIST_FILES)} (each optionally .gz) in data.path or "
          f"data.path/{MNIST_SUBDIR}/")


def _fields(name: str) -> dict:
  """The fields of file dataset `name`; data.path has no usable default."""
  return dict(
      path=Field("", "the local directory of the files (never downloaded)",
                 check=lambda path, v: bool(v),
                 rule=f"the required local directory holding {_expected(name)}"),
      seed=Field(0, "seed of the random subsets and of their order", lo=0),
      n_train=Field(0, "training examples, a random subset (0 = all)", lo=0),
      n_test=Field(0, "test examples, a random subset (0 = all)", lo=0),
      classes=common.classes_field(NUM_CLASSES),
      standardize=Field(True, "standardize with the train-set statistics"),
      flatten=Field(True, "[N, H * W * C] inputs, else [N, H, W, C]"),
  )


def _not_found(name: str, path: str, partial: dict[str, list[str]]) -> DataFilesNotFound:
  """partial: directory -> the expected files missing there, for the directories holding some."""
  where = ""
  if partial:    # the directory closest to complete: say what it lacks
    d, missing = min(partial.items(), key=lambda kv: len(kv[1]))
    where = f" ({d!r} lacks {', '.join(missing)})"
  return DataFilesNotFound(f"data.path={path!r}: {name} files not found{where}; expected "
                           f"{_expected(name)}. This package never downloads data.")


def _find(name: str, path: str, subdir: str, names: tuple, suffixes=("",)) -> dict[str, str]:
  """Full paths of the files `names` (each with the first of `suffixes` present) in path or
  path/subdir; raises DataFilesNotFound naming what the closest directory lacks."""
  partial = {}
  for d in (path, os.path.join(path, subdir)):
    found = {}
    for f, s in itertools.product(names, suffixes):
      if f not in found and os.path.isfile(os.path.join(d, f + s)):
        found[f] = os.path.join(d, f + s)
    if len(found) == len(names):
      return found
    if found:
      partial[d] = [f for f in names if f not in found]
  raise _not_found(name, path, partial)


def read_cifar10_bin(filename: str) -> tuple[np.ndarray, np.ndarray]:
  """One CIFAR-10 binary batch as (images uint8 [N, 32, 32, 3] NHWC, labels uint8 [N])."""
  raw = np.fromfile(filename, dtype=np.uint8)
  if raw.size == 0 or raw.size % CIFAR10_RECORD:
    raise ValueError(f"{filename}: {raw.size} bytes is not a positive multiple of the "
                     f"{CIFAR10_RECORD}-byte CIFAR-10 record (1 label + 3072 pixels)")
  rec = raw.reshape(-1, CIFAR10_RECORD)
  labels = rec[:, 0]
  if labels.max() >= NUM_CLASSES:
    raise ValueError(f"{filename}: label {int(labels.max())} out of range [0, 9]; is this the "
                     f"CIFAR-10 binary version (not CIFAR-100)?")
  images = rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return np.ascontiguousarray(images), labels.copy()


def read_idx(filename: str, magic: int) -> np.ndarray:
  """An IDX file of unsigned bytes (optionally gzipped), checking its magic number and size."""
  try:
    with (gzip_lib.open if filename.endswith(".gz") else open)(filename, "rb") as f:
      buf = f.read()
  except (gzip_lib.BadGzipFile, EOFError) as e:
    raise ValueError(f"{filename}: not a readable gzip file ({e})") from e
  got = int.from_bytes(buf[:4], "big") if len(buf) >= 4 else None
  if got != magic:
    kind = "images" if magic == IDX_IMAGES_MAGIC else "labels"
    raise ValueError(f"{filename}: magic number {got} but expected {magic} (IDX {kind} file of "
                     f"unsigned bytes)")
  ndim = buf[3]
  header = 4 + 4 * ndim
  if len(buf) < header:
    raise ValueError(f"{filename}: truncated IDX header ({len(buf)} bytes, needs {header})")
  dims = tuple(int(d) for d in np.frombuffer(buf, dtype=">i4", count=ndim, offset=4))
  size = header + int(np.prod(dims))
  if len(buf) != size:
    raise ValueError(f"{filename}: {len(buf)} bytes but the IDX header's dimensions {dims} "
                     f"need {size}")
  return np.frombuffer(buf, dtype=np.uint8, offset=header).reshape(dims)


def _mnist_split(files: dict[str, str], prefix: str) -> tuple[np.ndarray, np.ndarray]:
  image_file = files[f"{prefix}-images-idx3-ubyte"]
  label_file = files[f"{prefix}-labels-idx1-ubyte"]
  images, labels = read_idx(image_file, IDX_IMAGES_MAGIC), read_idx(label_file, IDX_LABELS_MAGIC)
  if images.shape[0] != labels.shape[0]:
    raise ValueError(f"{image_file} holds {images.shape[0]} images but {label_file} holds "
                     f"{labels.shape[0]} labels")
  if labels.size and labels.max() >= NUM_CLASSES:
    raise ValueError(f"{label_file}: label {int(labels.max())} out of range [0, 9]")
  return images[..., None], labels


def _finish(train, test, seed, n_train, n_test, classes, standardize, flatten, axes,
            class_names) -> Dataset:
  """Class subset, random subsets, [0, 1] scaling, standardization and flattening."""
  (x_train, y_train), (x_test, y_test) = train, test
  x_train, y_train, kept = common.select_classes(x_train, y_train, classes, NUM_CLASSES)
  x_test, y_test, _ = common.select_classes(x_test, y_test, classes, NUM_CLASSES)
  r_train, r_test = np.random.default_rng(seed).spawn(2)
  i = common.take(x_train.shape[0], n_train, "n_train", r_train)
  j = common.take(x_test.shape[0], n_test, "n_test", r_test)
  # Subset while still uint8: 4x less memory than the float copies.
  x_train = x_train[i].astype(np.float32) / np.float32(255)
  x_test = x_test[j].astype(np.float32) / np.float32(255)
  y_train, y_test = y_train[i].astype(np.int32), y_test[j].astype(np.int32)
  mean, std = common.moments(x_train, axes)
  if standardize:
    x_train, x_test = common.normalize(x_train, mean, std), common.normalize(x_test, mean, std)
  if flatten:
    x_train, x_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
  info = dict(mean=np.squeeze(mean), std=np.squeeze(std),
              class_names=[class_names[k] for k in kept])
  return Dataset(x_train, y_train, x_test, y_test, len(kept), info)


@common.dataset("cifar10", _fields("cifar10"))
def load_cifar10(path, seed, n_train, n_test, classes, standardize, flatten) -> Dataset:
  """CIFAR-10 from the local binary files (see the module docstring).

  Returns:
    Dataset with x [N, 32, 32, 3] (or [N, 3072] in HWC order when flatten), int32 labels,
    info 'mean' and 'std' (per channel [3], of the [0, 1]-scaled train pixels) and
    'class_names'.
  """
  files = _find("cifar10", path, CIFAR10_SUBDIR, CIFAR10_FILES)
  parts = [read_cifar10_bin(files[f]) for f in CIFAR10_TRAIN_FILES]
  train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
  del parts
  test = read_cifar10_bin(files[CIFAR10_TEST_FILE])
  return _finish(train, test, seed, n_train, n_test, classes, standardize, flatten, (0, 1, 2),
                 CIFAR10_CLASS_NAMES)


@common.dataset("mnist", _fields("mnist"))
def load_mnist(path, seed, n_train, n_test, classes, standardize, flatten) -> Dataset:
  """MNIST from the local IDX files (see the module docstring).

  Returns:
    Dataset with x [N, 28, 28, 1] (or [N, 784] when flatten), int32 labels, info 'mean' and
    'std' (scalars, of the [0, 1]-scaled train pixels) and 'class_names'.
  """
  files = _find("mnist", path, MNIST_SUBDIR, MNIST_FILES, ("", ".gz"))
  train, test = _mnist_split(files, "train"), _mnist_split(files, "t10k")
  if train[0].shape[1:] != test[0].shape[1:]:
    raise ValueError(f"MNIST train images are {train[0].shape[1:3]} but test images are "
                     f"{test[0].shape[1:3]} (in {path})")
  return _finish(train, test, seed, n_train, n_test, classes, standardize, flatten,
                 (0, 1, 2, 3), tuple(str(k) for k in range(NUM_CLASSES)))


def write_cifar10_bin(path: str, images_uint8_nhwc: np.ndarray, labels: np.ndarray,
                      filename: str) -> str:
  """Writes images [N, 32, 32, 3] uint8 and labels [N] as a CIFAR-10 binary batch.

  Returns:
    The path of the written file, path/filename.
  """
  images, labels = np.asarray(images_uint8_nhwc), np.asarray(labels)
  if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
    raise ValueError(f"images must be uint8 [N, 32, 32, 3], got {images.dtype} {images.shape}")
  if labels.shape != images.shape[:1] or labels.min(initial=0) < 0 or labels.max(initial=0) > 255:
    raise ValueError(f"labels must be [N={images.shape[0]}] integers in [0, 255]")
  rec = np.empty((images.shape[0], CIFAR10_RECORD), dtype=np.uint8)
  rec[:, 0] = labels
  rec[:, 1:] = images.transpose(0, 3, 1, 2).reshape(images.shape[0], -1)  # CHW planes
  os.makedirs(path, exist_ok=True)
  out = os.path.join(path, filename)
  rec.tofile(out)
  return out


def write_mnist_idx(path: str, images_uint8: np.ndarray, labels: np.ndarray, prefix: str,
                    gzip: bool = False) -> tuple[str, str]:
  """Writes images [N, H, W] uint8 and labels [N] as IDX files `{prefix}-images-idx3-ubyte`
  and `{prefix}-labels-idx1-ubyte` (with .gz appended and gzipped when gzip=True).

  Returns:
    (images file, labels file).
  """
  images, labels = np.asarray(images_uint8), np.asarray(labels)
  if images.dtype != np.uint8 or images.ndim != 3:
    raise ValueError(f"images must be uint8 [N, H, W], got {images.dtype} {images.shape}")
  if labels.shape != images.shape[:1] or labels.min(initial=0) < 0 or labels.max(initial=0) > 255:
    raise ValueError(f"labels must be [N={images.shape[0]}] integers in [0, 255]")
  os.makedirs(path, exist_ok=True)
  blobs = {f"{prefix}-images-idx3-ubyte": struct.pack(">iiii", IDX_IMAGES_MAGIC, *images.shape)
                                          + images.tobytes(),
           f"{prefix}-labels-idx1-ubyte": struct.pack(">ii", IDX_LABELS_MAGIC, labels.size)
                                          + labels.astype(np.uint8).tobytes()}
  out = []
  for name, blob in blobs.items():
    fname = os.path.join(path, name + (".gz" if gzip else ""))
    with (gzip_lib.open(fname, "wb") if gzip else open(fname, "wb")) as f:
      f.write(blob)
    out.append(fname)
  return out[0], out[1]
