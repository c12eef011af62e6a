"""Progress measures for grokking on modular addition, and numerical-stability diagnostics.

Nanda, Chan, Lieberum, Smith, Steinhardt 2023 ("Progress measures for grokking via mechanistic
interpretability", Sec. 4-5): a one-layer transformer computes (a + b) mod p by embedding a and b
as cos / sin of a few KEY FREQUENCIES w_k = 2 pi k / p and reading out
logits[a, b, c] ~ sum_k alpha_k cos(w_k (a + b - c)). The progress measures are the restricted
loss (logits kept only on the key-frequency directions), the excluded loss (those directions
removed, on the train split), the Gini coefficient of Fourier norms and the sum of squared
weights. Prieto et al. 2025 ("Grokking at the Edge of Numerical Stability", Sec. 3-4): softmax
collapse (sum exp(z - max z) == 1 exactly), exactly-zero losses, and the cosine between gradient
and weights (naive loss minimization). "On the Mechanism and Dynamics of Modular Addition:
Fourier Features, Lottery Ticket, and Grokking" (2025): per-neuron spectra of two-layer nets
(single frequency, lottery ticket).
The Fourier basis, Fourier norms and neuron spectra live in analysis.fourier (re-exported here).

Conventions (shared by every function):
  * p is odd (an odd prime in the papers). Pairs (a, b) in Z_p x Z_p are in TABLE ORDER,
    index = a * p + b. A table is [p*p, C] (rows in table order) or [p, p, C]; a logit table
    has C = p (the '=' class dropped). Functions that return a table keep the input's layout.
  * Labels are given explicitly, in table order ([p*p] or [p, p]); a split is an integer index
    array into table order (train_idx, test_idx).
  * Fourier basis rows: 0 = const, 2k - 1 = cos k, 2k = sin k (k = 1..K, K = (p - 1) / 2).
    Per-frequency arrays have length K and hold frequency k at index k - 1.
  * Key frequencies are STATIC (a Python / NumPy sequence of ints in 1..K): they fix shapes, so
    a jitted caller closes over them. Fix them from the final checkpoint and reuse them for
    every earlier checkpoint (Nanda et al. Sec. 5.1).
  * Everything computes in the input's dtype (float32 or float64, NumPy or JAX input) with
    HIGHEST matmul precision; constants are built in float64 NumPy and cast. Only
    key_frequencies (variable-length output) is host-side.

    keys = key_frequencies(acts_final)                  # e.g. array([14, 35, 41, 42, 52])
    restricted_loss(logits, labels, keys)               # all pairs (paper)
    excluded_loss(logits, labels, keys, train_idx)      # train split (paper)
"""
import functools
import logging
import math
import time
from typing import Any, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from analysis.fourier import (  # noqa: F401  (re-exported: the basis is part of this API)
    FourierNorms, NeuronSpectrum, _basis_np, _check_p, _float, fourier_basis,
    fourier_norms, frequency_rows, neuron_spectrum, num_frequencies, predicted_frequency,
    row_frequency, share_agreement)
from dynamics import losses

_HI = jax.lax.Precision.HIGHEST

# key_frequencies(rule='neurons'): a neuron is "clean" when its dominant frequency holds more
# than this share of its centered energy (Nanda et al.'s notebook clusters neurons at 0.85).
NEURON_SHARE = 0.85
# ... and a frequency is key when at least this fraction of ALL neurons are clean at it.
MIN_NEURON_FRACTION = 0.02
# key_frequencies(rule='W_E' / 'W_L'): a frequency is key when its Fourier norm is at least this
# fraction of the largest frequency norm ("above max/4", REFERENCE.md Sec. 3).
REL_NORM_THRESHOLD = 0.25


# ---- tables ---------------------------------------------------------------------------------
def _as_table(x) -> tuple[jax.Array, int]:
  """A table [p, p, C] or [p*p, C] as ([p*p, C] float, p)."""
  x = _float(x)
  if x.ndim == 3 and x.shape[0] == x.shape[1]:
    p = x.shape[0]
    x = jnp.reshape(x, (p * p, x.shape[2]))
  elif x.ndim == 2 and math.isqrt(x.shape[0]) ** 2 == x.shape[0]:
    p = math.isqrt(x.shape[0])
  else:
    raise ValueError(f"expected a table [p, p, C] or [p*p, C]; got shape {x.shape}")
  return x, _check_p(p)


