"""Neural collapse (Papyan, Han, Donoho 2020; REFERENCE.md Sec. 4): how far features and the last
layer are from a simplex equiangular tight frame (ETF).

Features H [N, d] (rows h_i), labels y [N] in 0..C-1, last-layer weights W [C, d] (and bias b).
Class means mu_c, global mean mu_G = the mean of the class means (not of the samples: the two
differ when the classes are unbalanced), centred means M = [mu_c - mu_G] as rows [C, d] (the
papers' M~ is its transpose, d x C), Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T,
Sigma_B = M^T M / C.

  nc1         tr(Sigma_W Sigma_B^+) / C, Papyan et al.'s definition, WITH the 1/C. Several
              public copies drop the /C (their numbers are C times ours). Computed without any
              d x d matrix: Sigma_B^+ = C (M~^+)^T M~^+, so nc1 = (1/N) sum_i ||M~^+ (h_i -
              mu_{y_i})||^2, with the pseudo-inverse of the C x d matrix M (an SVD of C x d).
  nc1_trace   tr(Sigma_W) / tr(Sigma_B).
  cdnv        the class-distance normalized variance (Galanti et al. 2022), averaged over class
              pairs c < c': (V_c + V_c') / (2 ||mu_c - mu_c'||^2), V_c the mean of ||h - mu_c||^2
              over class c.
  equinorm_features, equinorm_weights
              std / mean of ||mu_c - mu_G|| and of ||w_c|| (population std, ddof 0).
  equiangular_features, equiangular_weights
              mean over c != c' of |cos(a_c, a_c') + 1/(C - 1)| (a = centred means, or rows of W).
  cos_std_features, cos_std_weights
              the std of those cosines (Papyan et al.'s Fig. 5).
  etf_features, etf_weights
              || G / ||G||_F - (I - 11^T/C) / sqrt(C - 1) ||_F with G = M M^T (or W W^T): the
              distance of the normalized Gram matrix to the simplex ETF's.
  nc3         || W / ||W||_F - M / ||M||_F ||_F^2 (self-duality).
  nc4         the share of samples whose network prediction argmax(W h + b) differs from the
              nearest class mean argmin_c ||h - mu_c||.

At exact collapse (features at the vertices of a simplex ETF, W proportional to M) every
quantity is 0. Everything is pure jnp, so it jits and vmaps over a leading member axis.

Robustness: Sigma_B has rank at most C - 1 (the centred means sum to zero), so it is always
singular; the pseudo-inverse of M cuts singular values below `rtol` times the largest (the
numerical rank), so a rank-deficient M, a class with one sample, C > d and float32 features of
norm 1e4 give finite numbers. A class with no samples, labels outside 0..C-1, mismatched
lengths, C < 2 or a W with another number of rows are refused with an error naming the
argument (checked on concrete arrays; inside jit the labels cannot be checked).
"""
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

KEYS_FEATURES = ("nc1", "nc1_trace", "cdnv", "equinorm_features", "equiangular_features",
                 "cos_std_features", "etf_features")
KEYS_WEIGHTS = ("equinorm_weights", "equiangular_weights", "cos_std_weights", "etf_weights",
                "nc3", "nc4")


