"""Tensor completion and tubal sensing data: the targets' ranks and norms, the splits, the
seed's determinism, bad input, and GD through the engine's front door against numpy GD loops."""
import math

import numpy as np
import pytest

from dynamics import data
from dynamics.config_utils import ConfigError
from tensor_reference import t_product_loop as tprod, t_transpose_def as ttrans

COMPLETION = dict(name="tensor_completion", order=3, dimension=4, rank=2, norms=[2.0, 0.5],
                  n_observed=20, seed=1)
SENSING = dict(name="tubal_sensing", dimension=5, tube=3, rank=2, n_train=30, n_test=6, seed=2)


def unfold(w, mode):
  return np.moveaxis(w, mode, 0).reshape(w.shape[mode], -1)




def slice_singular_values(x):
  fx = np.fft.fft(x, axis=2)
  return np.stack([np.linalg.svd(fx[:, :, j], compute_uv=False) for j in range(x.shape[2])])


@pytest.mark.parametrize("order, rank", [(3, 2), (4, 3), (2, 1)])
def test_completion_target_ranks_and_norms(order, rank):
  norms = [3.0, 1.0, 0.25][:rank]
  ds = data.load(dict(COMPLETION, order=order, rank=rank, norms=norms, n_observed=7))
  w, f = ds.info["W_star"], ds.info["factors"]
  assert w.shape == (4,) * order and f.shape == (order, 4, rank)
  np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, rtol=1e-12)    # unit directions
  letters = "abcdefgh"[:order]
  direct = np.einsum(",".join(f"{m}r" for m in letters) + ",r->" + letters, *f, np.array(norms))
  np.testing.assert_allclose(w, direct, rtol=1e-12, atol=1e-14)
  for r in range(rank):                      # each component's norm is the one asked for
    comp = np.einsum(",".join(f"{m}" for m in letters) + "->" + letters, *f[:, :, r])
    np.testing.assert_allclose(np.linalg.norm(norms[r] * comp), norms[r], rtol=1e-12)
  for mode in range(order):                  # every unfolding has the requested rank
    sv = np.linalg.svd(unfold(w, mode), compute_uv=False)
    assert sv[rank - 1] > 1e-6 * sv[0] and (rank == len(sv) or sv[rank] < 1e-10 * sv[0])


def test_completion_splits_and_determinism():
  ds = data.load(COMPLETION)
  w, d = ds.info["W_star"], 4
  assert ds.x_train.shape == (20, 3, 4) and ds.y_train.shape == (20, 1)
  assert ds.x_test.shape == (64 - 20, 3, 4) and ds.in_dim == 12 and ds.out_dim == 1
  assert ds.info["observed"].sum() == 20
  seen = set()
  for x, y, entries in ((ds.x_train, ds.y_train, ds.info["train_entries"]),
                        (ds.x_test, ds.y_test, ds.info["test_entries"])):
    for xi, yi, e in zip(x, y, entries):
      assert xi.sum() == 3.0 and all(xi[n, e[n]] == 1.0 for n in range(3))
      assert yi[0] == w[tuple(e)]
      seen.add(tuple(int(i) for i in e))
  assert len(seen) == d ** 3                        # every entry exactly once
  assert all(ds.info["observed"][tuple(e)] for e in ds.info["train_entries"])
  again = data.load(COMPLETION)
  for a, b in zip(ds[:4], again[:4]):
    np.testing.assert_array_equal(a, b)
  other = data.load(dict(COMPLETION, seed=2))
  assert not np.allclose(other.info["W_star"], w)
  # the seed's streams: another observed count or test subset leaves W* unchanged
  more = data.load(dict(COMPLETION, n_observed=40, n_test=5))
  np.testing.assert_array_equal(more.info["W_star"], w)
  assert more.x_train.shape[0] == 40 and more.x_test.shape == (5, 3, 4)
  assert not more.info["observed"][tuple(more.info["test_entries"].T)].any()
  full = data.load(dict(COMPLETION, n_observed=64))
  assert full.x_test.shape == (0, 3, 4)


