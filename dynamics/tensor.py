"""Tensor algebra for the tensor-factorization models: CP and the tubal (t-product) algebra.

Pure JAX; every function acts on the trailing axes and maps over any leading (batch) axes,
which must then agree between operands (no broadcasting of batch axes).

CP (Kolda & Bader 2009; Razin, Maman, Cohen 2021): factor matrices A_n [..., d_n, R], n = 1..N,
define W = sum_r a_r^(1) o ... o a_r^(N) [..., d_1, ..., d_N] (o: outer product). The r-th
component's Frobenius norm is prod_n ||a_r^(n)|| (the norm of an outer product is the product
of the norms).

Tubal (Kilmer & Martin 2011; Karnik, Veselovska, Iwen, Krahmer 2024): a third-order tensor
A [n1, n2, k] is an n1 x n2 matrix of tubes of length k (the third mode). With F the DFT along
the third mode, hat(A)_j = (F A)[:, :, j] its Fourier slices:
  t-product  C = A * B, B [n2, l, k]: hat(C)_j = hat(A)_j hat(B)_j for every j, C = F^-1 hat(C)
             (equivalently unfold(C) = bcirc(A) unfold(B), a circular convolution of the tubes);
  t-transpose A^T [n2, n1, k]: every frontal slice transposed, slices 2..k in reverse order, so
             hat(A^T)_j = hat(A)_j^H and (A * B)^T = B^T * A^T;
  t-identity I [n, n, k]: first frontal slice the identity, the others 0 (hat(I)_j = identity);
  t-SVD      A = U * S * V^T with U, V t-orthogonal and S f-diagonal: per Fourier slice an SVD;
  tubal rank the number of nonzero singular tubes S[i, i, :], i.e. the largest rank of a
             Fourier slice.
Real tensors only: the transforms use rfft / irfft along the last axis (the slices j and k - j
of a real tensor are complex conjugates).
"""
import functools
import string
from typing import Optional, Sequence

import jax
import jax.numpy as jnp

# ---- CP ----------------------------------------------------------------------------------------


def _cp_factors(factors: Sequence[jax.Array]) -> list[jax.Array]:
  factors = [jnp.asarray(f) for f in factors]
  if not factors:
    raise ValueError("factors is empty; a CP factorization needs one factor matrix per mode")
  if len(factors) > 25:
    raise ValueError(f"order {len(factors)} is not allowed; at most 25 modes")
  lead, r = factors[0].shape[:-2], factors[0].shape[-1]
  for n, f in enumerate(factors):
    if f.ndim < 2 or f.shape[:-2] != lead or f.shape[-1] != r:
      raise ValueError(f"factor {n} has shape {f.shape}; every factor must be [..., d_n, R] "
                       f"with the leading axes {lead} and R = {r} of factor 0")
  return factors


def cp_reconstruct(factors: Sequence[jax.Array], weights: Optional[jax.Array] = None):
  """The CP tensor sum_r w_r a_r^(1) o ... o a_r^(N).

  Args:
    factors: N factor matrices A_n [..., d_n, R] (any order N >= 1, same leading axes).
    weights: optional [..., R] weights w_r (default 1).

  Returns:
    [..., d_1, ..., d_N].
  """
  factors = _cp_factors(factors)
  modes = string.ascii_lowercase[:len(factors)]        # 'z' (the component) is never a mode
  operands, subs = list(factors), [f"...{m}z" for m in modes]
  if weights is not None:
    operands.append(jnp.asarray(weights))
    subs.append("...z")
  return jnp.einsum(f"{','.join(subs)}->...{modes}", *operands)


def cp_component_norms(factors: Sequence[jax.Array]) -> jax.Array:
  """||a_r^(1) o ... o a_r^(N)||_F = prod_n ||a_r^(n)||_2 for every component: [..., R]."""
  return functools.reduce(jnp.multiply,
                          [jnp.sqrt(jnp.sum(f * f, axis=-2)) for f in _cp_factors(factors)])