def _check(features, labels, num_classes: int, weights=None, bias=None) -> None:
  if num_classes < 2:
    raise ValueError(f"num_classes={num_classes!r} is not allowed: neural collapse needs at "
                     "least 2 classes")
  if features.ndim != 2:
    raise ValueError(f"features must be [N, d]; got shape {tuple(features.shape)}")
  if labels.shape != (features.shape[0],):
    raise ValueError(f"labels must be [N] with N = {features.shape[0]} (the features' rows); "
                     f"got shape {tuple(labels.shape)}")
  if weights is not None and weights.shape != (num_classes, features.shape[1]):
    raise ValueError(f"weights must be [C, d] = [{num_classes}, {features.shape[1]}]; got shape "
                     f"{tuple(weights.shape)}")
  if bias is not None and bias.shape != (num_classes,):
    raise ValueError(f"bias must be [C] = [{num_classes}]; got shape {tuple(bias.shape)}")
  if not isinstance(labels, jax.core.Tracer):
    y = np.asarray(labels)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
      raise ValueError(f"labels must lie in 0..{num_classes - 1} (num_classes={num_classes}); "
                       f"got values in {int(y.min())}..{int(y.max())}")
    empty = sorted(set(range(num_classes)) - set(np.unique(y).tolist()))
    if empty:
      raise ValueError(f"labels: class(es) {empty} have no samples; every class of "
                       f"num_classes={num_classes} needs at least one")


def class_means(features, labels, num_classes: int):
  """(class means [C, d], counts [C])."""
  onehot = jax.nn.one_hot(labels, num_classes, dtype=features.dtype)
  counts = onehot.sum(0)
  return onehot.T @ features / jnp.maximum(counts, 1)[:, None], counts


def _cosines(a):
  """The off-diagonal cosines of the rows of a [C, k], as a [C * (C - 1)] vector."""
  n = jnp.linalg.norm(a, axis=1)
  cos = (a @ a.T) / jnp.maximum(n[:, None] * n[None, :], jnp.finfo(a.dtype).tiny)
  return cos[~np.eye(a.shape[0], dtype=bool)]


def _cv(x):
  return jnp.std(x) / jnp.mean(x)


def _etf_distance(a):
  c = a.shape[0]
  g = a @ a.T
  etf = (jnp.eye(c, dtype=a.dtype) - 1.0 / c) / jnp.sqrt(jnp.asarray(c - 1, a.dtype))
  return jnp.linalg.norm(g / jnp.linalg.norm(g) - etf)


def _shape_measures(a, suffix: str) -> dict:
  c = a.shape[0]
  cos = _cosines(a)
  return {f"equinorm_{suffix}": _cv(jnp.linalg.norm(a, axis=1)),
          f"equiangular_{suffix}": jnp.mean(jnp.abs(cos + 1.0 / (c - 1))),
          f"cos_std_{suffix}": jnp.std(cos),
          f"etf_{suffix}": _etf_distance(a)}


def measures(features, labels, num_classes: int, weights=None, bias=None,
             rtol: Optional[float] = None) -> dict:
  """NC1-NC4 and their variants (module docstring) of one set of features.

  Args:
    features: [N, d] (e.g. the penultimate layer's activations on the training set).
    labels: [N] integers in 0..num_classes-1, every class present.
    num_classes: C >= 2.
    weights: the last layer [C, d] (rows w_c), or None for a hidden layer: then only the
      features' measures (KEYS_FEATURES) are returned.
    bias: [C] or None (NC4's network prediction uses it).
    rtol: singular values of M below rtol * the largest are treated as 0 (default: 10 * max(C,
      d) * the dtype's epsilon, numpy's and jax's pinv default).

  Returns:
    dict name -> scalar (KEYS_FEATURES, and KEYS_WEIGHTS when weights are given).
  """
  features, labels = jnp.asarray(features), jnp.asarray(labels)
  _check(features, labels, num_classes, weights, bias)
  n = features.shape[0]
  means, counts = class_means(features, labels, num_classes)
  centred = means - means.mean(0, keepdims=True)         # M, [C, d]
  within = features - means[labels]                       # h_i - mu_{y_i}
  # M~^+ is the pseudo-inverse of the d x C matrix M^T: [C, d]
  z = within @ jnp.linalg.pinv(centred.T, rtol=rtol).T    # [N, C]: M~^+ (h_i - mu_{y_i})
  tr_w = jnp.sum(within ** 2) / n
  tr_b = jnp.sum(centred ** 2) / num_classes
  var = jax.ops.segment_sum(jnp.sum(within ** 2, 1), labels, num_classes) / jnp.maximum(counts, 1)
  iu = np.triu_indices(num_classes, 1)
  dist2 = jnp.sum((means[:, None, :] - means[None, :, :]) ** 2, -1)[iu]
  out = dict(nc1=jnp.sum(z ** 2) / n, nc1_trace=tr_w / tr_b,
             cdnv=jnp.mean((var[iu[0]] + var[iu[1]]) / (2 * dist2)))
  out.update(_shape_measures(centred, "features"))
  if weights is None:
    return out
  weights = jnp.asarray(weights, features.dtype)
  out.update(_shape_measures(weights, "weights"))
  out["nc3"] = jnp.sum((weights / jnp.linalg.norm(weights) -
                        centred / jnp.linalg.norm(centred)) ** 2)
  logits = features @ weights.T
  if bias is not None:
    logits = logits + jnp.asarray(bias, features.dtype)[None, :]
  nearest = jnp.argmin(jnp.sum((features[:, None, :] - means[None, :, :]) ** 2, -1), axis=1)
  out["nc4"] = jnp.mean((jnp.argmax(logits, 1) != nearest).astype(features.dtype))
  return out


