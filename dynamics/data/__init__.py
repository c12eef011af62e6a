"""Dataset registry: every dataset is a name, a builder and a config of its fields.

  DATASETS[name] = (builder_fn, default_config_fn)
  default_config(name) -> ConfigDict   all fields of dataset `name` with defaults, incl. `name`
  validate(cfg) -> ConfigDict          raises ConfigError naming `data.<field>`; returns cfg
                                       completed with the defaults
  load(cfg) -> Dataset                 validate, fill defaults, call the builder

Datasets: 'digits' (scikit-learn's bundled 8x8 digits), 'cifar_digits' (digits dressed as a
CIFAR-10 subset), 'linear_teacher', 'gaussian_clusters', 'xor_clusters', 'teacher_student'
(synthetic), 'modular' (modular arithmetic, grokking), 'cifar10', 'mnist' (local files in
data.path).
"""
from typing import Any, Callable

import ml_collections

from dynamics import config_utils as cu
from dynamics.data import digits, files, modular, synthetic
from dynamics.data.base import Dataset

DATASETS: dict[str, tuple[Callable[..., Dataset], Callable[[], ml_collections.ConfigDict]]] = {
    "digits": (digits.load_digits, digits.default_config),
    "cifar_digits": (digits.load_cifar_digits, digits.cifar_digits_config),
    "linear_teacher": (synthetic.linear_teacher, synthetic.config_fn("linear_teacher")),
    "gaussian_clusters": (synthetic.gaussian_clusters, synthetic.config_fn("gaussian_clusters")),
    "xor_clusters": (synthetic.xor_clusters, synthetic.config_fn("xor_clusters")),
    "teacher_student": (synthetic.teacher_student, synthetic.config_fn("teacher_student")),
    "modular": (modular.load_modular, modular.default_config),
    "cifar10": (files.load_cifar10, files.config_fn("cifar10")),
    "mnist": (files.load_mnist, files.config_fn("mnist")),
}

# Value checks on a complete set of fields (without `name`); cheap, never read data files.
_CHECKS: dict[str, Callable[[dict], None]] = {
    "digits": digits.check, "cifar_digits": digits.check_cifar_digits, **synthetic.CHECKS,
    "modular": modular.check, **files.CHECKS}

__all__ = ["DATASETS", "Dataset", "default_config", "validate", "load"]


def _name(cfg: Any) -> str:
  name = cu.get(cfg, "name")
  return cu.check_choice("data.name", name, list(DATASETS))


def default_config(name: str) -> ml_collections.ConfigDict:
  """All fields of dataset `name` with their default values, including `name`."""
  return DATASETS[cu.check_choice("data.name", name, list(DATASETS))][1]()


def validate(cfg: Any) -> ml_collections.ConfigDict:
  """Raises ConfigError for an unknown data.name, an unknown field or a bad value.

  Args:
    cfg: the data section (ConfigDict or dict); fields left out take their defaults.

  Returns:
    cfg completed with the defaults of its dataset.
  """
  name = _name(cfg)
  defaults = default_config(name)
  cu.check_fields("data", cfg, defaults)
  fields = {k: defaults[k] for k in defaults.keys()}
  fields.update({k: cfg[k] for k in cfg.keys()})
  del fields["name"]
  _CHECKS[name](fields)
  try:
    return cu.with_defaults("data", cfg, defaults)
  except TypeError as e:  # a type the checks let through but ConfigDict cannot store
    raise cu.ConfigError(f"data: {e}") from e


def load(cfg: Any) -> Dataset:
  """The dataset described by the data config `cfg` (validated, defaults filled in)."""
  full = validate(cfg)
  kwargs = {k: full[k] for k in full.keys() if k != "name"}
  return DATASETS[full.name][0](**kwargs)
