"""Numpy definitions of the t-product and t-transpose (Kilmer & Martin), the references the tensor
tests compare dynamics.tensor, the tubal model and the tubal data against."""
import numpy as np


def t_product_loop(a, b):
  """C[:, :, l] = sum_j A[:, :, (l - j) mod k] B[:, :, j] (circular convolution of the tubes)."""
  k = a.shape[2]
  return np.stack([sum(a[:, :, (l - j) % k] @ b[:, :, j] for j in range(k)) for l in range(k)],
                  axis=2)


def t_transpose_def(a):
  """Each frontal slice transposed, slices 2..k in reverse order."""
  k = a.shape[2]
  return np.stack([a[:, :, (-j) % k].T for j in range(k)], axis=2)
