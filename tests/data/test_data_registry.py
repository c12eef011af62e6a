"""The dataset registry: names, defaults, validation messages and load()."""
import inspect

import ml_collections
import numpy as np
import pytest

from dynamics import data
from dynamics.config_utils import ConfigError

NAMES = ["digits", "linear_teacher", "gaussian_clusters", "xor_clusters", "separable_binary",
         "teacher_student",
         "cifar10", "mnist", "modular", "cifar_digits", "ufm_samples", "matrix_sensing",
         "matrix_completion", "tensor_completion", "tubal_sensing"]


def test_names_and_exports():
  assert sorted(data.DATASETS) == sorted(NAMES)
  assert data.Dataset is data.base.Dataset


@pytest.mark.parametrize("name", NAMES)
def test_default_config_matches_builder_signature(name):
  builder, config_fn = data.DATASETS[name]
  cfg = data.default_config(name)
  assert isinstance(cfg, ml_collections.ConfigDict) and cfg.name == name
  params = inspect.signature(builder).parameters
  assert sorted(params) == sorted(k for k in cfg.keys() if k != "name")
  for k, p in params.items():
    default = p.default if not isinstance(p.default, tuple) else list(p.default)
    assert cfg[k] == default, k
  cfg.name = "changed"  # a fresh copy each time: mutating one must not change the defaults
  assert config_fn().name == name


def test_documented_defaults():
  d = data.default_config("digits")
  assert (d.seed, d.n_train, d.n_test, d.classes, d.standardize, d.flatten) == (
      0, 0, 297, None, True, True)
  lt = data.default_config("linear_teacher")
  assert lt.singular_values == [5, 4, 3, 2, 1] and lt.whiten and lt.noise == 0.0
  assert data.default_config("xor_clusters").label_noise == 0.1
  assert data.default_config("teacher_student").activation == "relu"
  assert data.default_config("cifar10").path == ""


@pytest.mark.parametrize("cfg, match", [
    (dict(name="imagenet"), "data.name='imagenet'.*'digits'.*'mnist'"),
    (dict(), "data.name=None.*allowed values"),
    (dict(name="digits", n_classes=3), "unknown field.*n_classes.*allowed fields.*classes"),
    (dict(name="digits", classes=[0, 10]), r"data.classes=\[0, 10\].*\[0, 9\]"),
    (dict(name="digits", n_test=-1), "data.n_test=-1.*integer"),
    (dict(name="digits", seed=1.5), "data.seed=1.5"),
    (dict(name="gaussian_clusters", num_classes=1), "data.num_classes=1.*>= 2"),
    (dict(name="xor_clusters", label_noise=1.5), r"data.label_noise=1.5.*\[0.0, 0.5\)"),
    (dict(name="linear_teacher", singular_values=[1] * 9), "data.singular_values"),
    (dict(name="teacher_student", activation="elu"), "data.activation='elu'.*'relu'"),
    (dict(name="cifar10", path=""), "data.path.*required.*data_batch_1.bin"),
])
def test_validate_errors(cfg, match):
  with pytest.raises(ConfigError, match=match):
    data.validate(ml_collections.ConfigDict(cfg))


def test_validate_does_not_touch_files():
  full = data.validate(dict(name="cifar10", path="/nonexistent/cifar"))
  assert full.n_train == 0 and full.path == "/nonexistent/cifar"
  with pytest.raises(FileNotFoundError, match="data.path.*data_batch_1.bin"):
    data.load(full)


def test_load_fills_defaults_and_forwards_fields():
  cfg = ml_collections.ConfigDict(dict(name="xor_clusters", n_train=8, n_test=4, dim=3))
  ds = data.load(cfg)
  assert ds.x_train.shape == (8, 3) and ds.x_test.shape == (4, 3) and ds.num_classes == 2
  direct = data.synthetic.xor_clusters(n_train=8, n_test=4, dim=3)
  np.testing.assert_array_equal(ds.x_train, direct.x_train)
  ds = data.load(dict(name="digits", n_train=100, n_test=50, classes=[1, 7]))
  assert ds.x_train.shape == (100, 64) and ds.num_classes == 2


def test_validate_completes_the_section_for_load():
  # How dynamics.experiment uses the registry: validate (the section completed), then load.
  cfg = ml_collections.ConfigDict(dict(name="linear_teacher", in_dim=4, out_dim=3, n_train=16,
                                       singular_values=[2.0, 1.0]))
  full = data.validate(cfg)
  ds = data.load(full)
  assert ds.x_train.shape == (16, 4) and ds.y_train.shape == (16, 3) and ds.out_dim == 3
  np.testing.assert_allclose(ds.info["S"], [2.0, 1.0])