def effective_rank(values: jax.Array, rtol: float = 1e-2) -> jax.Array:
  """How many of `values` (last axis; e.g. component norms) exceed rtol times their largest.

  0 where every value is 0. Returns an int array of the leading shape.
  """
  values = jnp.abs(jnp.asarray(values))
  top = jnp.max(values, axis=-1, keepdims=True)
  return jnp.sum((values > rtol * top) & (values > 0), axis=-1)


# ---- tubal (t-product) algebra -----------------------------------------------------------------


def _third_order(a: jax.Array, name: str) -> jax.Array:
  a = jnp.asarray(a)
  if a.ndim < 3:
    raise ValueError(f"{name} has shape {a.shape}; a third-order tensor is [..., n1, n2, k]")
  if 0 in a.shape[-3:]:
    raise ValueError(f"{name} has shape {a.shape}: n1, n2 and the tube length k must be >= 1")
  if jnp.iscomplexobj(a):
    raise ValueError(f"{name} is complex; the t-product algebra here is for real tensors")
  return a


def _fourier(a: jax.Array) -> jax.Array:
  """Half spectrum along the tubes: [..., n1, n2, k] -> [..., k // 2 + 1, n1, n2] slices."""
  return jnp.moveaxis(jnp.fft.rfft(a, axis=-1), -1, -3)


def _spatial(f: jax.Array, k: int, dtype) -> jax.Array:
  """Inverse of _fourier: [..., k // 2 + 1, n1, n2] -> real [..., n1, n2, k]."""
  return jnp.fft.irfft(jnp.moveaxis(f, -3, -1), n=k, axis=-1).astype(dtype)


def t_product(a: jax.Array, b: jax.Array) -> jax.Array:
  """The t-product A * B of A [..., n1, n2, k] and B [..., n2, l, k]: [..., n1, l, k]."""
  a, b = _third_order(a, "a"), _third_order(b, "b")
  if a.shape[:-3] != b.shape[:-3] or a.shape[-2] != b.shape[-3] or a.shape[-1] != b.shape[-1]:
    raise ValueError(f"t_product of shapes {a.shape} and {b.shape}: need [..., n1, n2, k] and "
                     f"[..., n2, l, k] with the same leading axes")
  dtype = jnp.result_type(a, b)
  fc = jnp.einsum("...fij,...fjl->...fil", _fourier(a), _fourier(b))
  return _spatial(fc, a.shape[-1], dtype)


def t_transpose(a: jax.Array) -> jax.Array:
  """A^T [..., n2, n1, k]: each frontal slice transposed, slices 2..k in reverse order."""
  a = _third_order(a, "a")
  at = jnp.swapaxes(a, -3, -2)
  return jnp.roll(jnp.flip(at, axis=-1), 1, axis=-1)       # tube index j -> -j mod k


def t_identity(n: int, k: int, dtype=jnp.float32) -> jax.Array:
  """The identity of the t-product on [n, *, k] tensors: [n, n, k], I[:, :, 0] = eye(n)."""
  if n < 1 or k < 1:
    raise ValueError(f"t_identity(n={n}, k={k}): n and k must be >= 1")
  return jnp.zeros((n, n, k), dtype).at[:, :, 0].set(jnp.eye(n, dtype=dtype))