def _key_freqs(key_freqs, p: int) -> tuple[int, ...]:
  ks = tuple(int(k) for k in np.asarray(key_freqs).reshape(-1))
  K = (p - 1) // 2
  if any(k < 1 or k > K for k in ks) or len(set(ks)) != len(ks):
    raise ValueError(f"key frequencies {ks} must be distinct integers in 1..{K} (p={p})")
  return ks


def addition_labels(p: int) -> jax.Array:
  """(a + b) mod p for every pair in table order, int32 [p*p]."""
  a, b = np.divmod(np.arange(_check_p(p) * p), p)
  return jnp.asarray((a + b) % p, jnp.int32)


def _sum_directions(p: int, ks: Sequence[int], dtype) -> jax.Array:
  """[m, p*p, 2]: unit cos(w(a+b)) and sin(w(a+b)) on the grid for each key frequency.

  Equal to (cos a cos b - sin a sin b)/sqrt2 and (sin a cos b + cos a sin b)/sqrt2 in the
  orthonormal basis (REFERENCE.md Sec. 3); ||cos(w(a+b))||^2 = p^2 / 2 over the grid.
  """
  a, b = np.divmod(np.arange(p * p), p)
  w = 2 * np.pi * np.reshape(ks, (-1, 1)) * (a + b) / p                 # [m, p*p]
  return jnp.asarray(np.stack([np.cos(w), np.sin(w)], -1) * (np.sqrt(2.0) / p), dtype)


def _key_components(T_nxc, p, ks):
  """Per key frequency, the projection of every column on its two directions: [m, p*p, C]."""
  U = _sum_directions(p, ks, T_nxc.dtype)
  coef = jnp.einsum("mnt,nc->mtc", U, T_nxc, precision=_HI)
  return jnp.einsum("mnt,mtc->mnc", U, coef, precision=_HI)


@functools.partial(jax.jit, static_argnames=("ks", "restrict"))
def _project(T_nxc, ks, restrict):
  """restrict: mean + key components (restricted); else T - key components (excluded)."""
  p = math.isqrt(T_nxc.shape[0])
  comps = jnp.sum(_key_components(T_nxc, p, ks), axis=0)
  return jnp.mean(T_nxc, axis=0, keepdims=True) + comps if restrict else T_nxc - comps


def _restore(x_nxc, like):
  return jnp.reshape(x_nxc, jnp.shape(like)) if jnp.ndim(like) == 3 else x_nxc


def restricted_logits(table, key_freqs) -> jax.Array:
  """The table projected on const + {cos(w(a+b)), sin(w(a+b))} of the key frequencies.

  Nanda et al. 2023, Sec. 5.1 "restricted loss": each output column, a function on the p x p
  grid, is projected on the constant and on the two directions cos(w_k(a+b)), sin(w_k(a+b))
  per key frequency (orthonormal over the grid for distinct k in 1..K). Nanda et al. project
  the MLP activations and map them through W_L, keeping only the mean of the other paths;
  projecting the logit table of any model is the same for the MLP path (the projection is
  linear), and also projects the direct paths. Projecting activations is this function on the
  activation table [p*p, d_mlp] (then multiply by W_L).

  Args:
    table: [p*p, C] or [p, p, C] (logits, or any per-pair features).
    key_freqs: static sequence of distinct frequencies in 1..(p-1)/2.

  Returns:
    The projected table, same shape and dtype.
  """
  T, p = _as_table(table)
  return _restore(_project(T, _key_freqs(key_freqs, p), True), table)


def excluded_logits(table, key_freqs) -> jax.Array:
  """The table minus its projections on cos(w(a+b)), sin(w(a+b)) of the key frequencies.

  Nanda et al. 2023, Sec. 5.1 "excluded loss": the constant component is kept (only the
  key-frequency directions are removed, all at once); projections are over the full p x p
  grid. Args and result as restricted_logits.
  """
  T, p = _as_table(table)
  return _restore(_project(T, _key_freqs(key_freqs, p), False), table)


def _loss_inputs(table, labels, key_freqs):
  """(table [p*p, C], labels [p*p], key frequencies) of a loss, each checked."""
  T, p = _as_table(table)
  y = jnp.reshape(jnp.asarray(labels), (-1,))
  if y.shape[0] != p * p:
    raise ValueError(f"labels must cover all {p * p} pairs in table order; got {y.shape[0]}")
  return T, y, _key_freqs(key_freqs, p)


