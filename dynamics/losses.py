"""Per-example losses and accuracy; the `loss` config section.

Every function returns one value per example ([N]) in the dtype of the model outputs, so a
float32 model stays float32 even with jax x64 enabled. The training loop averages over the batch
(`mean_loss`), which is the convention of the edge-of-stability papers (Cohen et al., 2021,
"Gradient Descent on Neural Networks Typically Occurs at the Edge of Stability", App. A):
L = (1/N) sum_i 0.5 * ||f(x_i) - onehot(y_i)||^2.
"""
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from dynamics import config_utils as cu
from dynamics import fields
from dynamics.fields import Field

LOSSES = ("mse", "cross_entropy", "stablemax", "logistic")


class Loss(NamedTuple):
  """A loss chosen by config.

  Attributes:
    name: one of LOSSES.
    per_example: fn(outputs [N, k], y) -> [N] loss per example, in outputs' dtype.
  """
  name: str
  per_example: Callable[[jax.Array, jax.Array], jax.Array]


def _is_int(y: jax.Array) -> bool:
  return jnp.issubdtype(jnp.asarray(y).dtype, jnp.integer)


def _targets(outputs: jax.Array, y: jax.Array) -> jax.Array:
  """Targets with the shape and dtype of outputs: one-hot for integer labels."""
  y = jnp.asarray(y)
  if _is_int(y):
    if outputs.ndim != 2 or y.shape != outputs.shape[:1]:
      raise ValueError(f"integer labels of shape {y.shape} need outputs of shape [N, classes] "
                       f"with the same N; got outputs of shape {outputs.shape}")
    return jax.nn.one_hot(y, outputs.shape[-1], dtype=outputs.dtype)
  y = y.astype(outputs.dtype)
  if y.shape == outputs.shape:
    return y
  if y.shape == outputs.shape[:-1] and outputs.shape[-1] == 1:
    return y[..., None]   # [N] targets for a model with one output unit
  raise ValueError(f"targets of shape {y.shape} do not match outputs of shape {outputs.shape}")


def mse(outputs: jax.Array, y: jax.Array) -> jax.Array:
  """Per-example squared error 0.5 * ||f(x) - y||^2, summed (not averaged) over output dims.

  Args:
    outputs: model outputs [N, k] (or [N] for a scalar model).
    y: integer class labels [N] (converted to one-hot of width k, as in Cohen et al. 2021) or
      float targets with the shape of outputs ([N] is accepted for outputs [N, 1]).

  Returns:
    [N] losses in outputs' dtype.
  """
  outputs = jnp.asarray(outputs)
  diff = outputs - _targets(outputs, y)
  axes = tuple(range(1, diff.ndim))
  return 0.5 * jnp.sum(jnp.square(diff), axis=axes)


