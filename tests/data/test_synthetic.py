"""Synthetic datasets: exact geometry of the teachers and clusters, noise, determinism."""
import numpy as np
import pytest

from dynamics.config_utils import ConfigError
from dynamics.data import synthetic

FIELDS = ("x_train", "y_train", "x_test", "y_test")
BUILDERS = [synthetic.linear_teacher, synthetic.gaussian_clusters, synthetic.xor_clusters,
            synthetic.teacher_student]


@pytest.mark.parametrize("builder", BUILDERS)
def test_deterministic_from_seed(builder):
  a, b, c = builder(seed=1), builder(seed=1), builder(seed=2)
  for f in FIELDS:
    np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
  assert not np.array_equal(a.x_train, c.x_train)


def test_linear_teacher_whitening_and_correlation_are_exact():
  ds = synthetic.linear_teacher(seed=0, in_dim=6, out_dim=4, n_train=50,
                                singular_values=[3.0, 2.0, 0.5])
  x, y = ds.x_train.astype(np.float64), ds.y_train.astype(np.float64)
  assert x.shape == (50, 6) and y.shape == (50, 4) and ds.num_classes == 0 and ds.out_dim == 4
  n = x.shape[0]
  np.testing.assert_allclose(x.T @ x / n, np.eye(6), rtol=0, atol=1e-10)
  u, s, v = ds.info["U"], ds.info["S"], ds.info["V"]
  assert u.shape == (4, 3) and s.shape == (3,) and v.shape == (6, 3)
  np.testing.assert_allclose(u.T @ u, np.eye(3), atol=1e-12)
  np.testing.assert_allclose(v.T @ v, np.eye(3), atol=1e-12)
  np.testing.assert_allclose(y.T @ x / n, u @ np.diag(s) @ v.T, rtol=0, atol=1e-8)
  np.testing.assert_allclose(ds.info["W_star"], (u * s) @ v.T, atol=1e-12)
  sv = np.linalg.svd(y.T @ x / n, compute_uv=False)
  np.testing.assert_allclose(sv, [3.0, 2.0, 0.5, 0.0], atol=1e-8)


def test_linear_teacher_defaults_and_test_split():
  ds = synthetic.linear_teacher()
  assert ds.x_train.shape == (1000, 8) and ds.x_test.shape == (0, 8) and ds.y_test.shape == (0, 8)
  np.testing.assert_allclose(np.linalg.svd(ds.info["W_star"], compute_uv=False),
                             [5, 4, 3, 2, 1, 0, 0, 0], atol=1e-10)
  ds = synthetic.linear_teacher(n_test=7)
  np.testing.assert_allclose(ds.y_test, ds.x_test @ ds.info["W_star"].T, atol=1e-12)


def test_linear_teacher_unwhitened_and_noise():
  plain = synthetic.linear_teacher(n_train=200, whiten=False)
  x = plain.x_train
  assert np.abs(x.T @ x / 200 - np.eye(8)).max() > 1e-3
  noisy = synthetic.linear_teacher(n_train=200, whiten=False, noise=0.5)
  # The same inputs and teacher; only the targets change, by noise of about the right size.
  np.testing.assert_array_equal(noisy.x_train, x)
  np.testing.assert_array_equal(noisy.info["W_star"], plain.info["W_star"])
  resid = noisy.y_train - plain.y_train
  assert 0.4 < resid.std() < 0.6


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_train=5, in_dim=8), "data.n_train=5.*data.in_dim=8"),
    (dict(in_dim=3, singular_values=[3, 2, 1, 0.5]), "data.singular_values.*3"),
    (dict(singular_values=[1.0, -1.0]), "data.singular_values"),
    (dict(noise=-0.1), "data.noise"),
])
def test_linear_teacher_bad_values(kwargs, match):
  with pytest.raises(ConfigError, match=match):
    synthetic.linear_teacher(**kwargs)


