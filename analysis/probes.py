"""The curvature and grokking probes, registered in dynamics.probes (imported by `import
analysis`). Curvature probes use the full training batch (never a small batch for "the"
sharpness; REFERENCE.md Sec. 1)."""
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

import numpy as np

from analysis import alignment, curvature, grokking
from analysis import neural_collapse as nc
from dynamics import config_utils as cu
from dynamics import train
from dynamics.fields import Field
from dynamics.probes import register

_K = Field(1, "top eigenvalues tracked", lo=1)
_ITERS = Field(20, "warm-started Lanczos steps per measurement", lo=1)


def _top(probe):
  """Adds 'max' (the top eigenvalue, a scalar per log point) to an eigenvalue probe's output."""
  def apply(pstate, params, opt_state, batch, key):
    pstate, out = probe.apply(pstate, params, opt_state, batch, key)
    return pstate, dict(out, max=out["eigenvalues"][0])
  return train.Probe(init=probe.init, apply=apply)


@register("sharpness", k=_K,
          num_iters=Field(20, "warm-started Lanczos steps per measurement (method 'lanczos'; "
                          "with 'track' the most block iterations when tol > 0)", lo=1),
          cold_iters=Field(0, "one cold Lanczos solve of this many steps at init (0: none), so "
                           "each in-loop call is warm and num_iters can be small", lo=0),
          method=Field("lanczos", "'lanczos': num_iters warm-started Lanczos steps per "
                       "measurement; 'track': one LOBPCG block iteration per measurement on "
                       "the carried block (x, r, p), one batched product of 3k Hessian-vector "
                       "products", choices=("lanczos", "track")),
          guard=Field(0, "extra vectors tracked beyond k by method 'track' (3 (k + guard) "
                      "products per call; faster convergence when the top eigenvalues are "
                      "close or the Hessian moves fast)", lo=0),
          memory=Field(0, "method 'track': the vectors and residuals of this many previous "
                       "calls join the block ((3 + 2 memory) (k + guard) products per call); 2 "
                       "follows GD's period-2 oscillation at the edge of stability", lo=0),
          tol=Field(0.0, "stop each measurement once the largest relative residual is <= "
                    "this, up to num_iters iterations ('lanczos': warm Lanczos steps; "
                    "'track': block iterations; 0: always num_iters Lanczos steps or one "
                    "block iteration); adds the metric 'iterations'", lo=0.0),
          warm=Field(True, "method 'lanczos': start from the last measurement's vectors "
                     "(False: a cold solve from a fresh random vector every time, e.g. as a "
                     "reference for the warm methods)"))
def sharpness(settings, problem):
  """Top-k Hessian eigenvalues of the full-batch loss, warm-started Lanczos (Cohen et al. 2021)
  or tracked by one LOBPCG iteration per measurement (method 'track')."""
  # the settings are exactly sharpness_probe's keyword arguments
  return _top(curvature.sharpness_probe(problem.batch_loss, **settings))


@register("preconditioned_sharpness", k=_K, num_iters=_ITERS)
def preconditioned_sharpness(settings, problem):
  """Top eigenvalues of P^-1/2 H P^-1/2 with the optimizer's own P (Cohen et al. 2022); NaN
  at step 0 for adaptive optimizers (no second moment yet)."""
  if problem.opt.preconditioner is None:
    raise cu.ConfigError("probes.preconditioned_sharpness needs an optimizer with a "
                         "preconditioner; opt.name='flow' has none")
  opt = problem.opt
  probe = curvature.sharpness_probe(problem.batch_loss, settings.k, settings.num_iters,
                                    precondition_fn=opt.preconditioner)
  if not opt.adaptive:
    return _top(probe)

  def apply(pstate, params, opt_state, batch, key):
    # before the first update an adaptive optimizer's nu is 0 and P = eps / eta: no
    # preconditioner has been used yet, so report NaN and keep the (cold) start vectors
    new, out = probe.apply(pstate, params, opt_state, batch, key)
    fresh = opt_state.count == 0
    out = jax.tree.map(lambda v: jnp.where(fresh, jnp.nan, v), out)
    vecs = jax.tree.map(lambda a, b: jnp.where(fresh, a, b), pstate["vectors"], new["vectors"])
    return dict(new, vectors=vecs), out
  return _top(train.Probe(init=probe.init, apply=apply))


