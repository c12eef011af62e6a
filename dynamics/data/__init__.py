"""Dataset registry: every dataset is a name, a builder and the fields it declares once
(DATASETS[name] = (builder, default_config)).

Datasets: 'digits' (scikit-learn's bundled 8x8 digits), 'cifar_digits' (digits dressed as a
CIFAR-10 subset), 'linear_teacher', 'gaussian_clusters', 'xor_clusters', 'separable_binary',
'teacher_student' (synthetic), 'ufm_samples' (the unconstrained features model's one-hot
samples), 'modular' (modular arithmetic, grokking), 'cifar10', 'mnist' (local files in data.path),
'matrix_sensing', 'matrix_completion' (low-rank matrix recovery), 'tensor_completion',
'tubal_sensing' (low-rank tensor recovery).
"""
from typing import Any, Callable

import ml_collections

from dynamics import config_utils as cu
from dynamics.data import digits, files, matrix_sensing, modular, synthetic, tensor
from dynamics.data.base import Dataset

# Each builder carries its name, FIELDS, default_config and validate (data.common.dataset).
_BUILDERS = (digits.load_digits, digits.load_cifar_digits, synthetic.linear_teacher,
             synthetic.gaussian_clusters, synthetic.xor_clusters, synthetic.separable_binary,
             synthetic.teacher_student, synthetic.ufm_samples, modular.load_modular,
             files.load_cifar10, files.load_mnist,
             matrix_sensing.matrix_sensing, matrix_sensing.matrix_completion,
             tensor.tensor_completion, tensor.tubal_sensing)
DATASETS: dict[str, tuple[Callable[..., Dataset], Callable[[], ml_collections.ConfigDict]]] = {
    b.name: (b, b.default_config) for b in _BUILDERS}

__all__ = ["DATASETS", "Dataset", "default_config", "validate", "fields_of", "load"]


def _builder(name: Any) -> Callable[..., Dataset]:
  return DATASETS[cu.check_choice("data.name", name, list(DATASETS))][0]


def default_config(name: str) -> ml_collections.ConfigDict:
  """All fields of dataset `name` with their default values, including `name`."""
  return _builder(name).default_config()


def fields_of(name: str) -> dict:
  """The declared fields of dataset `name` (dynamics.fields; `name` itself not included)."""
  return _builder(name).FIELDS


def validate(cfg: Any) -> ml_collections.ConfigDict:
  """The data section `cfg` (ConfigDict or dict) completed with the defaults of its dataset;
  raises ConfigError for an unknown data.name, an unknown field or a bad value."""
  return _builder(cu.get(cfg, "name")).validate(cfg)


def load(cfg: Any) -> Dataset:
  """The dataset described by the data config `cfg` (validated, defaults filled in)."""
  full = validate(cfg)
  return _builder(full.name)(**{k: full[k] for k in full.keys() if k != "name"})
