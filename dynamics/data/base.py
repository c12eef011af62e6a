"""The in-memory dataset every loader and generator returns."""
from typing import Any, NamedTuple

import numpy as np


class Dataset(NamedTuple):
  """Host arrays; the training loop casts them to the run's dtype and places them on devices.

  Attributes:
    x_train: [N, ...] float32 inputs.
    y_train: [N] int32 class labels (classification) or [N, k] float32 targets (regression).
    x_test: [M, ...] inputs (M may be 0).
    y_test: [M] or [M, k] labels / targets.
    num_classes: number of classes; 0 for regression.
    info: free-form metadata (e.g. the teacher matrix and its singular values).
  """
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int
  info: dict[str, Any]

  @property
  def out_dim(self) -> int:
    """Width of the model output this dataset asks for."""
    if self.num_classes:
      return self.num_classes
    return int(np.prod(self.y_train.shape[1:])) if self.y_train.ndim > 1 else 1

  @property
  def in_dim(self) -> int:
    return int(np.prod(self.x_train.shape[1:]))