@register("effective_lr")
def effective_lr(settings, problem):
  """1 / mean(P), the optimizer's effective learning rate (the mean over all parameters of the
  diagonal preconditioner of the step about to be taken; gd: the learning rate; Cohen et al.
  2025, "Central Flows", the RMSProp figures)."""
  del settings
  if problem.opt.preconditioner is None:
    raise cu.ConfigError("probes.effective_lr needs an optimizer with a preconditioner; "
                         "opt.name='flow' has none")

  def probe(params, opt_state, batch):
    del batch
    return 1 / jnp.mean(ravel_pytree(problem.opt.preconditioner(opt_state, params))[0])
  return probe


def _minibatches(batch, key, batch_size, num_batches):
  """num_batches independent minibatches, each drawn without replacement: [num_batches, B, ...]."""
  n = batch["x"].shape[0]
  keys = jax.random.split(key, num_batches)
  idx = jax.vmap(lambda k: jax.random.permutation(k, n)[:batch_size])(keys)
  return {k: v[idx] for k, v in batch.items()}


@register("batch_sharpness",
          batch_size=Field(0, "minibatch size (0: the training batch size)", lo=0),
          num_batches=Field(8, "independent minibatches per measurement", lo=1),
          num_iters=_ITERS)
def batch_sharpness(settings, problem):
  """SGD's batch sharpness: mean lambda_max(H_B) and mean g_B^T H_B g_B / ||g_B||^2.

  batch_size 0 (the default) means the training batch size (train.batch_size; the whole
  training set for full-batch runs).
  """
  size = settings.batch_size or problem.batch_size or problem.n_train
  if size > problem.n_train:
    raise cu.ConfigError(f"probes.batch_sharpness.batch_size={size} is not allowed; it must be "
                         f"at most the {problem.n_train} training examples (0: the training "
                         "batch size)")

  def apply(pstate, params, opt_state, batch, key):
    del opt_state
    batches = _minibatches(batch, key, size, settings.num_batches)
    out = curvature.batch_sharpness(problem.batch_loss, params, batches,
                                    num_iters=settings.num_iters, key=key)
    return pstate, {"mean_lambda_max": out["mean_lambda_max"],
                    "directional": out["directional"]}
  return train.Probe(init=lambda params, batch=None: (), apply=apply)


@register("hessian_trace", num_probes=Field(20, "Rademacher probes per estimate", lo=1))
def hessian_trace(settings, problem):
  """Hutchinson estimate of tr(H) (Rademacher probes) and its standard error."""
  def apply(pstate, params, opt_state, batch, key):
    del opt_state
    est, se = curvature.hutchinson_trace(problem.batch_loss, params, batch, key,
                                         num_probes=settings.num_probes)
    return pstate, {"estimate": est, "stderr": se}
  return train.Probe(init=lambda params, batch=None: (), apply=apply)


@register("softmax_collapse")
def softmax_collapse(settings, problem):
  """Prieto et al. 2025's diagnostics on the training batch, in the run's working precision:
  share of samples whose sum exp(z - max z) is exactly 1 (softmax collapse), share of
  exactly-zero per-sample cross-entropy losses, and the cosine between gradient and weights."""
  del settings

  def probe(params, opt_state, batch):
    del opt_state
    logits = problem.apply(params, batch["x"])
    grads = jax.grad(problem.batch_loss)(params, batch)
    return {"share": grokking.softmax_collapse_share(logits),
            "zero_loss_share": grokking.zero_loss_share(logits, batch["y"]),
            "grad_weight_cosine": grokking.grad_weight_cosine(grads, params)}
  return probe