def _mean_ce(logits_nxc, y, idx, float64):
  if idx is not None:
    logits_nxc, y = logits_nxc[idx], y[idx]
  return jnp.mean(losses.cross_entropy(logits_nxc, y, float64=float64))


@functools.partial(jax.jit, static_argnames=("ks", "restrict", "float64"))
def _projected_loss(T_nxc, y, ks, idx, restrict, float64):
  return _mean_ce(_project(T_nxc, ks, restrict), y, idx, float64)


def restricted_loss(table, labels, key_freqs, idx=None, float64: bool = False) -> jax.Array:
  """Mean cross-entropy of restricted_logits over the pairs idx (Nanda et al. 2023, Sec. 5.1).

  Args:
    table: logit table [p*p, p] or [p, p, p].
    labels: integer labels [p*p] (or [p, p]) in table order.
    key_freqs: static sequence of key frequencies.
    idx: integer indices into table order (default None: all pairs, as in the paper).
    float64: passed to dynamics.losses.cross_entropy (log1p form in float64; needs x64).
      Otherwise log-softmax in the table's dtype.

  Returns:
    Scalar loss in the table's dtype.
  """
  return _projected_loss(*_loss_inputs(table, labels, key_freqs), idx, True, float64)


def excluded_loss(table, labels, key_freqs, idx, float64: bool = False) -> jax.Array:
  """Mean cross-entropy of excluded_logits (all key frequencies removed: "full") over idx.

  Nanda et al. 2023, Sec. 5.1 evaluate it on the TRAIN split (idx; None: all pairs): it rises
  during circuit formation, when the train loss starts to depend on the generalizing circuit.
  Args and result as restricted_loss.
  """
  return _projected_loss(*_loss_inputs(table, labels, key_freqs), idx, False, float64)


def excluded_loss_per_frequency(table, labels, key_freqs, idx,
                                float64: bool = False) -> jax.Array:
  """excluded_loss with ONE key frequency removed at a time: [m], entry j for key_freqs[j].

  Args and dtype as excluded_loss.
  """
  return _excluded_each(*_loss_inputs(table, labels, key_freqs), idx, float64)


@functools.partial(jax.jit, static_argnames=("ks", "float64"))
def _excluded_each(T_nxc, y, ks, idx, float64):
  comps = _key_components(T_nxc, math.isqrt(T_nxc.shape[0]), ks)
  return jax.vmap(lambda c: _mean_ce(T_nxc - c, y, idx, float64))(comps)


class TrigFit(NamedTuple):
  """Least-squares fit of logits by sum_k alpha_k cos(w_k (a + b - c)).

  Attributes:
    alphas: [m], one per key frequency (order of key_freqs).
    explained_variance: scalar, 1 - ||L - fit||^2 / ||L||^2 for the per-pair-centered logits L.
  """
  alphas: jax.Array
  explained_variance: jax.Array


def trig_fit(table, key_freqs) -> TrigFit:
  """Fit logits[a, b, c] ~ sum_k alpha_k cos(w_k (a + b - c)) (Nanda et al. 2023, Sec. 4.2).

  Softmax is invariant to a shift of the logits of one pair, so the logits are first centered
  per (a, b) (mean over c subtracted) and the explained variance is measured on the centered
  logits L (which have zero mean, so ||L||^2 is p^3 times their variance). No offset is fit:
  the cosine features already have zero mean over c, a per-(a, b) offset is what the centering
  removes, and a per-class offset b_c (a bias, which changes predictions) is left unexplained.
  The features are orthogonal over the full grid (squared norm p^3 / 2 each, for distinct k in
  1..K), so least squares is alpha_k = <L, cos_k> / (p^3 / 2).

  Args:
    table: logit table [p*p, p] or [p, p, p] over all pairs.
    key_freqs: static sequence of distinct frequencies in 1..(p-1)/2.

  Returns:
    TrigFit in the table's dtype.
  """
  T, p = _as_table(table)
  if T.shape[1] != p:
    raise ValueError(f"trig_fit needs a logit table with p={p} classes; got {T.shape[1]}")
  return _trig_fit(T, _key_freqs(key_freqs, p))


