"""analysis.grokking against closed forms and independent NumPy computations (float64)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from analysis import grokking as gk


def grid(p):
  """(a, b) for every pair in table order a * p + b."""
  return np.divmod(np.arange(p * p), p)


def np_ce(logits, labels):
  """Mean cross-entropy in NumPy float64: logsumexp(z) - z_y."""
  z = np.asarray(logits, np.float64)
  m = z.max(axis=1, keepdims=True)
  lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
  return np.mean(lse - z[np.arange(len(z)), labels])


def trig_table(p, ks, alphas, shift_seed=0):
  """logits[a, b, c] = sum_k alpha_k cos(w_k (a + b - c)) plus a random per-pair shift."""
  a, b = grid(p)
  s = (a + b)[:, None] - np.arange(p)[None, :]
  T = sum(al * np.cos(2 * np.pi * k * s / p) for k, al in zip(ks, alphas))
  return T + np.random.default_rng(shift_seed).normal(size=(p * p, 1))


P, KEYS, ALPHAS = 23, (3, 7, 10), (2.0, 1.5, 3.0)


# ---- Fourier basis --------------------------------------------------------------------------
@pytest.mark.parametrize("p", [7, 11])
def test_fourier_basis_orthonormal_and_ordered(p):
  B, names = gk.fourier_basis(p)
  B = np.asarray(B)
  assert B.shape == (p, p) and B.dtype == np.float64
  np.testing.assert_allclose(B @ B.T, np.eye(p), atol=1e-12)
  x = np.arange(p)
  np.testing.assert_allclose(B[0], np.full(p, 1 / np.sqrt(p)), atol=1e-14)
  assert names[0] == "const" and len(names) == p
  for k in range(1, (p - 1) // 2 + 1):
    rc, rs = gk.frequency_rows(k)
    assert (rc, rs) == (2 * k - 1, 2 * k)
    assert gk.row_frequency(rc) == gk.row_frequency(rs) == k
    assert (names[rc], names[rs]) == (f"cos {k}", f"sin {k}")
    np.testing.assert_allclose(B[rc], np.sqrt(2 / p) * np.cos(2 * np.pi * k * x / p), atol=1e-14)
    np.testing.assert_allclose(B[rs], np.sqrt(2 / p) * np.sin(2 * np.pi * k * x / p), atol=1e-14)
  assert gk.row_frequency(0) == 0 and gk.num_frequencies(p) == (p - 1) // 2
  assert gk.fourier_basis(p, jnp.float32)[0].dtype == jnp.float32
  with pytest.raises(ValueError):
    gk.fourier_basis(8)


def test_fourier_norms_of_constructed_embedding():
  p, d = 13, 4
  x, w = np.arange(p), 2 * np.pi / p
  W_E = np.zeros((p + 1, d))
  W_E[:p, 0] = 3 * np.cos(3 * w * x)
  W_E[:p, 1] = 2 * np.sin(5 * w * x) + 0.5
  W_E[p] = 100.0                                    # the '=' row: must be ignored with p given
  fn = gk.fourier_norms(W_E, p=p)
  want = np.zeros(p)
  want[0], want[5], want[10] = 0.5 * np.sqrt(p), 3 * np.sqrt(p / 2), 2 * np.sqrt(p / 2)
  np.testing.assert_allclose(fn.rows, want, atol=1e-12)
  want_f = np.zeros(6)
  want_f[2], want_f[4] = 3 * np.sqrt(p / 2), 2 * np.sqrt(p / 2)
  np.testing.assert_allclose(fn.freqs, want_f, atol=1e-12)
  np.testing.assert_allclose(fn.const, 0.5 * np.sqrt(p), atol=1e-12)


def test_fourier_norms_match_numpy_fft_and_axis():
  p = 11
  W = np.random.default_rng(1).normal(size=(p, 5))
  fn = gk.fourier_norms(W)
  F = np.fft.fft(W, axis=0)                          # [p, 5]
  want = np.sqrt(2 / p * np.sum(np.abs(F[1:(p - 1) // 2 + 1]) ** 2, axis=1))
  np.testing.assert_allclose(fn.freqs, want, rtol=1e-12)
  np.testing.assert_allclose(fn.const, np.sqrt(np.sum(np.abs(F[0]) ** 2) / p), rtol=1e-12)
  np.testing.assert_allclose(np.sum(np.asarray(fn.rows) ** 2), np.sum(W ** 2), rtol=1e-12)
  np.testing.assert_allclose(gk.fourier_norms(W.T, axis=-1).rows, fn.rows, rtol=1e-12)
  f32 = gk.fourier_norms(W.astype(np.float32))
  assert f32.rows.dtype == jnp.float32
  np.testing.assert_allclose(f32.freqs, want, rtol=1e-5)


# ---- restricted / excluded loss and the trig fit --------------------------------------------
def test_restricted_loss_equals_full_loss_on_trig_table():
  T = trig_table(P, KEYS, ALPHAS)
  y = np.asarray(gk.addition_labels(P))
  np.testing.assert_array_equal(y, (grid(P)[0] + grid(P)[1]) % P)
  full = np_ce(T, y)
  np.testing.assert_allclose(gk.restricted_loss(T, y, KEYS), full, rtol=0, atol=1e-10)
  idx = np.random.default_rng(2).permutation(P * P)[:150]
  np.testing.assert_allclose(gk.restricted_loss(T, y, KEYS, idx), np_ce(T[idx], y[idx]),
                             atol=1e-10)
  # Dropping a used frequency from the key set changes the loss.
  assert abs(float(gk.restricted_loss(T, y, KEYS[:2])) - full) > 0.1


def test_restricted_logits_match_least_squares():
  T = np.random.default_rng(3).normal(size=(P * P, P))
  a, b = grid(P)
  X = np.stack([np.ones(P * P)] + [f(2 * np.pi * k * (a + b) / P) for k in (2, 9)
                                    for f in (np.cos, np.sin)], 1)
  coef = np.linalg.lstsq(X, T, rcond=None)[0]
  np.testing.assert_allclose(gk.restricted_logits(T, (2, 9)), X @ coef, atol=1e-12)
  # excluded keeps the constant: T - (fit without its constant column)
  np.testing.assert_allclose(gk.excluded_logits(T, (2, 9)), T - X[:, 1:] @ coef[1:], atol=1e-12)
  R3 = gk.restricted_logits(T.reshape(P, P, P), (2, 9))
  assert R3.shape == (P, P, P)
  np.testing.assert_allclose(np.asarray(R3).reshape(P * P, P), X @ coef, atol=1e-12)


def test_excluded_loss_uniform_when_keys_removed_and_unchanged_for_unused():
  T = trig_table(P, KEYS, ALPHAS)
  y = np.asarray(gk.addition_labels(P))
  train = np.random.default_rng(4).permutation(P * P)[:160]
  np.testing.assert_allclose(gk.excluded_loss(T, y, KEYS, train), np.log(P), atol=1e-10)
  np.testing.assert_allclose(gk.excluded_loss(T, y, (5,), train), np_ce(T[train], y[train]),
                             atol=1e-10)
  per = np.asarray(gk.excluded_loss_per_frequency(T, y, KEYS, train))
  a, b = grid(P)
  s = (a + b)[:, None] - np.arange(P)[None, :]
  for j, (k, al) in enumerate(zip(KEYS, ALPHAS)):
    Tj = T - al * np.cos(2 * np.pi * k * s / P)     # the table without frequency k
    np.testing.assert_allclose(per[j], np_ce(Tj[train], y[train]), atol=1e-10)


def test_losses_jit_float32_and_3d_layout():
  T = trig_table(P, KEYS, ALPHAS)
  y = np.asarray(gk.addition_labels(P))
  train = np.arange(0, P * P, 3)
  f = jax.jit(lambda t, i: gk.excluded_loss(t, y, KEYS, i))
  np.testing.assert_allclose(f(jnp.asarray(T), train), gk.excluded_loss(T, y, KEYS, train),
                             atol=1e-12)
  r32 = gk.restricted_loss(T.astype(np.float32), y, KEYS)
  assert r32.dtype == jnp.float32
  np.testing.assert_allclose(r32, np_ce(T, y), rtol=1e-4)
  np.testing.assert_allclose(gk.restricted_loss(T.reshape(P, P, P), y.reshape(P, P), KEYS),
                             np_ce(T, y), atol=1e-10)
  with pytest.raises(ValueError):
    gk.restricted_loss(T, y, (12,))                  # 12 > (23 - 1) / 2
  with pytest.raises(ValueError):
    gk.restricted_loss(T, y, (3, 3))


def test_trig_fit_recovers_alphas_and_matches_lstsq_with_noise():
  T = trig_table(P, KEYS, ALPHAS)
  fit = gk.trig_fit(T, KEYS)
  np.testing.assert_allclose(fit.alphas, ALPHAS, atol=1e-10)
  np.testing.assert_allclose(fit.explained_variance, 1.0, atol=1e-10)
  # With noise: against least squares on the per-pair-centered logits.
  Tn = T + 0.5 * np.random.default_rng(5).normal(size=T.shape)
  L = Tn - Tn.mean(axis=1, keepdims=True)
  a, b = grid(P)
  s = (a + b)[:, None] - np.arange(P)[None, :]
  X = np.stack([np.cos(2 * np.pi * k * s / P).ravel() for k in KEYS], 1)
  coef, res = np.linalg.lstsq(X, L.ravel(), rcond=None)[:2]
  fit = gk.trig_fit(Tn, KEYS)
  np.testing.assert_allclose(fit.alphas, coef, atol=1e-10)
  np.testing.assert_allclose(fit.explained_variance, 1 - res[0] / np.sum(L ** 2), atol=1e-10)
  assert 0.5 < float(fit.explained_variance) < 0.999


# ---- neurons and key frequencies ------------------------------------------------------------
def make_neurons(p=23, freqs=(3, 7, 10), per=8, n_noise=4, extra=()):
  """relu(cos(w_k a + phi) + cos(w_k b + psi)) neurons with known k, then Gaussian neurons."""
  rng = np.random.default_rng(6)
  a, b = grid(p)
  ks = [k for k in freqs for _ in range(per)] + list(extra)
  cols = []
  for k in ks:
    phi, psi = rng.uniform(-np.pi, np.pi, 2)
    w = 2 * np.pi * k / p
    cols.append(np.maximum(np.cos(w * a + phi) + np.cos(w * b + psi), 0))
  cols += list(rng.normal(size=(n_noise, p * p)))
  return np.stack(cols, 1), np.array(ks)


def fft_shares(A, p):
  """Independent reference: per-frequency share of centered energy from np.fft.fft2."""
  F = np.abs(np.fft.fft2(A.T.reshape(-1, p, p))) ** 2   # [d, p, p]
  F[:, 0, 0] = 0
  out = []
  for k in range(1, (p - 1) // 2 + 1):
    bins = [(u, v) for u in (0, k, p - k) for v in (0, k, p - k) if (u, v) != (0, 0)]
    out.append(sum(F[:, u, v] for u, v in bins))
  return np.stack(out, 1) / F.sum(axis=(1, 2))[:, None]


def test_neuron_frequencies_recover_constructed_neurons():
  A, ks = make_neurons()
  nf = gk.neuron_frequencies(A)
  np.testing.assert_allclose(nf.shares, fft_shares(A, P), atol=1e-12)
  np.testing.assert_array_equal(np.asarray(nf.freq)[:len(ks)], ks)
  assert np.all(np.asarray(nf.share)[:len(ks)] > 0.9)
  assert np.all(np.asarray(nf.share)[len(ks):] < 0.5)    # Gaussian neurons are not clean
  nf3 = gk.neuron_frequencies(A.reshape(P, P, -1))
  np.testing.assert_allclose(nf3.shares, nf.shares, atol=1e-14)
  np.testing.assert_array_equal(gk.key_frequencies(A), [3, 7, 10])


def test_key_frequencies_neuron_count_threshold():
  A, _ = make_neurons(extra=(5,))                        # one clean neuron at frequency 5
  d = A.shape[1]                                         # 29 neurons: 1 / 29 > 0.02
  np.testing.assert_array_equal(gk.key_frequencies(A), [3, 5, 7, 10])
  np.testing.assert_array_equal(gk.key_frequencies(A, min_neuron_fraction=2.5 / d), [3, 7, 10])
  assert gk.key_frequencies(A, neuron_share=0.99).size == 0


def test_key_frequencies_from_weights():
  p, d = 23, 16
  rng = np.random.default_rng(7)
  c = np.arange(p)
  W_L = (rng.normal(size=(d, 1)) * np.cos(2 * np.pi * 2 * c / p)
         + rng.normal(size=(d, 1)) * np.sin(2 * np.pi * 5 * c / p)
         + 0.02 * rng.normal(size=(d, p)))
  np.testing.assert_array_equal(gk.key_frequencies(W_L, "W_L"), [2, 5])
  W_E = np.zeros((p + 1, d))
  W_E[p] = 50 * rng.normal(size=d)                       # the '=' row: ignored with p given
  x = np.arange(p)[:, None]
  W_E[:p] = (np.cos(2 * np.pi * 3 * x / p + rng.uniform(0, 6, (1, d)))
             + 0.6 * np.cos(2 * np.pi * 4 * x / p) * rng.normal(size=(1, d))
             + 0.01 * rng.normal(size=(p, d)))
  np.testing.assert_array_equal(gk.key_frequencies(W_E, "W_E", p=p), [3, 4])
  with pytest.raises(ValueError):
    gk.key_frequencies(W_E, "W_X")


# ---- Gini and weight norms ------------------------------------------------------------------
def test_gini_closed_forms():
  np.testing.assert_allclose(gk.gini(np.full(9, 2.5)), 0.0, atol=1e-14)
  for n in (1, 2, 7):
    np.testing.assert_allclose(gk.gini(np.eye(n)[n // 2]), (n - 1) / n, atol=1e-14)
  # sorted x = 1, 2, 3, 4: 2 * 30 / (4 * 10) - 5 / 4 = 0.25, in any order.
  np.testing.assert_allclose(gk.gini(np.array([3.0, 1.0, 4.0, 2.0])), 0.25, atol=1e-14)
  x = np.random.default_rng(8).uniform(size=(3, 17))
  mad = np.abs(x[:, :, None] - x[:, None, :]).sum(axis=(1, 2)) / (2 * 17 ** 2 * x.mean(axis=1))
  np.testing.assert_allclose(gk.gini(x), mad, rtol=1e-12)


def test_weight_norms_paths_and_values():
  rng = np.random.default_rng(9)
  params = dict(embed=dict(W_E=rng.normal(size=(5, 3))),
                mlp=dict(W_in=rng.normal(size=(3, 4)), b_in=rng.normal(size=(4,))),
                w=[rng.normal(size=(2,)), rng.normal(size=(2, 2))])
  wn = gk.weight_norms(params)
  want = {"embed/W_E": params["embed"]["W_E"], "mlp/W_in": params["mlp"]["W_in"],
          "mlp/b_in": params["mlp"]["b_in"], "w/0": params["w"][0], "w/1": params["w"][1]}
  assert set(wn.per_leaf) == set(want)
  for name, x in want.items():
    np.testing.assert_allclose(wn.per_leaf[name], np.sum(x ** 2), rtol=1e-14)
  np.testing.assert_allclose(wn.total, sum(np.sum(x ** 2) for x in want.values()), rtol=1e-14)


# ---- Prieto et al. metrics ------------------------------------------------------------------
ROWS = np.array([[30.0, 0.0, 0.0],       # float32: 1 + 2 e^-30 == 1 (collapse); float64: not
                 [1.0, 0.0, 0.0],        # small margin: never
                 [0.0, 0.5, 40.0],       # collapse in float32 and float64 (e^-39.5 < eps/2)
                 [2.0, 2.0, 0.0]])       # tie: never
LABELS = np.array([0, 0, 2, 1])


def test_softmax_collapse_share_depends_on_precision():
  np.testing.assert_allclose(gk.softmax_collapse_share(ROWS.astype(np.float32)), 0.5)
  np.testing.assert_allclose(gk.softmax_collapse_share(ROWS), 0.25)
  assert gk.softmax_collapse_share(ROWS.astype(np.float32)).dtype == jnp.float32


def test_zero_loss_share_depends_on_precision():
  np.testing.assert_allclose(gk.zero_loss_share(ROWS.astype(np.float32), LABELS), 0.5)
  np.testing.assert_allclose(gk.zero_loss_share(ROWS, LABELS), 0.25)
  # a collapsed row whose label is NOT the max has loss 30, not 0
  np.testing.assert_allclose(gk.zero_loss_share(ROWS[:1].astype(np.float32), np.array([1])), 0.0)


def test_grad_weight_cosine_against_numpy():
  rng = np.random.default_rng(10)
  params = dict(a=rng.normal(size=(3, 4)), b=[rng.normal(size=(5,))])
  grads = dict(a=rng.normal(size=(3, 4)), b=[rng.normal(size=(5,))])
  g = np.concatenate([grads["a"].ravel(), grads["b"][0]])
  w = np.concatenate([params["a"].ravel(), params["b"][0]])
  np.testing.assert_allclose(gk.grad_weight_cosine(grads, params),
                             g @ w / np.linalg.norm(g) / np.linalg.norm(w), rtol=1e-12)
  neg = jax.tree.map(lambda x: -2.0 * x, params)
  np.testing.assert_allclose(gk.grad_weight_cosine(neg, params), -1.0, rtol=1e-12)
  zero = jax.tree.map(np.zeros_like, params)
  np.testing.assert_allclose(gk.grad_weight_cosine(zero, params), 0.0)
  # a float32 gradient of size ~1e-19, as late in a run without weight decay: its squares
  # underflow float32, the cosine must not change (it once came out near -30)
  tiny = jax.jit(lambda gr, p: gk.grad_weight_cosine(gr, p))(
      jax.tree.map(lambda x: jnp.asarray(x * 1e-19, jnp.float32), grads),
      jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params))
  np.testing.assert_allclose(tiny, g @ w / np.linalg.norm(g) / np.linalg.norm(w), rtol=1e-5)


# ---- two-layer spectra ----------------------------------------------------------------------
def test_neuron_spectrum_recovers_frequency_and_phase():
  p = 23
  rng = np.random.default_rng(11)
  ks = np.array([1, 4, 4, 9, 11, 6])
  phis = rng.uniform(-3.0, 3.0, size=6)
  r, c = rng.uniform(1, 2, size=6), rng.normal(size=6)
  x = np.arange(p)[None, :]
  W = (r[:, None] * np.cos(2 * np.pi * ks[:, None] * x / p + phis[:, None]) + c[:, None]
       + 0.3 * np.cos(2 * np.pi * ((ks[:, None] % 11) + 1) * x / p))   # a weaker other frequency
  sp = gk.neuron_spectrum(W)
  np.testing.assert_array_equal(sp.freq, ks)
  np.testing.assert_allclose(np.angle(np.exp(1j * (np.asarray(sp.freq_phase) - phis))), 0,
                             atol=1e-12)
  np.testing.assert_allclose(np.asarray(sp.amplitude)[np.arange(6), ks - 1], r, rtol=1e-12)
  np.testing.assert_allclose(sp.const, c, atol=1e-12)
  np.testing.assert_allclose(sp.share, r ** 2 / (r ** 2 + 0.09), rtol=1e-12)
  # random weights: against numpy's FFT
  V = rng.normal(size=(5, p))
  F = np.fft.fft(V, axis=1)[:, 1:(p - 1) // 2 + 1]
  sv = gk.neuron_spectrum(V)
  np.testing.assert_allclose(sv.amplitude, 2 * np.abs(F) / p, rtol=1e-12)
  np.testing.assert_allclose(np.exp(1j * np.asarray(sv.phase)), F / np.abs(F), atol=1e-12)
  s32 = gk.neuron_spectrum(W.astype(np.float32))
  assert s32.amplitude.dtype == jnp.float32
  np.testing.assert_array_equal(s32.freq, ks)


def test_predicted_frequency_and_agreement():
  amp_in = np.array([[0.1, 0.9, 0.2], [0.5, 0.4, 0.1]])
  amp_out = np.array([[1.0, 0.1, 1.0], [0.1, 1.0, 0.1]])
  np.testing.assert_array_equal(gk.predicted_frequency(amp_in), [2, 1])
  np.testing.assert_array_equal(gk.predicted_frequency(amp_in, amp_out), [3, 2])
  p = 11
  x = np.arange(p)[None, :]
  W0 = np.cos(2 * np.pi * np.array([[2], [5], [3]]) * x / p)
  np.testing.assert_array_equal(gk.predicted_frequency(gk.neuron_spectrum(W0)), [2, 5, 3])
  np.testing.assert_allclose(gk.share_agreement(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4])),
                             0.75)