def of_params(apply, readout, params, x, y, num_classes: Optional[int] = None) -> dict:
  """measures() of a model's penultimate features and last layer on inputs x, labels y.

  apply(params, x, return_features=True) -> (outputs, features); readout(params) -> (W, b)
  (dynamics.models.Model's). num_classes defaults to W's rows."""
  _, features = apply(params, x, return_features=True)
  w, b = readout(params)
  return measures(features, y, num_classes or w.shape[0], w, b)


def from_trajectory(traj, step: int, member: int = 0) -> dict:
  """measures() on the training set at a kept step of a run directory's member (what the
  in-loop probe `neural_collapse` logs at that step, recomputed from the checkpoint)."""
  model, data = traj.model(), traj.problem().data
  if model.readout is None:
    raise ValueError("neural collapse needs a model with a readout (its last layer)")
  params = traj.params(step, member)
  return {k: float(v) for k, v in of_params(model.apply, model.readout, params,
                                            jnp.asarray(data["x_train"]),
                                            jnp.asarray(data["y_train"])).items()}


def zero_error_step(traj) -> np.ndarray:
  """T0 per member: the first logged step with training accuracy 1 (Papyan et al.'s start of
  the terminal phase; resolution train.log_every), -1 for a member that never got there."""
  acc = np.asarray(traj.metrics["train_acc"])
  hit = acc >= 1.0
  return np.where(hit.any(1), np.asarray(traj.steps)[np.argmax(hit, 1)], -1)


def over_kept_steps(traj, member: int = 0, layers: bool = False) -> dict:
  """from_trajectory at every kept step of a member: dict steps [S] and, per measure, [S]; with
  layers=True also 'layers_nc1' [S, L] (per_layer's NC1, first hidden layer first) and
  'mean_singular_values' [S, C] (class_mean_singular_values of the penultimate layer)."""
  steps = np.asarray(traj.kept_steps)
  rows = [from_trajectory(traj, int(s), member) for s in steps]
  out = {k: np.array([r[k] for r in rows]) for k in rows[0]}
  out["steps"] = steps
  if layers:
    per = [per_layer(traj, int(s), member) for s in steps]
    out["layers_nc1"] = np.array([[d["nc1"] for d in p] for p in per])
    model, data = traj.model(), traj.problem().data
    y = jnp.asarray(data["y_train"])
    out["mean_singular_values"] = np.array([
        class_mean_singular_values(model.layers(traj.params(int(s), member),
                                                jnp.asarray(data["x_train"]))[-1],
                                   y, int(np.max(np.asarray(y))) + 1) for s in steps])
  return out