@functools.partial(jax.jit, static_argnames=("ks",))
def _trig_fit(T, ks):
  p = T.shape[1]
  L = T - jnp.mean(T, axis=1, keepdims=True)
  a, b = np.divmod(np.arange(p * p), p)
  s = (a + b)[:, None] - np.arange(p)[None, :]                     # a + b - c
  F = jnp.asarray(np.cos(2 * np.pi * np.reshape(ks, (-1, 1, 1)) * s / p), T.dtype)
  alphas = jnp.einsum("mnc,nc->m", F, L, precision=_HI) / (p ** 3 / 2)
  resid = L - jnp.einsum("m,mnc->nc", alphas, F, precision=_HI)
  ev = 1 - jnp.sum(jnp.square(resid)) / jnp.sum(jnp.square(L))
  return TrigFit(alphas, ev)


# ---- neurons and key frequencies ------------------------------------------------------------
class NeuronFrequencies(NamedTuple):
  """Per-neuron dominant frequency of the 2-D Fourier transform of its activations.

  Attributes:
    freq: int32 [d], the dominant frequency in 1..K.
    share: [d], the share of the neuron's centered energy in that frequency's block.
    shares: [d, K], the share of every frequency (index k - 1); rows sum to <= 1 (the rest
      is in cross-frequency terms). A neuron with no centered energy has shares 0.
  """
  freq: jax.Array
  share: jax.Array
  shares: jax.Array


@jax.jit
def neuron_frequencies(acts) -> NeuronFrequencies:
  """Each neuron's frequency from the 2-D DFT of its activations (Nanda et al. 2023, Sec. 4.2).

  F_n = B A_n B^T over the (a, b) grid (B = fourier_basis(p)). The energy F^2 is centered by
  dropping the const-const entry (the neuron's mean); the block of frequency k is
  {const, cos k, sin k} x {const, cos k, sin k} minus const-const (8 entries), and its share
  is its energy over the centered energy. The dominant frequency has the largest share.

  Args:
    acts: activations [p, p, d] or [p*p, d] (table order; e.g. the MLP at the last position).

  Returns:
    NeuronFrequencies in acts' dtype.
  """
  A, p = _as_table(acts)
  K, d = (p - 1) // 2, A.shape[1]
  B = jnp.asarray(_basis_np(p), A.dtype)
  F = jnp.einsum("ia,abn,jb->ijn", B, jnp.reshape(A, (p, p, d)), B, precision=_HI)
  E = jnp.square(F).at[0, 0].set(0)
  total = jnp.sum(E, axis=(0, 1))
  k = np.arange(K)
  E4 = jnp.reshape(E[1:, 1:], (K, 2, K, 2, d))[k, :, k]           # [K, 2, 2, d]
  block = (jnp.sum(jnp.reshape(E[0, 1:], (K, 2, d)), axis=1)
           + jnp.sum(jnp.reshape(E[1:, 0], (K, 2, d)), axis=1) + jnp.sum(E4, axis=(1, 2)))
  shares = (block / jnp.where(total > 0, total, 1)[None]).T
  return NeuronFrequencies(jnp.argmax(shares, axis=1).astype(jnp.int32) + 1,
                           jnp.max(shares, axis=1), shares)


