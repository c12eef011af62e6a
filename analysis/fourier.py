"""Fourier analysis on Z_p: the real Fourier basis, Fourier norms of weight matrices, and
per-neuron spectra of two-layer networks.

The basis of Nanda, Chan, Lieberum, Smith, Steinhardt 2023 ("Progress measures for grokking via
mechanistic interpretability", Sec. 4): rows 0 = const, 2k - 1 = cos k, 2k = sin k
(k = 1..K, K = (p - 1) / 2); per-frequency arrays have length K and hold frequency k at index
k - 1. analysis.grokking builds its progress measures on it (and re-exports these names).
Everything computes in the input's dtype with HIGHEST matmul precision.
"""
import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

_HI = jax.lax.Precision.HIGHEST

# ---- Fourier basis on Z_p -------------------------------------------------------------------
def _check_p(p: int) -> int:
  if not isinstance(p, (int, np.integer)) or p < 3 or p % 2 == 0:
    raise ValueError(f"p={p!r} must be an odd integer >= 3")
  return int(p)


def num_frequencies(p: int) -> int:
  """K = (p - 1) / 2, the number of nonzero frequencies (k and p - k are the same one)."""
  return (_check_p(p) - 1) // 2


def frequency_rows(k: int) -> tuple[int, int]:
  """(cos row, sin row) = (2k - 1, 2k) of frequency k in fourier_basis."""
  if k < 1:
    raise ValueError(f"frequency k={k} must be >= 1 (row 0 is the constant)")
  return 2 * k - 1, 2 * k


def row_frequency(r: int) -> int:
  """The frequency of fourier_basis row r: 0 for the constant row, else (r + 1) // 2."""
  return (r + 1) // 2


def _default_float():
  return jax.dtypes.canonicalize_dtype(jnp.float64)