@register("neural_collapse")
def neural_collapse(settings, problem):
  """NC1-NC4 and their variants (analysis.neural_collapse.measures) of the penultimate features
  and the last layer on the whole training set."""
  del settings
  y = np.asarray(problem.data["y_train"])
  if problem.readout is None:
    raise cu.ConfigError("probes.neural_collapse needs a model with a readout (its last layer "
                         "acting on the features); this model has none")
  if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
    raise cu.ConfigError("probes.neural_collapse needs class labels (integer data.y_train); "
                         f"this data's labels are {y.dtype} of shape {y.shape}")
  present = len(np.unique(y))

  def probe(params, opt_state, batch):
    del opt_state
    w, _ = problem.readout(params)
    if w.shape[0] != present:
      raise cu.ConfigError(f"probes.neural_collapse: the model has {w.shape[0]} outputs but the "
                           f"training labels hold {present} classes; every class needs samples")
    return nc.of_params(problem.apply, problem.readout, params, batch["x"], batch["y"])
  return probe


@register("mode_strengths")
def mode_strengths(settings, problem):
  """Saxe et al.'s mode strengths u_i = U_i^T f(V_i) of a linear map f on the k modes of the
  training data's input-output correlation (1/N) Y^T X = U diag(s) V^T with s_i > 0 (for a
  linear network f(x) = x W_1 ... W_L, u_i = U_i^T W_total V_i), and `coupling`, the largest
  |U_i^T f(V_j)| with i != j (0 while the modes stay decoupled)."""
  del settings
  x = np.asarray(problem.data["x_train"], np.float64)
  y = np.asarray(problem.data["y_train"], np.float64)
  if y.ndim != 2 or not np.issubdtype(problem.data["y_train"].dtype, np.floating):
    raise cu.ConfigError("probes.mode_strengths needs regression targets y [N, out_dim] "
                         f"(e.g. linear_teacher); this data's are {y.dtype} of shape {y.shape}")
  x = x.reshape(len(x), -1)
  u, s, vt = np.linalg.svd(y.T @ x / len(x), full_matrices=False)
  k = int(np.sum(s > 1e-9 * s.max()))
  u, vt = (jnp.asarray(a, problem.data["x_train"].dtype) for a in (u[:, :k], vt[:k]))

  def probe(params, opt_state, batch):
    del opt_state, batch
    c = u.T @ problem.apply(params, vt).T                     # [k, k]: U_i^T f(V_j)
    off = jnp.abs(c - jnp.diag(jnp.diagonal(c)))
    return dict(strengths=jnp.diagonal(c), coupling=jnp.max(off))
  return probe


@register("alignment",
          threshold=Field(0.9, "a neuron is aligned when its best cosine with the target "
                          "directions is at least this", lo=-1.0, hi=1.0),
          kind=Field("cones", "target directions: 'cones' (x_+, x_-: the class sums, Min et "
                     "al.), 'rays' (the extreme rays of both cones) or 'xor' (+-u1, +-u2: "
                     "the XOR cluster means, Xu et al.)",
                     choices=alignment.KINDS))
def alignment_probe(settings, problem):
  """Neuron alignment of a two-layer network f(x) = sum_j v_j act(w_j . x) on binary data
  (analysis.alignment.measures): per neuron the norm, the cosines with the target directions
  (computed once from the training data) and dead or not; the shares aligned and dead; the first
  layer's singular values and stable rank."""
  x, y = problem.data["x_train"], problem.data["y_train"]
  try:
    targets = alignment.target_directions(np.asarray(x), np.asarray(y), settings.kind)
  except ValueError as e:
    raise cu.ConfigError(f"probes.alignment needs binary training labels: {e}") from None
  targets = jnp.asarray(targets, x.dtype)

  def probe(params, opt_state, batch):
    del opt_state
    try:
      return alignment.of_params(params, batch["x"], targets, settings.threshold)
    except ValueError as e:
      raise cu.ConfigError(f"probes.alignment: {e}") from None
  return probe