@pytest.mark.parametrize("target", ["orthonormal", "gaussian"])
def test_tubal_sensing_target_and_measurements(target):
  ds = data.load(dict(SENSING, target=target))
  x, t = ds.info["X_star"], ds.info["T"]
  n, k, r = 5, 3, 2
  assert x.shape == (n, n, k) and t.shape == (n, r, k)
  assert ds.x_train.shape == (30, n, n, k) and ds.x_test.shape == (6, n, n, k)
  assert ds.in_dim == n * n * k and ds.out_dim == 1
  np.testing.assert_allclose(x, tprod(t, ttrans(t)), rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(ttrans(x), x, atol=1e-12)
  sv = slice_singular_values(x)                          # tubal rank r: r nonzero per slice
  assert sv[:, r - 1].min() > 1e-6 and sv[:, r:].max() < 1e-10
  if target == "orthonormal":
    eye = np.zeros((r, r, k))
    eye[:, :, 0] = np.eye(r)
    np.testing.assert_allclose(tprod(ttrans(t), t), eye, atol=1e-12)
    np.testing.assert_allclose(sv[:, :r], 1.0, rtol=1e-10)          # projections
  for a, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
    np.testing.assert_allclose(y[:, 0], [np.sum(ai * x) for ai in a], rtol=1e-10, atol=1e-12)
  big = data.load(dict(SENSING, target=target, n_train=4000, n_test=0))
  a = big.x_train
  assert abs(a.mean()) < 0.01 and abs(a.var() - 1.0) < 0.01            # iid N(0, 1)
  np.testing.assert_array_equal(big.info["X_star"], x)                 # same seed, same X*
  np.testing.assert_array_equal(big.x_train[:30], ds.x_train)
  assert not np.allclose(data.load(dict(SENSING, target=target, seed=3)).info["X_star"], x)


def test_tubal_sensing_default_measurement_count():
  c = data.default_config("tubal_sensing")
  assert (c.dimension, c.tube, c.rank) == (10, 4, 2)
  assert c.n_train == math.ceil(1.2 * (c.dimension + 1) * c.rank * c.tube *
                                math.log(c.dimension + 1))


@pytest.mark.parametrize("cfg, pattern", [
    (dict(COMPLETION, order=1), r"data\.order=1 is not allowed.*>= 2"),
    (dict(COMPLETION, rank=5, norms=[1.0] * 5), r"data\.rank=5 is not allowed.*data\.dimension=4"),
    (dict(COMPLETION, n_observed=65), r"data\.n_observed=65 is not allowed.*64 entries"),
    (dict(COMPLETION, n_observed=0), r"data\.n_observed=0 is not allowed.*>= 1"),
    (dict(COMPLETION, n_test=45), r"data\.n_test=45 is not allowed.*44 entries"),
    (dict(COMPLETION, norms=[1.0]), r"data\.norms=\[1\.0\] is not allowed.*data\.rank=2"),
    (dict(COMPLETION, norms=[1.0, 0.0]), r"data\.norms"),
    (dict(COMPLETION, order=9, dimension=10), r"data\.order=9.*10000000"),
    (dict(SENSING, rank=6), r"data\.rank=6 is not allowed.*data\.dimension=5"),
    (dict(SENSING, tube=0), r"data\.tube=0 is not allowed.*>= 1"),
    (dict(SENSING, target="spiked"), r"data\.target='spiked'.*'orthonormal', 'gaussian'"),
    (dict(SENSING, n_train=0), r"data\.n_train=0"),
])
def test_bad_input_names_the_field(cfg, pattern):
  with pytest.raises(ConfigError, match=pattern):
    data.load(cfg)


def _run(tmp_path, model, data_cfg, model_cfg, lr, steps=60):
  from analysis import trajectory
  from dynamics import experiment
  from experiments.configs.common import base_config
  c = base_config(model, data_cfg["name"], "gd")
  c.data.update({k: v for k, v in data_cfg.items() if k != "name"})
  c.model.update(model_cfg)
  c.opt.learning_rate = lr
  c.train.update(dict(steps=steps, log_every=10, chunk_steps=steps, float64=True,
                      keep="every:10"))
  experiment.run(c, str(tmp_path / "run"), log=lambda *_: None)
  return trajectory.load(str(tmp_path / "run"))


def test_engine_trains_cp_completion_as_plain_gd(tmp_path):
  """Full-batch GD through the front door equals a numpy GD loop on the completion loss
  (1/2n) sum_observed (W[e] - W*[e])^2, step for step, train and test loss included."""
  traj = _run(tmp_path, "cp_factorization", COMPLETION,
              dict(order=3, components=3, init_scale=0.5), lr=0.5)
  ds = traj.dataset()
  f = np.asarray(traj.params(0, member=0)["factors"], np.float64)
  train, test = ds.info["train_entries"], ds.info["test_entries"]
  w_star = ds.info["W_star"]

  def entries(f, e):                                        # [M, R] channel products
    return np.prod([f[n][e[:, n]] for n in range(3)], axis=0)

  losses = []
  for step in range(61):
    if step % 10 == 0:
      np.testing.assert_allclose(np.asarray(traj.params(step, 0)["factors"]), f, rtol=1e-9,
                                 atol=1e-13)
      losses.append([0.5 * np.mean((entries(f, e).sum(1) - w_star[tuple(e.T)]) ** 2)
                     for e in (train, test)])
    prod = entries(f, train)
    res = prod.sum(1) - w_star[tuple(train.T)]
    g = np.zeros_like(f)
    for n in range(3):
      others = np.prod([f[m][train[:, m]] for m in range(3) if m != n], axis=0)
      np.add.at(g[n], train[:, n], res[:, None] * others / len(train))
    f = f - 0.5 * g
  losses = np.array(losses)
  np.testing.assert_allclose(traj.metrics["train_loss"][0], losses[:, 0], rtol=1e-9)
  np.testing.assert_allclose(traj.metrics["test_loss"][0], losses[:, 1], rtol=1e-9)
  assert losses[-1, 0] < losses[0, 0]


def test_engine_trains_tubal_sensing_as_plain_gd(tmp_path):
  """Full-batch GD on U * U^T through the front door equals the authors' update
  U <- U - lr (1/m) sum_i r_i (A_i + A_i^T) * U, written with numpy loops."""
  sensing = dict(SENSING, n_train=40, n_test=5)
  traj = _run(tmp_path, "tubal_factorization", sensing,
              dict(factorization="symmetric", tube=3, width=4, init_scale=0.1), lr=0.05)
  ds = traj.dataset()
  u = np.asarray(traj.params(0, member=0)["U"], np.float64)
  assert abs(np.std(u) * math.sqrt(4) / 0.1 - 1) < 0.3               # 0.1 * N(0, 1/R)
  a, y = ds.x_train, ds.y_train[:, 0]
  a_sym = np.array([ai + ttrans(ai) for ai in a])
  losses = []
  for step in range(61):
    x = tprod(u, ttrans(u))
    r = np.einsum("mabj,abj->m", a, x) - y
    if step % 10 == 0:
      np.testing.assert_allclose(np.asarray(traj.params(step, 0)["U"]), u, rtol=1e-9,
                                 atol=1e-13)
      losses.append(0.5 * np.mean(r ** 2))
    u = u - 0.05 * tprod(np.einsum("m,mabj->abj", r, a_sym) / len(y), u)
  np.testing.assert_allclose(traj.metrics["train_loss"][0], losses, rtol=1e-9)
  assert losses[-1] < losses[0]