def key_frequencies(x, rule: str = "neurons", *, p: Optional[int] = None,
                    axis: Optional[int] = None, neuron_share: float = NEURON_SHARE,
                    min_neuron_fraction: float = MIN_NEURON_FRACTION,
                    rel_threshold: float = REL_NORM_THRESHOLD) -> np.ndarray:
  """The key frequencies of a trained network (Nanda et al. 2023, Sec. 4-5), host-side.

  Rules:
    'neurons' (default): x = MLP activations [p, p, d] or [p*p, d]. Neurons whose dominant
      share (neuron_frequencies) exceeds neuron_share are clean; key = the frequencies at which
      at least max(1, min_neuron_fraction * d) neurons (of ALL d) are clean.
    'W_L': x = W_L = W_out @ W_U [d_mlp, p] (axis=-1, the logit axis, by default); key = the
      frequencies whose per-frequency Fourier norm (fourier_norms(...).freqs) is at least
      rel_threshold times the largest.
    'W_E': x = W_E [p (+1), d_model] (axis=0 by default); same norm rule ("above max/4").

  Args:
    x: the array the rule reads.
    rule: 'neurons', 'W_L' or 'W_E'.
    p: modulus for the W rules (default x.shape[axis]; give it for W_E with its '=' row).
    axis: input / logit axis for the W rules.
    neuron_share, min_neuron_fraction: thresholds of the 'neurons' rule.
    rel_threshold: threshold of the W rules, relative to the largest frequency norm.

  Returns:
    Sorted NumPy int array of frequencies in 1..(p-1)/2 (not jittable: its length varies).
  """
  if rule == "neurons":
    nf = neuron_frequencies(x)
    freq, share = np.asarray(nf.freq), np.asarray(nf.share)
    counts = np.bincount(freq[share > neuron_share], minlength=nf.shares.shape[1] + 1)
    need = max(1, math.ceil(min_neuron_fraction * freq.shape[0]))
    return np.flatnonzero(counts >= need).astype(int)
  if rule in ("W_L", "W_E"):
    axis = (-1 if rule == "W_L" else 0) if axis is None else axis
    norms = np.asarray(fourier_norms(x, p, axis).freqs)
    if not norms.max() > 0:
      return np.zeros((0,), int)
    return np.flatnonzero(norms >= rel_threshold * norms.max()).astype(int) + 1
  raise ValueError(f"rule={rule!r} must be 'neurons', 'W_L' or 'W_E'")


# ---- sparsity and norms ---------------------------------------------------------------------
@jax.jit
def gini(x) -> jax.Array:
  """Gini coefficient along the last axis (Nanda et al. 2023, Sec. 5.1; Hurley & Rickard 2009).

  With x sorted ascending, G = 2 sum_i i x_(i) / (n sum x) - (n + 1) / n, i = 1..n (sorted
  here, so any order is accepted): 0 for equal entries, (n - 1) / n for a one-hot vector.
  Meant for nonnegative x (e.g. fourier_norms(W_E).rows).

  Args:
    x: [..., n] nonnegative.

  Returns:
    [...] in x's dtype.
  """
  x = jnp.sort(_float(x), axis=-1)
  n = x.shape[-1]
  i = jnp.reshape(jnp.arange(1, n + 1, dtype=x.dtype), (1,) * (x.ndim - 1) + (n,))
  return 2 * jnp.sum(i * x, axis=-1) / (n * jnp.sum(x, axis=-1)) - (n + 1) / n


class WeightNorms(NamedTuple):
  """Sum of squared weights (Nanda et al. 2023, Fig. 7: it falls during cleanup).

  Attributes:
    total: scalar, the sum over all leaves.
    per_leaf: dict 'a/b' path (dict keys, sequence indices, attribute names) -> scalar.
  """
  total: jax.Array
  per_leaf: dict


def weight_norms(params: Any) -> WeightNorms:
  """Sum of squared weights of a params pytree, in total and per leaf (in the leaves' dtype)."""
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  per_leaf = {jax.tree_util.keystr(path, simple=True, separator="/"):
              jnp.sum(jnp.square(jnp.asarray(x))) for path, x in leaves}
  total = sum(per_leaf.values()) if per_leaf else jnp.zeros(())
  return WeightNorms(jnp.asarray(total), per_leaf)


# ---- numerical stability (Prieto et al. 2025) -----------------------------------------------
@jax.jit
def softmax_collapse_share(logits) -> jax.Array:
  """Share of rows whose sum_j exp(z_j - max z) is exactly 1 in the logits' dtype.

  Prieto et al. 2025, Sec. 3 (Softmax Collapse): once every other logit is so far below the
  max that exp(z_j - max z) is absorbed in 1 + ..., the softmax is exactly one-hot and the
  sample's gradient is exactly zero. A margin of ~17 (float32) or ~37 (float64) suffices.

  Args:
    logits: [..., C] (e.g. the training rows of the logit table).

  Returns:
    Scalar share over all leading positions, in the logits' dtype.
  """
  z = _float(logits)
  s = jnp.sum(jnp.exp(z - jnp.max(z, axis=-1, keepdims=True)), axis=-1)
  return jnp.mean((s == 1).astype(z.dtype))