def _self_conjugate(k: int) -> list[int]:
  """Half-spectrum slices that are real for a real tensor: 0, and k / 2 for even k."""
  return [0] + ([k // 2] if k % 2 == 0 and k > 1 else [])


def t_svd(a: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The (economy) t-SVD A = U * S * V^T of a real A [..., n1, n2, k], p = min(n1, n2).

  Returns:
    U [..., n1, p, k] and V [..., n2, p, k] with U^T * U = V^T * V = I (t-identity of size p)
    and S [..., p, p, k] f-diagonal (every frontal slice diagonal), all real. The singular
    values of every Fourier slice are in descending order.
  """
  a = _third_order(a, "a")
  k, dtype = a.shape[-1], a.dtype
  fa = _fourier(a)
  u, s, vh = jnp.linalg.svd(fa, full_matrices=False)
  # Slices 0 (and k/2) are real: a real SVD there keeps U and V real after the inverse FFT
  # (nothing obliges a complex SVD to return real vectors for a real matrix; a singular pair
  # turned by a phase would lose its imaginary part in irfft).
  real = _self_conjugate(k)
  ur, sr, vhr = jnp.linalg.svd(fa[..., real, :, :].real, full_matrices=False)
  u = u.at[..., real, :, :].set(ur.astype(u.dtype))
  s = s.at[..., real, :].set(sr)
  vh = vh.at[..., real, :, :].set(vhr.astype(vh.dtype))
  diag = jnp.arange(s.shape[-1])
  s_f = jnp.zeros(s.shape + s.shape[-1:], u.dtype).at[..., diag, diag].set(s.astype(u.dtype))
  v = jnp.conj(jnp.swapaxes(vh, -1, -2))
  return _spatial(u, k, dtype), _spatial(s_f, k, dtype), _spatial(v, k, dtype)


def fourier_singular_values(a: jax.Array) -> jax.Array:
  """Singular values of every Fourier slice hat(A)_j, j = 0..k-1: [..., k, min(n1, n2)], each
  row descending (slices j and k - j have the same values)."""
  a = _third_order(a, "a")
  fa = jnp.moveaxis(jnp.fft.fft(a, axis=-1), -1, -3)
  return jnp.linalg.svd(fa, compute_uv=False).astype(a.dtype)


def tubal_rank(a: jax.Array, rtol: Optional[float] = None) -> jax.Array:
  """The tubal rank: how many singular tubes are nonzero, i.e. max_j rank(hat(A)_j).

  A singular value counts when it exceeds rtol times the largest singular value of A (over all
  slices); rtol=None takes max(n1, n2) * k * eps of A's dtype, as numpy's matrix_rank does for
  one matrix. Returns an int array of the leading shape.
  """
  a = _third_order(a, "a")
  s = fourier_singular_values(a)                          # [..., k, p]
  if rtol is None:
    rtol = max(a.shape[-3], a.shape[-2]) * a.shape[-1] * float(jnp.finfo(a.dtype).eps)
  top = jnp.max(s, axis=(-2, -1), keepdims=True)
  tubes = jnp.max(s, axis=-2)                              # [..., p]: the largest over slices
  return jnp.sum((tubes > rtol * top[..., 0]) & (tubes > 0), axis=-1)


def tubal_principal_angle(u: jax.Array, v: jax.Array) -> jax.Array:
  """The sine of the largest principal angle between the t-column spaces of U and V.

  Karnik et al. 2024 (their code's tubal_principal_angle_Fourier_pages): per Fourier slice j
  the cosines are the singular values of hat(V)_j^H hat(U)_j, and the result is the largest
  sqrt(1 - cos^2) over every slice and value (as theirs, so angles below ~sqrt(eps) of the
  dtype read as ~sqrt(eps)).

  Args:
    u: [..., n, r1, k] and v: [..., n, r2, k], each with orthonormal columns in every Fourier
      slice (U^T * U = I; e.g. the first r left singular vectors of a t_svd).

  Returns:
    [...] in [0, 1]: 0 when the spaces agree (equal ranks), 1 when in some slice a principal
    direction of one is orthogonal to the other.
  """
  u, v = _third_order(u, "u"), _third_order(v, "v")
  if u.shape[:-3] != v.shape[:-3] or u.shape[-3] != v.shape[-3] or u.shape[-1] != v.shape[-1]:
    raise ValueError(f"tubal_principal_angle of shapes {u.shape} and {v.shape}: need "
                     f"[..., n, r1, k] and [..., n, r2, k] with the same leading axes")
  fu, fv = _fourier(u), _fourier(v)                      # the other slices are conjugates
  cos = jnp.linalg.svd(jnp.einsum("...fji,...fjl->...fil", jnp.conj(fv), fu),
                       compute_uv=False)
  sin = jnp.sqrt(jnp.clip(1.0 - cos ** 2, 0.0, 1.0))
  return jnp.max(sin, axis=(-2, -1)).astype(u.dtype)
