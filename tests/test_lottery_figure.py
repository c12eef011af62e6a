"""The lottery-ticket figure: its Fourier helpers against numpy's FFT and the addition table, and
its pipeline on a tiny two-layer run (the quick reproduction itself takes ~20 s on a CPU)."""
import json
import os

import numpy as np
import pytest

from analysis import trajectory
from dynamics import experiment
from experiments.configs import lottery as lottery_cfg
from experiments.figures import lottery


def _fft(x):
  """Independent reference: F_k = sum_x f(x) e^{-2 pi i k x / p}, k = 1..K, via numpy."""
  p = x.shape[-1]
  return np.fft.fft(x, axis=-1)[..., 1:(p - 1) // 2 + 1]


def test_alignment_score_matches_numpy_fft_and_the_addition_table():
  p, m = 11, 6
  rng = np.random.default_rng(0)
  w, v = rng.normal(size=(2, m, 2 * p)), rng.normal(size=(2, m, p))   # [member, width, .]
  s = lottery.spectra(dict(w=w, v=v), p)
  score = np.asarray(lottery.alignment_score(s))
  assert score.shape == (2, m, (p - 1) // 2)
  # f(x) = sum_k A_k cos(w_k x + P_k) has F_k = (p/2) A_k e^{i P_k}, so the score
  # A_a A_b A_v cos(P_a + P_b - P_v) is (2/p)^3 Re(F_a F_b conj(F_v))
  Fa, Fb, Fv = _fft(w[..., :p]), _fft(w[..., p:]), _fft(v)
  np.testing.assert_allclose(score, (2 / p) ** 3 * np.real(Fa * Fb * np.conj(Fv)),
                             rtol=1e-9, atol=1e-12)
  # the neuron's correlation with the addition table, summed over all p^2 pairs
  a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
  table = np.einsum("...ab,...ab->...", w[..., :p][..., :, None] * w[..., p:][..., None, :],
                    v[..., (a + b) % p])
  c = w[..., :p].mean(-1) * w[..., p:].mean(-1) * v.mean(-1)
  np.testing.assert_allclose(table, p * p * c + p * p / 4 * score.sum(-1), rtol=1e-9)


def test_dominant_frequency_share_and_phase_misalignment_of_constructed_neurons():
  p, K = 13, 6
  x = np.arange(p)
  wave = lambda k, phi: np.cos(2 * np.pi * k * x / p + phi)
  # neuron 0: k = 4, phases 0.5 + 1.0 = 1.5 (aligned); neuron 1: mostly k = 2, with psi off by
  # 3 rad there (misaligned; -3 after wrapping to (-pi, pi]), and a weak but aligned k = 5
  w = np.stack([np.concatenate([2 * wave(4, 0.5) + 0.3, wave(4, 1.0)]),
                np.concatenate([3 * wave(2, -1.0) + 0.2 * wave(5, 0.3),
                                wave(5, 0.0) + 0.5 * wave(2, 2.5)])])
  v = np.stack([wave(4, 1.5) + 0.1 * wave(1, 0.0),
                wave(2, -1.0 + 2.5 + 3.0) + 0.2 * wave(5, 0.3)])
  s = lottery.spectra(dict(w=w, v=v), p)
  freq, share = map(np.asarray, lottery.input_frequency(s))
  np.testing.assert_array_equal(freq, [4, 2])
  e = np.abs(_fft(w[:, :p])) ** 2 + np.abs(_fft(w[:, p:])) ** 2     # numpy energy per k
  np.testing.assert_allclose(share, e.max(-1) / e.sum(-1), rtol=1e-9)
  np.testing.assert_allclose(share[0], 1.0, atol=1e-12)
  np.testing.assert_allclose(share[1], (9 + 0.25) / (9 + 0.25 + 0.04 + 1), rtol=1e-9)
  np.testing.assert_allclose(np.asarray(lottery.misalignment(s, freq)), [0.0, -3.0],
                             atol=1e-9)
  pred = np.argmax(np.asarray(lottery.alignment_score(s)), -1) + 1
  np.testing.assert_array_equal(pred, [4, 5])   # neuron 1: its k = 2 is misaligned (cos 3 < 0)
  assert s.a.amplitude.shape == (2, K)


def test_variants():
  assert lottery_cfg.get_config("quick").sweep.seed == (0, 1)
  with pytest.raises(ValueError, match="allowed"):
    lottery_cfg.get_config("tiny")


def _tiny_config():
  c = lottery_cfg.get_config("quick")
  c.data.p = 7
  c.model.width = 24
  c.train.update(dict(steps=120, log_every=10, chunk_steps=60, keep="log:5"))
  return c


def test_measures_and_report_on_a_tiny_run(tmp_path):
  t = trajectory.load(experiment.run(_tiny_config(), str(tmp_path / "main"), log=lambda *_: None))
  lm = lottery.lottery_measures(t)
  T, n, K = len(t.kept_steps), t.n_members, 3
  assert list(lm["steps"]) == t.kept_steps and t.kept_steps[0] == 0
  assert lm["freq"].shape == lm["share"].shape == lm["misalign"].shape == (T, n, 24)
  assert lm["pred_align"].shape == lm["pred_magnitude"].shape == (n, 24)
  assert lm["K"] == K and lm["freq"].min() >= 1 and lm["freq"].max() <= K
  assert np.all((lm["share"] >= 1 / K - 1e-6) & (lm["share"] <= 1 + 1e-6))
  assert np.all(np.abs(lm["misalign"]) <= np.pi + 1e-6)
  # the step-0 spectra are the init: the predictions are recomputed from the kept params
  init = lottery.spectra(t.params(0), 7)
  np.testing.assert_array_equal(
      lm["pred_align"], np.argmax(np.asarray(lottery.alignment_score(init)), -1) + 1)
  report = lottery._draw({"main": t}, str(tmp_path), True)
  assert os.path.getsize(report["figures"][0]) > 20_000
  names = [c["claim"] for c in report["claims"]]
  for fragment in ("dominant-frequency share", "predicted from the initial spectra",
                   "phi_a + phi_b - psi", "test accuracy"):
    assert any(fragment in name for name in names), (fragment, names)
  for c in report["claims"]:
    assert {"measured", "expected", "holds"} <= set(c)
  json.dumps(report)                             # report.json must be writable