def test_gaussian_clusters():
  ds = synthetic.gaussian_clusters(n_train=300, n_test=90, dim=5, num_classes=3, separation=4.0,
                                   std=0.1)
  assert ds.x_train.shape == (300, 5) and ds.x_train.dtype == np.float32
  assert ds.y_train.dtype == np.int32 and ds.num_classes == 3
  assert np.bincount(ds.y_train).tolist() == [100, 100, 100]
  means = ds.info["means"]
  np.testing.assert_allclose(np.linalg.norm(means, axis=1), 4.0)
  # Each point lies near its class mean (std 0.1 << separation).
  assert np.abs(ds.x_test - means[ds.y_test]).max() < 0.6
  assert not ds.info["flipped"].any()


def test_gaussian_clusters_label_noise_fraction():
  clean = synthetic.gaussian_clusters(n_train=200, num_classes=4, dim=3)
  ds = synthetic.gaussian_clusters(n_train=200, num_classes=4, dim=3, label_noise=0.25)
  changed = ds.y_train != ds.info["clean_train_labels"]
  assert changed.sum() == 50
  np.testing.assert_array_equal(changed, ds.info["flipped"])
  np.testing.assert_array_equal(ds.info["clean_train_labels"], clean.y_train)
  np.testing.assert_array_equal(ds.x_train, clean.x_train)
  np.testing.assert_array_equal(ds.y_test, clean.y_test)  # test labels stay clean


def test_xor_cluster_geometry():
  ds = synthetic.xor_clusters(n_train=40, n_test=80, dim=6, mean_norm=2.5, std=0.0,
                              label_noise=0.0)
  mu1, mu2 = ds.info["mu1"], ds.info["mu2"]
  assert abs(mu1 @ mu2) < 1e-12
  np.testing.assert_allclose([np.linalg.norm(mu1), np.linalg.norm(mu2)], 2.5)
  means = np.stack([mu1, -mu1, mu2, -mu2])
  # std=0: every point is a cluster mean; label 1 on +-mu1, 0 on +-mu2.
  for x, y, k in ((ds.x_train, ds.y_train, ds.info["train_clusters"]),
                  (ds.x_test, ds.y_test, ds.info["test_clusters"])):
    np.testing.assert_allclose(x, means[k], atol=1e-6)
    np.testing.assert_array_equal(y, np.where(k < 2, 1, 0))
  assert np.bincount(ds.info["test_clusters"]).tolist() == [20] * 4
  assert ds.num_classes == 2 and ds.x_train.shape == (40, 6)


def test_xor_label_noise_train_only():
  ds = synthetic.xor_clusters()  # defaults: 256 train, label_noise 0.1
  assert ds.x_train.shape == (256, 50) and ds.x_test.shape == (1024, 50)
  flipped = ds.y_train != ds.info["clean_train_labels"]
  assert flipped.sum() == round(0.1 * 256)
  np.testing.assert_array_equal(ds.info["clean_train_labels"],
                                np.where(ds.info["train_clusters"] < 2, 1, 0))
  np.testing.assert_array_equal(ds.y_test, np.where(ds.info["test_clusters"] < 2, 1, 0))


@pytest.mark.parametrize("activation", ["relu", "tanh", "linear"])
def test_teacher_student(activation):
  ds = synthetic.teacher_student(n_train=64, n_test=32, in_dim=5, teacher_width=3,
                                 activation=activation)
  w, a = ds.info["w_teacher"], ds.info["a_teacher"]
  assert w.shape == (3, 5) and a.shape == (3,)
  np.testing.assert_allclose(np.linalg.norm(w, axis=1), 1.0)
  assert set(np.abs(a)) == {1.0}
  assert ds.y_train.shape == (64, 1) and ds.y_test.shape == (32, 1) and ds.num_classes == 0
  act = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "linear": lambda z: z}[activation]
  for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
    np.testing.assert_allclose(y[:, 0], act(x.astype(np.float64) @ w.T) @ a, rtol=1e-5,
                               atol=1e-6)


def test_teacher_student_noise_and_bad_activation():
  clean = synthetic.teacher_student()
  noisy = synthetic.teacher_student(noise=0.3)
  assert 0.2 < (noisy.y_train - clean.y_train).std() < 0.4
  np.testing.assert_array_equal(noisy.y_test, clean.y_test)
  with pytest.raises(ConfigError, match="data.activation.*'relu', 'tanh', 'linear'"):
    synthetic.teacher_student(activation="gelu")