def _basis_np(p: int) -> np.ndarray:
  x = np.arange(p)
  rows = [np.ones(p)]
  for k in range(1, (p - 1) // 2 + 1):
    rows += [np.cos(2 * np.pi * k * x / p), np.sin(2 * np.pi * k * x / p)]
  B = np.stack(rows)
  return B / np.linalg.norm(B, axis=1, keepdims=True)


def fourier_basis(p: int, dtype=None) -> tuple[jax.Array, list[str]]:
  """Orthonormal real Fourier basis of functions on Z_p (Nanda et al. 2023, Sec. 4).

  Row 0 is the constant 1/sqrt(p); rows 2k - 1 and 2k are sqrt(2/p) cos(2 pi k x / p) and
  sqrt(2/p) sin(2 pi k x / p) for k = 1..(p - 1)/2: the order is const, cos 1, sin 1, cos 2,
  sin 2, ... (see frequency_rows / row_frequency). B @ B.T = I, and B @ f are the Fourier
  coefficients of a function f [p] on Z_p.

  Args:
    p: odd modulus.
    dtype: float dtype of B (default float64 when jax x64 is on, else float32).

  Returns:
    (B [p, p], names): names[r] is 'const', 'cos k' or 'sin k'.
  """
  p = _check_p(p)
  names = ["const"] + [f"{t} {k}" for k in range(1, (p - 1) // 2 + 1) for t in ("cos", "sin")]
  return jnp.asarray(_basis_np(p), dtype or _default_float()), names


def _float(x) -> jax.Array:
  x = jnp.asarray(x)
  return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(_default_float())


class FourierNorms(NamedTuple):
  """Norms of the Fourier components of a matrix along its input axis.

  Attributes:
    rows: [p], the norm of the component on each basis row (fourier_basis order).
    freqs: [K], sqrt(cos k^2 + sin k^2) per frequency k = 1..K (index k - 1): phase-invariant.
    const: scalar, rows[0].
  """
  rows: jax.Array
  freqs: jax.Array
  const: jax.Array


@functools.partial(jax.jit, static_argnames=("p", "axis"))
def fourier_norms(W, p: Optional[int] = None, axis: int = 0) -> FourierNorms:
  """Fourier norms of W over its input axis (Nanda et al. 2023, Fig. 3: W_E is sparse).

  W_E [p (+1), d_model] with axis=0 gives per-row norms ||B W_E||_row; W_L [d_mlp, p] with
  axis=-1 gives the norms over the logit axis. The norm is taken over all other axes. With
  rows (orthonormal B), sum(rows^2) = ||W||_F^2 (Parseval).

  Args:
    W: array with an input axis of size p (or more: then p must be given and the first p
      entries are used, e.g. W_E [p + 1, d_model] with its '=' row).
    p: modulus (default: W.shape[axis]).
    axis: the input axis.

  Returns:
    FourierNorms in W's dtype.
  """
  W = jnp.moveaxis(_float(W), axis, 0)
  p = _check_p(W.shape[0] if p is None else p)
  W_pxr = jnp.reshape(W[:p], (p, -1))
  B = jnp.asarray(_basis_np(p), W.dtype)
  rows = jnp.sqrt(jnp.sum(jnp.square(jnp.matmul(B, W_pxr, precision=_HI)), axis=1))
  pairs = jnp.reshape(rows[1:], ((p - 1) // 2, 2))
  return FourierNorms(rows, jnp.sqrt(jnp.sum(jnp.square(pairs), axis=1)), rows[0])


# ---- two-layer networks: per-neuron spectra -------------------------------------------------
class NeuronSpectrum(NamedTuple):
  """Per-neuron DFT of input weights over Z_p: W[j, x] = const_j + sum_k A_jk cos(w_k x + P_jk).

  Attributes:
    amplitude: [width, K], A_jk = (2/p) |sum_x W[j, x] e^{-i w_k x}| (k = 1..K at k - 1).
    phase: [width, K], P_jk = arg of that sum, in (-pi, pi].
    const: [width], the mean of W[j, :].
    freq: int32 [width], the dominant frequency (largest amplitude) in 1..K.
    freq_phase: [width], the phase at freq.
    share: [width], A_{j,freq}^2 / sum_k A_jk^2: 1 for a single-frequency neuron.
  """
  amplitude: jax.Array
  phase: jax.Array
  const: jax.Array
  freq: jax.Array
  freq_phase: jax.Array
  share: jax.Array


@jax.jit
def neuron_spectrum(W_a) -> NeuronSpectrum:
  """Magnitude and phase per frequency of each neuron's input weights over Z_p.

  Two-layer nets on modular addition ("On the Mechanism and Dynamics of Modular Addition", 2025):
  each neuron's input weights become a single cosine cos(w_k x + phi) (share -> 1). For odd p the
  decomposition in NeuronSpectrum is exact (inverse real DFT), so a neuron r cos(w_k x + phi) + c
  has amplitude r and phase phi at k.

  Args:
    W_a: [width, p], the input weights of each neuron for one operand (e.g. w[:, :p] of
      dynamics.models.two_layer on the concatenated one-hot pair).

  Returns:
    NeuronSpectrum in W_a's dtype.
  """
  W = _float(W_a)
  p = _check_p(W.shape[1])
  x, k = np.arange(p)[:, None], np.arange(1, (p - 1) // 2 + 1)[None, :]
  C = jnp.matmul(W, jnp.asarray(np.cos(2 * np.pi * k * x / p), W.dtype), precision=_HI)
  S = jnp.matmul(W, jnp.asarray(np.sin(2 * np.pi * k * x / p), W.dtype), precision=_HI)
  amp, phase = (2 / p) * jnp.sqrt(C * C + S * S), jnp.arctan2(-S, C)
  j = jnp.argmax(amp, axis=1)
  dom = jnp.take_along_axis(amp, j[:, None], axis=1)[:, 0]
  tot = jnp.sum(amp * amp, axis=1)
  return NeuronSpectrum(amp, phase, jnp.mean(W, axis=1), j.astype(jnp.int32) + 1,
                        jnp.take_along_axis(phase, j[:, None], axis=1)[:, 0],
                        dom * dom / jnp.where(tot > 0, tot, 1))


def predicted_frequency(*spectra) -> jax.Array:
  """Each neuron's predicted winning frequency from its INITIAL spectra (lottery ticket).

  "On the Mechanism and Dynamics of Modular Addition" (2025): frequencies compete within a neuron
  and the one with the largest initial spectral magnitude (and phase alignment) wins. This is the
  magnitude part: the argmax over k of the product of the given amplitudes (one spectrum: its
  argmax magnitude; several, e.g. the two input halves and the output weights: the product). Phase
  alignment is not used.

  Args:
    *spectra: NeuronSpectrum or amplitude arrays [width, K], all of the same shape.

  Returns:
    int32 [width] in 1..K.
  """
  if not spectra:
    raise ValueError("give at least one spectrum")
  amps = [s.amplitude if isinstance(s, NeuronSpectrum) else jnp.asarray(s) for s in spectra]
  return jnp.argmax(functools.reduce(jnp.multiply, amps), axis=1).astype(jnp.int32) + 1


def share_agreement(pred, final) -> jax.Array:
  """Share of neurons whose predicted frequency equals the final one (e.g. spectrum.freq)."""
  pred, final = jnp.asarray(pred), jnp.asarray(final)
  if pred.shape != final.shape:
    raise ValueError(f"shapes differ: {pred.shape} vs {final.shape}")
  return jnp.mean((pred == final).astype(_default_float()))