def class_mean_singular_values(features, labels, num_classes: int) -> np.ndarray:
  """The singular values of the centred class means M [C, d], divided by the largest: all
  equal (but the last, 0) at a simplex ETF; a few near 0 when the means collapse onto a
  lower-dimensional subspace instead (the low-rank bias of weight decay in deep networks,
  Sukenik, Lampert, Mondelli 2024), which NC1 with its pseudo-inverse punishes."""
  means, _ = class_means(jnp.asarray(features), jnp.asarray(labels), num_classes)
  sv = np.linalg.svd(np.asarray(means - means.mean(0, keepdims=True), np.float64),
                     compute_uv=False)
  return sv / sv[0]


def log_linear_fit(values) -> dict:
  """Least-squares fit of log10 values[l] = intercept + slope * l (l = 0, 1, ...; He & Su 2023's
  law of data separation for NC1 across layers): slope, intercept, r2 and the factor per layer
  10^-slope by which NC1 falls. values [L] or [members, L] (all members fit together)."""
  v = np.atleast_2d(np.asarray(values, np.float64))
  if np.any(~np.isfinite(v)) or np.any(v <= 0):
    raise ValueError(f"values must be finite and > 0 to fit their log; got {v}")
  layer = np.broadcast_to(np.arange(v.shape[1], dtype=np.float64), v.shape).ravel()
  y = np.log10(v).ravel()
  slope, intercept = np.polyfit(layer, y, 1)
  resid = y - (intercept + slope * layer)
  r2 = 1.0 - np.sum(resid ** 2) / np.sum((y - y.mean()) ** 2)
  return dict(slope=float(slope), intercept=float(intercept), r2=float(r2),
              factor_per_layer=float(10.0 ** -slope))


def ufm_optimum(loss: str, num_classes: int, per_class: int, lambda_W: float, lambda_H: float,
                lambda_b: float = 0.0, bias: bool = True) -> dict:
  """The global minimum of the unconstrained features model (dynamics/models/ufm.py,
  anchor_weight 0) with K = num_classes classes of n = per_class samples (N = K n), d >= K - 1.

  Its minimizers are collapsed (Zhu et al. 2021 for cross-entropy; Zhou et al. 2022 for MSE
  with an unregularized bias): h_i = a e_{y_i}, w_k = c e_k with e the unit vertices of a simplex
  ETF, so with p = a c the loss of every sample is that of the logits p (own class) and
  -p/(K - 1) (the others) plus a constant bias. For fixed p the penalty
  lambda_W K c^2/2 + lambda_H N a^2/2 is smallest, s p with s = sqrt(lambda_W lambda_H K N),
  at lambda_W K c^2 = lambda_H N a^2, which leaves one variable:
    cross_entropy: log(1 + (K - 1) exp(-p K/(K - 1))) + s p, minimal at
      p = -((K - 1)/K) log(s / (K - (K - 1) s)); b = 0 (any constant vector when lambda_b = 0);
    mse (bias, lambda_b = 0): K/(2(K - 1)) (p - (K - 1)/K)^2 + s p, minimal at
      p = ((K - 1)/K) (1 - s), with b = 1/K.
  When s >= 1 the minimizer is W = H = 0 (p = 0): the regularization wins.

  Returns:
    dict objective (the mean loss plus the penalty at the minimum), p, feature_norm a,
    weight_norm c, bias (each entry of b), s.
  """
  k, n = num_classes, num_classes * per_class
  if k < 2:
    raise ValueError(f"num_classes={k} is not allowed: it must be >= 2")
  s = float(np.sqrt(lambda_W * lambda_H * k * n))
  if loss == "cross_entropy":
    p = 0.0 if s >= 1 else -(k - 1) / k * np.log(s / (k - (k - 1) * s))
    objective = np.log1p((k - 1) * np.exp(-p * k / (k - 1))) + s * p
    b = 0.0
  elif loss == "mse":
    if not bias or lambda_b != 0:
      raise ValueError("ufm_optimum: the mse closed form is for a bias with lambda_b = 0 (the "
                       "minimizers without one are not a simplex ETF)")
    q = (k - 1) / k
    p = 0.0 if s >= 1 else q * (1 - s)
    objective = k / (2 * (k - 1)) * (p - q) ** 2 + s * p
    b = 1 / k
  else:
    raise ValueError(f"loss={loss!r} is not allowed; allowed values: 'cross_entropy', 'mse'")
  ratio = np.sqrt(lambda_H * n / (lambda_W * k)) if s > 0 else 1.0     # c^2 / p
  c = float(np.sqrt(p * ratio))
  a = float(np.sqrt(p / ratio))
  return dict(objective=float(objective), p=float(p), feature_norm=a, weight_norm=c, bias=b,
              s=s)