@jax.custom_jvp
def _accurate_nll(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """logsumexp(z) - z_y computed without absorbing small terms into 1.

  With a = argmax(z): logsumexp(z) - z_y = (z_a - z_y) + log1p(sum_{j != a} exp(z_j - z_a)).
  The naive log(sum exp(z - z_a)) rounds 1 + exp(-margin) to 1 once the margin exceeds about
  16.6 (float32) or 36.7 (float64), giving a loss of exactly 0 ("Softmax Collapse", Prieto et
  al. 2025, "Grokking at the Edge of Numerical Stability"); log1p keeps full relative accuracy
  until exp underflows (margin ~745 in float64). The custom JVP gives the derivative
  softmax(z) - onehot(y) with the label entry computed as expm1(-loss), so it is not absorbed
  either (plain autodiff would form 1 - 1 + tiny).
  """
  a = jnp.argmax(logits, axis=-1)
  z_a = jnp.take_along_axis(logits, a[:, None], axis=-1)[:, 0]
  z_y = jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
  is_a = jax.nn.one_hot(a, logits.shape[-1], dtype=jnp.bool_)
  rest = jnp.where(is_a, jnp.zeros((), logits.dtype), jnp.exp(logits - z_a[:, None]))
  return (z_a - z_y) + jnp.log1p(jnp.sum(rest, axis=-1))


@_accurate_nll.defjvp
def _accurate_nll_jvp(primals, tangents):
  logits, labels = primals
  dlogits = tangents[0]
  loss = _accurate_nll(logits, labels)
  z_y = jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
  probs = jnp.exp(logits - (z_y + loss)[:, None])                  # softmax(z)
  is_y = jax.nn.one_hot(labels, logits.shape[-1], dtype=jnp.bool_)
  coef = jnp.where(is_y, jnp.expm1(-loss)[:, None], probs)         # softmax(z) - onehot(y)
  return loss, jnp.sum(coef * dlogits, axis=-1)


def _logits_and_labels(loss: str, logits, labels) -> tuple[jax.Array, jax.Array]:
  logits, labels = jnp.asarray(logits), jnp.asarray(labels)
  if not _is_int(labels) or logits.ndim != 2 or labels.shape != logits.shape[:1]:
    raise ValueError(f"{loss} needs logits [N, classes] and integer labels [N]; got "
                     f"{logits.shape} and {labels.shape} {labels.dtype}")
  return logits, labels


def cross_entropy(logits: jax.Array, labels: jax.Array, float64: bool = False) -> jax.Array:
  """Per-example softmax cross-entropy -log softmax(logits)[label].

  Args:
    logits: [N, classes].
    labels: integer labels [N].
    float64: if True, cast the logits to float64 and compute logsumexp(z) - z_y with the
      log1p form and an absorption-free gradient (see `_accurate_nll`), then cast the result
      back to the logits' dtype. A two-class sample with logit margin 40 then has loss
      log1p(e^-40) ~ 4.2e-18 (representable in float32) where the default path gives exactly
      0; a plain float64 log_softmax would also give 0 there (1 + 4e-18 == 1 in float64).
      The default path is the standard jax.nn.log_softmax, identical to
      optax.softmax_cross_entropy_with_integer_labels, so float32 runs reproduce the usual
      float32 behaviour. Needs jax x64.

  Returns:
    [N] losses in the logits' dtype.

  Raises:
    RuntimeError: float64=True while jax x64 is disabled.
    ValueError: labels are not integers or shapes do not match.
  """
  logits, labels = _logits_and_labels("cross_entropy", logits, labels)
  if float64:
    cu.require_x64("loss.float64=True")
    return _accurate_nll(logits.astype(jnp.float64), labels).astype(logits.dtype)
  logp = jax.nn.log_softmax(logits, axis=-1)
  return -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]


def stablemax_s(x: jax.Array) -> jax.Array:
  """s(x) = x + 1 for x >= 0 and 1 / (1 - x) for x < 0 (Prieto et al. 2025, Eq. 4).

  Positive, increasing, continuous with a continuous first derivative at 0, and linear rather
  than exponential for large x, so the normalized probabilities do not saturate to exactly 1.
  Each branch is evaluated on an argument where it is finite (the other branch's input is
  clamped), so neither value nor gradient of the unused branch can be inf or NaN.
  """
  zero = jnp.zeros_like(x)
  pos = jnp.where(x >= 0, x, zero)      # where, not maximum: d/dx at 0 is 1, not 1/2
  neg = jnp.where(x < 0, x, zero)
  return jnp.where(x >= 0, pos + 1, 1 / (1 - neg))


def stablemax_cross_entropy(logits: jax.Array, labels: jax.Array,
                            float64: bool = False) -> jax.Array:
  """Per-example -log(s(z_y) / sum_j s(z_j)), the StableMax cross-entropy of Prieto et al. 2025
  ("Grokking at the Edge of Numerical Stability"), with s = stablemax_s.

  Args:
    logits: [N, classes].
    labels: integer labels [N].
    float64: compute in float64 (needs jax x64) and cast back, as for cross_entropy.

  Returns:
    [N] losses in the logits' dtype.
  """
  logits, labels = _logits_and_labels("stablemax", logits, labels)
  if float64:
    cu.require_x64("loss.float64=True")
  s = stablemax_s(logits.astype(jnp.float64) if float64 else logits)
  s_y = jnp.take_along_axis(s, labels[:, None], axis=-1)[:, 0]
  return (jnp.log(jnp.sum(s, axis=-1)) - jnp.log(s_y)).astype(logits.dtype)


