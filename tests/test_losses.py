"""Losses and accuracy vs numpy formulas; the float64 cross-entropy path; the loss config."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dynamics import losses
from dynamics.config_utils import ConfigError

OUT = np.asarray([[0.5, -1.0, 2.0], [0.1, 0.2, -0.3], [3.0, 0.0, 1.0], [-1.0, -2.0, -0.5]])
LABELS = np.asarray([2, 0, 1, 2], np.int32)


def np_log_softmax(z):
  z = np.asarray(z, np.float64)
  m = z.max(axis=-1, keepdims=True)
  return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def test_mse_int_labels_is_half_squared_distance_to_one_hot():
  got = losses.mse(jnp.asarray(OUT, jnp.float64), jnp.asarray(LABELS))
  onehot = np.eye(3)[LABELS]
  want = 0.5 * ((OUT - onehot) ** 2).sum(axis=1)     # summed over outputs, not averaged
  assert got.shape == (4,) and got.dtype == jnp.float64
  np.testing.assert_allclose(got, want, rtol=1e-14)
  np.testing.assert_allclose(got[0], 0.5 * (0.25 + 1.0 + 1.0), rtol=1e-14)


def test_mse_float_targets():
  y = np.asarray([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5], [0.0, 0.0, 0.0], [2.0, -2.0, 1.0]])
  got = losses.mse(jnp.asarray(OUT, jnp.float64), jnp.asarray(y, jnp.float64))
  np.testing.assert_allclose(got, 0.5 * ((OUT - y) ** 2).sum(axis=1), rtol=1e-14)
  # [N] targets for a model with one output unit, and scalar outputs.
  f = jnp.asarray([[1.0], [2.0]], jnp.float64)
  t = jnp.asarray([0.0, 4.0], jnp.float64)
  np.testing.assert_allclose(losses.mse(f, t), [0.5, 2.0])
  np.testing.assert_allclose(losses.mse(f[:, 0], t), [0.5, 2.0])
  with pytest.raises(ValueError, match="do not match"):
    losses.mse(f, jnp.zeros((2, 3), jnp.float64))


def test_mse_float32_stays_float32_with_float64_targets():
  got = losses.mse(jnp.asarray(OUT, jnp.float32), jnp.asarray(OUT * 0.5, jnp.float64))
  assert got.dtype == jnp.float32
  assert losses.mse(jnp.asarray(OUT, jnp.float32), jnp.asarray(LABELS)).dtype == jnp.float32


def test_cross_entropy_matches_numpy_and_optax():
  z = jnp.asarray(OUT, jnp.float64)
  got = losses.cross_entropy(z, jnp.asarray(LABELS))
  want = -np_log_softmax(OUT)[np.arange(4), LABELS]
  np.testing.assert_allclose(got, want, rtol=1e-14)
  np.testing.assert_allclose(
      got, optax.softmax_cross_entropy_with_integer_labels(z, jnp.asarray(LABELS)), rtol=1e-14)
  # The float64 path agrees wherever the plain formula is accurate.
  np.testing.assert_allclose(losses.cross_entropy(z, jnp.asarray(LABELS), float64=True), want,
                             rtol=1e-14)
  z32 = jnp.asarray(OUT, jnp.float32)
  for f64 in (False, True):
    out = losses.cross_entropy(z32, jnp.asarray(LABELS), float64=f64)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, want, rtol=1e-6)


def test_cross_entropy_float64_path_keeps_tiny_losses():
  """Margin 40: float32 cross-entropy is exactly 0, the float64 path gives log1p(e^-40)."""
  z = jnp.asarray([[40.0, 0.0, 0.0], [0.0, 0.0, 1.0]], jnp.float32)
  y = jnp.asarray([0, 2], jnp.int32)
  plain = losses.cross_entropy(z, y)
  assert float(plain[0]) == 0.0
  accurate = losses.cross_entropy(z, y, float64=True)
  assert accurate.dtype == jnp.float32
  np.testing.assert_allclose(accurate[0], np.log1p(2 * np.exp(-40.0)), rtol=1e-6)
  assert 8e-18 < float(accurate[0]) < 9e-18
  np.testing.assert_allclose(accurate[1], plain[1], rtol=1e-6)
  # A wrong label far below: large loss, exact.
  np.testing.assert_allclose(losses.cross_entropy(z, jnp.asarray([1, 2], jnp.int32),
                                                  float64=True)[0], 40.0, rtol=1e-6)


def test_cross_entropy_float64_gradient_is_softmax_minus_onehot():
  z = jnp.asarray([[40.0, 0.0, -3.0], [0.3, -0.2, 1.0]], jnp.float64)
  y = jnp.asarray([0, 1], jnp.int32)
  g = jax.grad(lambda z: jnp.sum(losses.cross_entropy(z, y, float64=True)))(z)
  p = np.exp(np_log_softmax(z))
  want = p - np.eye(3)[np.asarray(y)]
  np.testing.assert_allclose(g[1], want[1], rtol=1e-12)
  # Correct-class gradient -(1 - p_y) = -(e^-40 + e^-43) / (1 + ...) is not absorbed to 0.
  np.testing.assert_allclose(g[0, 0], -(np.exp(-40.0) + np.exp(-43.0)), rtol=1e-10)
  np.testing.assert_allclose(g[0, 1:], [np.exp(-40.0), np.exp(-43.0)], rtol=1e-10)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_cross_entropy_float64_hessian_vector_products(dtype):
  """Forward-over-reverse and reverse-over-reverse HVPs (curvature code) match the plain path."""
  z = jnp.asarray(OUT, dtype)
  y = jnp.asarray(LABELS)
  v = jnp.asarray(np.cos(np.arange(12.0)).reshape(4, 3), dtype)
  f = lambda z: jnp.mean(losses.cross_entropy(z, y, float64=True))
  ref = lambda z: jnp.mean(losses.cross_entropy(z, y))
  hvp = jax.jvp(jax.grad(f), (z,), (v,))[1]
  want = jax.jvp(jax.grad(ref), (z,), (v,))[1]
  assert hvp.dtype == dtype
  tol = 1e-12 if dtype == jnp.float64 else 1e-5
  np.testing.assert_allclose(hvp, want, rtol=tol, atol=tol)
  rr = jax.grad(lambda z: jnp.vdot(jax.grad(f)(z), v))(z)
  np.testing.assert_allclose(rr, want, rtol=tol, atol=tol)
  np.testing.assert_allclose(jax.vmap(jax.grad(f))(z[None])[0], jax.grad(ref)(z), rtol=tol,
                             atol=tol)


def test_cross_entropy_errors():
  with pytest.raises(ValueError, match="integer labels"):
    losses.cross_entropy(jnp.asarray(OUT), jnp.asarray(OUT))
  with pytest.raises(ValueError, match="logits"):
    losses.cross_entropy(jnp.asarray(OUT), jnp.asarray(LABELS[:3]))


def test_cross_entropy_float64_needs_x64():
  jax.config.update("jax_enable_x64", False)
  try:
    with pytest.raises(RuntimeError, match="train.float64.*jax_enable_x64"):
      losses.cross_entropy(jnp.asarray(OUT, jnp.float32), jnp.asarray(LABELS), float64=True)
  finally:
    jax.config.update("jax_enable_x64", True)


def test_accuracy():
  acc = losses.accuracy(jnp.asarray(OUT, jnp.float32), jnp.asarray(LABELS))
  assert acc.dtype == jnp.float32
  np.testing.assert_array_equal(acc, [1.0, 0.0, 0.0, 1.0])
  # One-hot float targets: argmax agreement.
  onehot = np.eye(3)[[2, 1, 0, 0]]
  np.testing.assert_array_equal(
      losses.accuracy(jnp.asarray(OUT, jnp.float64), jnp.asarray(onehot, jnp.float64)),
      [1.0, 1.0, 1.0, 0.0])
  # Sign targets with one output.
  f = jnp.asarray([[0.3], [-2.0], [1.0]], jnp.float64)
  t = jnp.asarray([1.0, 1.0, 1.0], jnp.float64)
  np.testing.assert_array_equal(losses.accuracy(f, t), [1.0, 0.0, 1.0])
  np.testing.assert_array_equal(losses.accuracy(f, t[:, None]), [1.0, 0.0, 1.0])
  np.testing.assert_array_equal(losses.accuracy(f[:, 0], -t), [0.0, 1.0, 0.0])


def test_logistic_matches_numpy_and_its_accuracy_is_sign_agreement():
  f = np.array([[0.3], [-2.0], [40.0], [-800.0], [0.0]])
  y = np.array([1.0, 1.0, -1.0, -1.0, 1.0])
  want = np.log1p(np.exp(-y * f[:, 0]))
  want[3] = np.log1p(np.exp(-800.0))                  # exp(-800) underflows: 0, not inf
  for out in (jnp.asarray(f, jnp.float64), jnp.asarray(f[:, 0], jnp.float64)):
    got = losses.logistic(out, jnp.asarray(y))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)
  np.testing.assert_allclose(losses.logistic(jnp.asarray(f), jnp.asarray(y[:, None])), want,
                             rtol=1e-12)
  assert float(losses.logistic(jnp.asarray([[40.0]]), jnp.asarray([-1.0]))[0]) == \
      pytest.approx(40.0)
  f32 = losses.build({"name": "logistic"}).per_example(jnp.asarray(f, jnp.float32),
                                                       jnp.asarray(y, jnp.float32))
  assert f32.dtype == jnp.float32 and np.all(np.isfinite(f32))
  # d/df = -y sigma(-y f) / N for the mean
  g = jax.grad(lambda o: jnp.mean(losses.logistic(o, jnp.asarray(y))))(jnp.asarray(f))
  sigma = np.exp(-np.logaddexp(0, y * f[:, 0]))       # sigma(-y f)
  np.testing.assert_allclose(g[:, 0], -y * sigma / len(y), rtol=1e-12)
  # a one-output model with +-1 targets: 0/1 accuracy is sign agreement (an exact 0 is wrong)
  np.testing.assert_array_equal(losses.accuracy(jnp.asarray(f), jnp.asarray(y)),
                                [1, 0, 0, 1, 0])
  with pytest.raises(ValueError, match="float targets in"):
    losses.logistic(jnp.asarray(f), jnp.asarray([1, 0, 1, 0, 1]))
  with pytest.raises(ValueError, match="needs one output"):
    losses.logistic(jnp.ones((2, 3)), jnp.ones((2, 3)))


def test_config_build_and_mean_loss():
  assert dict(losses.default_config()) == dict(name="mse", float64=False)
  assert set(losses.LOSSES) == {"mse", "cross_entropy", "stablemax", "logistic"}
  z, y = jnp.asarray(OUT, jnp.float64), jnp.asarray(LABELS)
  mse = losses.build(losses.default_config())
  assert mse.name == "mse"
  np.testing.assert_allclose(losses.mean_loss(mse, z, y), np.mean(losses.mse(z, y)))
  ce = losses.build({"name": "cross_entropy", "float64": True})
  assert ce.name == "cross_entropy"
  np.testing.assert_allclose(ce.per_example(z, y), losses.cross_entropy(z, y), rtol=1e-14)
  big = jnp.asarray([[40.0, 0.0]], jnp.float32)
  assert float(ce.per_example(big, jnp.asarray([0], jnp.int32))[0]) > 0
  assert float(losses.build({"name": "cross_entropy"}).per_example(
      big, jnp.asarray([0], jnp.int32))[0]) == 0
  assert jax.jit(lambda a, b: losses.mean_loss(ce, a, b))(z, y).shape == ()


@pytest.mark.parametrize("cfg,match", [
    (dict(name="hinge"), "loss.name='hinge'.*'mse', 'cross_entropy'"),
    (dict(name="mse", label_smoothing=0.1), "loss: unknown field.*label_smoothing.*allowed "
                                            "fields: float64, name"),
    (dict(name="cross_entropy", float64=1), "loss.float64=1.*True, False"),
    (dict(name="mse", float64=True), "loss.float64=True.*cross_entropy"),
    (dict(name="logistic", float64=True), "loss.float64=True.*got loss.name='logistic'"),
])
def test_config_errors(cfg, match):
  with pytest.raises(ConfigError, match=match):
    losses.validate(cfg)
  with pytest.raises(ConfigError, match=match):
    losses.build(cfg)


def _stablemax_numpy(z, y):
  """Prieto et al. 2025, Eq. 4-5, written out per entry in float64."""
  z = np.asarray(z, np.float64)
  s = np.array([[v + 1 if v >= 0 else 1 / (1 - v) for v in row] for row in z])
  return -np.log(s[np.arange(len(y)), y] / s.sum(axis=1))


def test_stablemax_matches_numpy_and_has_finite_gradients():
  z = jnp.asarray([[2.0, -1.0, 0.0], [-30.0, 5.0, 1e3], [0.0, 0.0, 0.0]], jnp.float64)
  y = jnp.asarray([0, 1, 2])
  np.testing.assert_allclose(losses.stablemax_cross_entropy(z, y), _stablemax_numpy(z, y),
                             rtol=1e-14)
  # the derivative of s is 1 on both sides of 0 (s is C^1) and 1/(1-x)^2 below
  g = jax.grad(lambda x: jnp.sum(losses.stablemax_s(x)))(jnp.asarray([-3.0, -1e-12, 0.0, 4.0],
                                                                     jnp.float64))
  np.testing.assert_allclose(g, [1 / 16, 1.0, 1.0, 1.0], rtol=1e-10)
  # a huge margin: softmax cross-entropy is exactly 0 in float32, StableMax is not
  big = jnp.asarray([[60.0, 0.0, -5.0]], jnp.float32)
  lbl = jnp.asarray([0])
  assert float(losses.cross_entropy(big, lbl)[0]) == 0.0
  assert float(losses.stablemax_cross_entropy(big, lbl)[0]) > 0.0
  grads = jax.grad(lambda x: jnp.sum(losses.stablemax_cross_entropy(x, lbl)))(big)
  assert np.all(np.isfinite(grads)) and float(jnp.abs(grads).sum()) > 0
  sm = losses.build({"name": "stablemax"})
  assert sm.name == "stablemax"
  np.testing.assert_allclose(sm.per_example(z, y), _stablemax_numpy(z, y), rtol=1e-14)