@jax.jit
def zero_loss_share(logits, labels) -> jax.Array:
  """Share of samples whose cross-entropy is exactly 0 in the logits' dtype (Prieto et al.).

  The loss is the standard log-softmax cross-entropy (dynamics.losses.cross_entropy, the
  framework path), computed in the logits' dtype.

  Args:
    logits: [N, C].
    labels: integer [N].

  Returns:
    Scalar share in the logits' dtype.
  """
  z = _float(logits)
  return jnp.mean((losses.cross_entropy(z, labels) == 0).astype(z.dtype))


@jax.jit
def grad_weight_cosine(grads: Any, params: Any) -> jax.Array:
  """Cosine between the flattened gradient and weights (Prieto et al. 2025, Sec. 4).

  Near -1 the gradient mostly scales the weights up (naive loss minimization: the logits grow
  along their current direction, which drives softmax collapse). 0 if either vector is 0.

  Args:
    grads: pytree with the params' structure.
    params: pytree.

  Returns:
    Scalar cosine in the promoted dtype of the leaves.
  """
  g, w = ravel_pytree(grads)[0], ravel_pytree(params)[0]
  # each vector divided by its largest |entry| first: the cosine does not change, and a float32
  # gradient of size ~1e-19 (late in a run without weight decay) no longer has its squares
  # underflow in |g| while g . w does not, which gave "cosines" of -30.
  def unit(v):
    top = jnp.max(jnp.abs(v))
    return v / jnp.where(top > 0, top, 1)
  g, w = unit(g), unit(w)
  den = jnp.sqrt(jnp.sum(g * g)) * jnp.sqrt(jnp.sum(w * w))
  return jnp.sum(g * w) / jnp.where(den > 0, den, 1)


def progress_measures(traj, member: int = 0) -> dict:
  """The progress measures of one sweep member of a run of the modular-addition transformer
  at every kept step (arrays [kept step]): train and test loss, restricted and excluded loss,
  the trig-identity share of logit variance, the Gini of W_E's and W_L's Fourier norms and the
  weight norm (Nanda et al. 2023, Sec. 5).

  Key frequencies come from the FINAL checkpoint's MLP neurons (the 'neurons' rule of
  key_frequencies) and are reused at every earlier step (Nanda et al., Sec. 5.1). The data,
  the model and the parameters come from the trajectory (analysis.trajectory.load).
  """
  from dynamics.models import transformer
  jax.config.update("jax_enable_x64", True)     # float64 losses on float32 logits
  info, model = traj.dataset().info, traj.model()
  p, x_all, y_all = info["p"], jnp.asarray(info["all_x"]), jnp.asarray(info["all_y"])
  train_idx, test_idx = info["train_idx"], info["test_idx"]
  steps = list(traj.kept_steps)
  final = traj.params(steps[-1], member)
  _, cache = transformer.run_with_cache(final, x_all, model.config)
  keys = tuple(int(k) for k in key_frequencies(np.asarray(cache["mlp_post"][:, -1]),
                                               rule="neurons"))

  @jax.jit
  def measure(params):
    logits = model.apply(params, x_all).astype(jnp.float64)
    ce = losses.cross_entropy(logits, y_all, float64=True)
    W_L = (params["blocks"]["0"]["W_out"].T @ params["W_U"][:, :p]).astype(jnp.float64)
    out = dict(train_loss=jnp.mean(ce[train_idx]), test_loss=jnp.mean(ce[test_idx]),
               gini_W_E=gini(fourier_norms(params["W_E"], p=p).freqs),
               gini_W_L=gini(fourier_norms(W_L, axis=-1).freqs),
               weight_norm=weight_norms(params).total)
    if keys:
      out.update(restricted_loss=restricted_loss(logits, y_all, keys, float64=True),
                 excluded_loss=excluded_loss(logits, y_all, keys, train_idx, float64=True),
                 trig_variance=trig_fit(logits, keys).explained_variance)
    return out

  t0 = time.time()
  rows = [jax.device_get(measure(traj.params(s, member))) for s in steps]
  logging.getLogger("analysis.grokking").info(
      "progress measures of member %d: %d kept steps in %.0f s", member, len(steps),
      time.time() - t0)
  out = {k: np.asarray([r[k] for r in rows], np.float64) for k in rows[0]}
  out.update(steps=np.asarray(steps), keys=list(keys), p=p,
             W_E_norms=np.asarray(fourier_norms(final["W_E"], p=p).freqs))
  return out
