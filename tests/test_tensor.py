"""The tensor algebra against independent numpy references: CP reconstruction by explicit outer
products, the t-product by the block-circulant matrix product and by the convolution of the
tubes, the t-transpose by its definition, and the t-SVD / tubal rank of constructed tensors."""
import functools

import jax.numpy as jnp
import numpy as np
import pytest

from dynamics import tensor as T
from tensor_reference import t_product_loop, t_transpose_def

RNG = np.random.default_rng(0)


def outer_loop(vectors):
  out = np.asarray(vectors[0])
  for v in vectors[1:]:
    out = np.multiply.outer(out, v)
  return out


@pytest.mark.parametrize("dims", [(3, 4), (2, 3, 4), (3, 2, 2, 3)])
def test_cp_reconstruct_is_the_sum_of_outer_products(dims):
  r = 3
  factors = [RNG.standard_normal((d, r)) for d in dims]
  w = RNG.standard_normal(r)
  direct = sum(outer_loop([f[:, i] for f in factors]) for i in range(r))
  weighted = sum(w[i] * outer_loop([f[:, i] for f in factors]) for i in range(r))
  np.testing.assert_allclose(np.asarray(T.cp_reconstruct(factors)), direct, rtol=1e-12,
                             atol=1e-12)
  np.testing.assert_allclose(np.asarray(T.cp_reconstruct(factors, w)), weighted, rtol=1e-12,
                             atol=1e-12)
  # a leading batch axis: each member on its own
  batch = [np.stack([f, 2 * f]) for f in factors]
  out = np.asarray(T.cp_reconstruct(batch))
  np.testing.assert_allclose(out[0], direct, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(out[1], 2 ** len(dims) * direct, rtol=1e-12, atol=1e-12)


def test_cp_component_norms_and_effective_rank():
  dims, r = (3, 4, 5), 4
  factors = [RNG.standard_normal((d, r)) for d in dims]
  factors[1][:, 2] = 0.0                                   # one vanished component
  norms = np.asarray(T.cp_component_norms(factors))
  direct = [np.linalg.norm(outer_loop([f[:, i] for f in factors])) for i in range(r)]
  np.testing.assert_allclose(norms, direct, rtol=1e-12)
  assert norms[2] == 0.0
  assert int(T.effective_rank(norms)) == 3
  assert int(T.effective_rank(jnp.asarray([1.0, 0.5, 0.009, 0.0]), rtol=1e-2)) == 2
  assert int(T.effective_rank(jnp.zeros(3))) == 0
  np.testing.assert_array_equal(np.asarray(T.effective_rank(jnp.asarray([[1.0, 1.0],
                                                                          [1.0, 0.0]]))),
                                [2, 1])
  with pytest.raises(ValueError, match="factor 1"):
    T.cp_reconstruct([np.ones((3, 2)), np.ones((3, 4))])
  with pytest.raises(ValueError, match="empty"):
    T.cp_reconstruct([])


# ---- numpy references for the t-product algebra ------------------------------------------------
def bcirc(a):
  """Block-circulant matrix of a [n1, n2, k]: block (i, j) is the frontal slice (i - j) mod k."""
  n1, n2, k = a.shape
  out = np.zeros((n1 * k, n2 * k))
  for i in range(k):
    for j in range(k):
      out[i * n1:(i + 1) * n1, j * n2:(j + 1) * n2] = a[:, :, (i - j) % k]
  return out


def unfold(b):
  return np.concatenate([b[:, :, j] for j in range(b.shape[2])], axis=0)


def fold(m, n, k):
  return np.stack([m[j * n:(j + 1) * n] for j in range(k)], axis=2)




def t_prod(*xs):
  return functools.reduce(lambda x, y: np.asarray(T.t_product(x, y)), xs)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_t_product_is_the_block_circulant_product(k):
  a, b = RNG.standard_normal((3, 4, k)), RNG.standard_normal((4, 2, k))
  c = np.asarray(T.t_product(a, b))
  assert c.shape == (3, 2, k) and c.dtype == np.float64
  np.testing.assert_allclose(c, fold(bcirc(a) @ unfold(b), 3, k), rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(c, t_product_loop(a, b), rtol=1e-12, atol=1e-12)
  # batched over a leading axis, and float32 in float32 out
  ab, bb = np.stack([a, -a, 2 * a]), np.stack([b, b, b])
  cb = np.asarray(T.t_product(ab, bb))
  for i, s in enumerate([1, -1, 2]):
    np.testing.assert_allclose(cb[i], s * c, rtol=1e-12, atol=1e-12)
  c32 = T.t_product(a.astype(np.float32), b.astype(np.float32))
  assert c32.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(c32), c, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("k", [1, 3, 4])
def test_t_transpose_and_identity(k):
  a, b = RNG.standard_normal((3, 4, k)), RNG.standard_normal((4, 2, k))
  at = np.asarray(T.t_transpose(a))
  np.testing.assert_array_equal(at, t_transpose_def(a))
  np.testing.assert_array_equal(np.asarray(T.t_transpose(at)), a)
  np.testing.assert_allclose(bcirc(at), bcirc(a).T, rtol=0, atol=0)
  # (A * B)^T = B^T * A^T
  np.testing.assert_allclose(np.asarray(T.t_transpose(t_prod(a, b))),
                             t_prod(np.asarray(T.t_transpose(b)), at), rtol=1e-12, atol=1e-12)
  # A * I = A = I * A
  i4, i3 = T.t_identity(4, k, jnp.float64), T.t_identity(3, k, jnp.float64)
  np.testing.assert_allclose(bcirc(np.asarray(i4)), np.eye(4 * k), rtol=0, atol=0)
  np.testing.assert_allclose(t_prod(a, i4), a, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(t_prod(i3, a), a, rtol=1e-12, atol=1e-12)
  with pytest.raises(ValueError, match="n2, l, k"):
    T.t_product(a, a)
  with pytest.raises(ValueError, match="n1, n2, k"):
    T.t_transpose(np.ones((2, 2)))
  for fn in (T.t_transpose, T.t_svd, T.tubal_rank):      # a tube of length 0
    with pytest.raises(ValueError, match=r"\(2, 2, 0\): n1, n2 and the tube length k"):
      fn(np.ones((2, 2, 0)))
  with pytest.raises(ValueError, match="tubal_principal_angle of shapes"):
    T.tubal_principal_angle(np.ones((3, 2, 4)), np.ones((5, 2, 4)))


@pytest.mark.parametrize("shape", [(4, 3, 4), (3, 5, 5), (4, 4, 1), (3, 3, 2)])
def test_t_svd_reconstructs_and_is_orthogonal(shape):
  a = RNG.standard_normal(shape)
  u, s, v = (np.asarray(x) for x in T.t_svd(a))
  n1, n2, k = shape
  p = min(n1, n2)
  assert u.shape == (n1, p, k) and s.shape == (p, p, k) and v.shape == (n2, p, k)
  assert u.dtype == s.dtype == v.dtype == np.float64
  vt = np.asarray(T.t_transpose(v))
  np.testing.assert_allclose(t_prod(u, s, vt), a, rtol=1e-10, atol=1e-10)
  eye = np.asarray(T.t_identity(p, k, jnp.float64))
  np.testing.assert_allclose(t_prod(np.asarray(T.t_transpose(u)), u), eye, atol=1e-10)
  np.testing.assert_allclose(t_prod(vt, v), eye, atol=1e-10)
  off = s * (1 - np.eye(p))[:, :, None]                      # f-diagonal
  np.testing.assert_allclose(off, 0.0, atol=1e-12)
  # the Fourier slices' singular values, against numpy's fft and svd slice by slice
  fa = np.fft.fft(a, axis=2)
  direct = np.stack([np.linalg.svd(fa[:, :, j], compute_uv=False) for j in range(k)])
  np.testing.assert_allclose(np.asarray(T.fourier_singular_values(a)), direct, rtol=1e-10)
  fs = np.fft.fft(s, axis=2)
  np.testing.assert_allclose(np.stack([np.diag(fs[:, :, j]).real for j in range(k)]), direct,
                             rtol=1e-10, atol=1e-10)
  # batched: each member on its own
  ub, sb, vb = T.t_svd(np.stack([a, 3 * a]))
  np.testing.assert_allclose(t_prod(np.asarray(ub[1]), np.asarray(sb[1]),
                                    np.asarray(T.t_transpose(vb[1]))), 3 * a, atol=1e-9)


def test_tubal_rank_of_constructed_tensors():
  n, k = 5, 4
  for r in (1, 2, 3, 5):
    x = t_prod(RNG.standard_normal((n, r, k)), RNG.standard_normal((r, n, k)))
    assert int(T.tubal_rank(x)) == r
    # every Fourier slice has rank r: the (r+1)-th singular values vanish
    sv = np.asarray(T.fourier_singular_values(x))
    if r < n:
      assert sv[:, r].max() < 1e-10 * sv.max()
  # a tensor whose Fourier slices have different ranks (1, 3, 1, 3): tubal rank 3
  fx = np.zeros((n, n, k), complex)
  g = RNG.standard_normal((n, 3)) + 1j * RNG.standard_normal((n, 3))
  fx[:, :, 0] = np.outer(g[:, 0].real, g[:, 0].real)
  fx[:, :, 2] = np.outer(g[:, 1].real, g[:, 1].real)
  fx[:, :, 1] = g @ g.T
  fx[:, :, 3] = np.conj(fx[:, :, 1])
  x = np.fft.ifft(fx, axis=2)
  assert np.abs(x.imag).max() < 1e-12
  x = x.real
  assert int(T.tubal_rank(x)) == 3
  np.testing.assert_array_equal(np.asarray(T.tubal_rank(np.stack([x, 0 * x]))), [3, 0])
  # a relative tolerance drops a faint direction
  y = t_prod(RNG.standard_normal((n, 2, k)), RNG.standard_normal((2, n, k)))
  faint = y + 1e-6 * t_prod(RNG.standard_normal((n, 1, k)), RNG.standard_normal((1, n, k)))
  assert int(T.tubal_rank(faint)) == 3 and int(T.tubal_rank(faint, rtol=1e-4)) == 2


def test_tubal_principal_angle():
  # the authors' worked example: constant tubes V, W with cosines 1 and 4 / sqrt(21)
  v = np.array([[1 / np.sqrt(2), 1 / np.sqrt(3)], [0, 1 / np.sqrt(3)],
                [1 / np.sqrt(2), -1 / np.sqrt(3)]])
  w = np.array([[1 / np.sqrt(6), 2 / np.sqrt(21)], [2 / np.sqrt(6), 1 / np.sqrt(21)],
                [-1 / np.sqrt(6), 4 / np.sqrt(21)]])
  a, b = np.zeros((3, 2, 2)), np.zeros((3, 2, 2))
  a[:, :, 0], b[:, :, 0] = v, w                            # every Fourier slice is V (W)
  np.testing.assert_allclose(float(T.tubal_principal_angle(a, b)), np.sqrt(5 / 21), rtol=1e-12)
  # t-orthonormal bases from t-SVDs: the angle is the largest residual of a projection,
  # ||(I - Q_U Q_U^H) Q_V||_2 over the Fourier slices (equal ranks)
  n, r, k = 6, 2, 4
  x = t_prod(RNG.standard_normal((n, r, k)), RNG.standard_normal((r, n, k)))
  y = x + 0.3 * t_prod(RNG.standard_normal((n, r, k)), RNG.standard_normal((r, n, k)))
  qx, qy = (np.asarray(T.t_svd(z)[0])[:, :r] for z in (x, y))
  fx, fy = np.fft.fft(qx, axis=2), np.fft.fft(qy, axis=2)
  direct = max(np.linalg.norm(fy[:, :, j] - fx[:, :, j] @ (fx[:, :, j].conj().T @ fy[:, :, j]),
                              2) for j in range(k))
  angle = float(T.tubal_principal_angle(qx, qy))
  np.testing.assert_allclose(angle, direct, rtol=1e-8)
  assert 0.01 < angle < 1.0
  assert float(T.tubal_principal_angle(qx, qx)) < 1e-6
  # a direction orthogonal to the other space: sine 1
  e1, e2 = np.zeros((3, 1, 2)), np.zeros((3, 1, 2))
  e1[0, 0, 0], e2[1, 0, 0] = 1.0, 1.0
  np.testing.assert_allclose(float(T.tubal_principal_angle(e1, e2)), 1.0)