def logistic(outputs: jax.Array, y: jax.Array) -> jax.Array:
  """Per-example binary logistic loss log(1 + exp(-y f(x))) for one output and +-1 targets.

  The loss of the two-layer ReLU alignment papers (Min, Mallada, Vidal 2024; Boursier &
  Flammarion 2022): on separable data it has no minimizer, the margins grow like log t and the
  loss decays like 1/t. softplus(-y f) is exact for large margins of either sign.

  Args:
    outputs: [N, 1] (or [N]) model outputs.
    y: float targets in {-1, +1}, [N] or [N, 1].

  Returns:
    [N] losses in outputs' dtype.

  Raises:
    ValueError: integer labels, or more than one output dim.
  """
  outputs = jnp.asarray(outputs)
  if _is_int(y):
    raise ValueError("the logistic loss needs float targets in {-1, +1} (e.g. data.signed=True)"
                     f"; got integer labels of dtype {jnp.asarray(y).dtype}")
  t = _targets(outputs, y)
  if t.ndim >= 2 and t.shape[-1] != 1:
    raise ValueError(f"the logistic loss needs one output; got outputs of shape {outputs.shape}")
  margin = (t * outputs).reshape(outputs.shape[0])
  return jax.nn.softplus(-margin)


def accuracy(outputs: jax.Array, y: jax.Array) -> jax.Array:
  """Per-example 0/1 accuracy in outputs' dtype.

  Integer labels [N]: argmax(outputs) == y. Float targets are read as one-hot or sign targets:
  with more than one output dim, argmax(outputs) == argmax(y) (one-hot / teacher targets);
  with one output dim (y [N] or [N, 1]), sign(outputs) == sign(y) (binary +-1 targets; a zero
  target counts as correct only for an exactly zero output).

  Args:
    outputs: [N, k] model outputs ([N] accepted for scalar models with float targets).
    y: integer labels [N] or float targets (see above).

  Returns:
    [N] values in {0, 1}.
  """
  outputs = jnp.asarray(outputs)
  y = jnp.asarray(y)
  if _is_int(y):
    if outputs.ndim != 2 or y.shape != outputs.shape[:1]:
      raise ValueError(f"integer labels of shape {y.shape} need outputs of shape [N, classes]; "
                       f"got {outputs.shape}")
    return (jnp.argmax(outputs, axis=-1) == y).astype(outputs.dtype)
  t = _targets(outputs, y)
  if t.ndim >= 2 and t.shape[-1] > 1:
    hit = jnp.argmax(outputs, axis=-1) == jnp.argmax(t, axis=-1)
  else:
    hit = jnp.sign(outputs) == jnp.sign(t)
  return jnp.all(hit.reshape(hit.shape[0], -1), axis=-1).astype(outputs.dtype)


def mean_loss(loss: Loss, outputs: jax.Array, y: jax.Array) -> jax.Array:
  """The batch loss: mean over examples of loss.per_example (a scalar in outputs' dtype)."""
  return jnp.mean(loss.per_example(outputs, y))


# The `loss` section, declared once (dynamics.fields).
FIELDS = dict(
    name=Field("mse", "mse (0.5 ||f - onehot(y)||^2), cross_entropy, stablemax or logistic "
               "(log(1 + exp(-y f)), one output, +-1 targets)",
               choices=LOSSES),
    float64=Field(False, "cross_entropy / stablemax: compute in float64 (jax x64 is switched "
                  "on)"),
)


def _check(cfg) -> None:
  if cfg.float64 and cfg.name in ("mse", "logistic"):
    raise cu.ConfigError("loss.float64=True is only used by loss.name='cross_entropy' or "
                         f"'stablemax'; got loss.name={cfg.name!r}")


validate, default_config = fields.declare("loss", FIELDS, _check)


def build(cfg: Any = None) -> Loss:
  """The Loss named by the `loss` section (missing fields take their defaults)."""
  cfg = validate(cfg)
  fn = dict(mse=mse, logistic=logistic, cross_entropy=cross_entropy,
            stablemax=stablemax_cross_entropy)[cfg.name]
  if cfg.name in ("cross_entropy", "stablemax"):
    fn = functools.partial(fn, float64=cfg.float64)
  return Loss(name=cfg.name, per_example=fn)