def ufm_objective(traj, member: int = 0) -> dict:
  """A run of the unconstrained features model (experiments/configs/ufm.py) beside its closed
  form: the objective (mean loss plus penalty, what GD minimizes) at every kept step, the
  mean feature norm ||h_i|| and weight norm ||w_k|| there, and ufm_optimum's numbers."""
  c = traj.config
  m, d = c["model"], c["data"]
  optimum = ufm_optimum(c["loss"]["name"], d["num_classes"], d["per_class"], m["lambda_W"],
                        m["lambda_H"], m["lambda_b"], m["bias"])
  loss_fn, batch = traj.loss_fn(), traj.batch()
  steps = np.asarray(traj.kept_steps)
  params = [traj.params(int(s), member) for s in steps]
  return dict(steps=steps, optimum=optimum,
              objective=np.array([float(loss_fn(p, batch)) for p in params]),
              feature_norm=np.array([float(jnp.linalg.norm(p["H"], axis=1).mean())
                                     for p in params]),
              weight_norm=np.array([float(jnp.linalg.norm(p["W"], axis=1).mean())
                                    for p in params]))


def per_layer(traj, step: int, member: int = 0) -> list:
  """measures() of every hidden layer's features on the training set at a kept step (no
  weights: KEYS_FEATURES), first layer first; the last entry is the penultimate layer, whose
  NC1 equals from_trajectory's. Needs a model with `layers` (mlp, deep_linear)."""
  model, data = traj.model(), traj.problem().data
  if model.layers is None:
    raise ValueError(f"per_layer needs a model that returns every layer's features (mlp, "
                     f"deep_linear); this run's is {traj.config['model']['name']!r}")
  y = jnp.asarray(data["y_train"])
  c = int(np.max(np.asarray(y))) + 1
  return [{k: float(v) for k, v in measures(h, y, c).items()}
          for h in model.layers(traj.params(step, member), jnp.asarray(data["x_train"]))]


def simplex_etf(num_classes: int, dim: int, scale: float = 1.0, key=None, dtype=jnp.float64):
  """C vectors in R^dim (dim >= C - 1) at the vertices of a simplex ETF, each of norm `scale`,
  centred at 0, rotated by a random orthogonal map when `key` is given: [C, dim]."""
  if dim < num_classes - 1:
    raise ValueError(f"dim={dim} is not allowed: a simplex ETF of {num_classes} classes needs "
                     f"dim >= {num_classes - 1}")
  c = num_classes
  etf = jnp.sqrt(c / (c - 1.0)) * (jnp.eye(c, dtype=dtype) - 1.0 / c)   # rows of norm 1
  if dim >= c:                          # the first C coordinate axes of R^dim
    vecs = etf @ jnp.eye(c, dim, dtype=dtype)
  else:                                 # dim = C - 1: an orthonormal basis of 1^perp
    q, _ = jnp.linalg.qr(jnp.eye(c, dtype=dtype) - 1.0 / c)
    vecs = etf @ q[:, :dim]
  if key is not None:
    rot, _ = jnp.linalg.qr(jax.random.normal(key, (dim, dim), dtype))
    vecs = vecs @ rot
  return scale * vecs
