"""The processes of a central-flow experiment side by side from one point (Cohen et al. 2025,
Sec. 3-5; REFERENCE.md Sec. 2): the real optimizer, its central flow, its stable flow, and the
midpoint of the real iterates (w_{t-1} + 2 w_t + w_{t+1}) / 4.

    traj = trajectory.load(WORKDIR)        # a run of experiments/configs/central_flow_*.py
    r = processes(traj, member=0)

The real optimizer is the run itself: an ordinary run directory that logged every step (its
effective sharpness, squared gradient norm and effective learning rate) and kept its parameters
and optimizer state where the processes need them (needed_steps). From the run's iterate at
step `start` (and its state after start + 1 updates, the nu the step from there uses) the two
flows run `steps` steps, in `segments` equal segments so that their parameters are seen at
each segment's end, where the distances to the real run are measured; each segment restarts the
eigenvector tracking with a cold Lanczos solve. With k_max > k the central flow adds tracked
directions between segments (a segment that ran short of them runs again).

The settings are the run's `analysis.central_flow` section (FIELDS). Every finished segment is
written to WORKDIR/analysis/central_flow/member<i>/<key>/ as it finishes, so a killed computation
resumes at its last finished segment with the same numbers; <key> is a digest of the settings
and the starting point, so other settings are computed apart (a directory whose key.json names
another computation is refused).
"""
import hashlib
import json
import logging
import os
import time
from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.flatten_util import ravel_pytree

from analysis import central_flow as cf
from analysis import flow_forms
from dynamics import config_utils as cu
from dynamics import fields, runs
from dynamics.fields import Field

# progress of the flows, segment by segment (experiments.reproduce shows it beside its own)
_LOG = logging.getLogger("analysis.central_flow")

FIELDS = dict(
    start=Field(30, "real steps before the processes split (past the catapult)", lo=0),
    steps=Field(200, "steps of the processes after the split (a multiple of segments)", lo=1),
    segments=Field(8, "where the flows' weights meet the real run's", lo=1),
    k=Field(3, "tracked eigenvalues of the effective Hessian at the start", lo=1),
    k_max=Field(None, "at most this many: one is added while the smallest tracked reaches 1.5 "
                "(the public code's rule); None: k, fixed", kind="int", lo=1),
    substeps=Field(4, "central flow Euler substeps per optimizer step", lo=1),
    stable_substeps=Field(4, "stable flow substeps (Euler needs dt * S_eff < 2)", lo=1),
    # X ~ (lambda - 2) / |B| turns eigenvalue errors into noise in X: larger nets need more
    lanczos_iters=Field(20, "warm Lanczos steps per optimizer step", lo=1),
    method=Field("euler", "integrator of the flows", choices=("euler", "heun")),
    eig_method=Field("lanczos", "eigen-solver of the tracking", choices=("lanczos", "lobpcg")),
    window=Field(10, "steps (centred) over which the real run's loss, gradient norm and "
                 "effective learning rate are averaged before they meet the predictions: at "
                 "least the period of its slowest oscillation", lo=1),
)
VERSION = 2     # of the cached numbers: raised when the code changes them


def settings(cfg: Any = None) -> ml_collections.ConfigDict:
  """The analysis.central_flow section completed by FIELDS' defaults and checked."""
  s = fields.complete("analysis.central_flow", FIELDS, cfg)
  if s.steps % s.segments:
    raise cu.ConfigError(f"analysis.central_flow: steps={s.steps} must be a multiple of "
                         f"segments={s.segments}")
  if not 1 <= s.k <= (s.k_max or s.k):
    raise cu.ConfigError(f"analysis.central_flow: k={s.k}, k_max={s.k_max} are not allowed: "
                         "need 1 <= k <= k_max")
  return s


def marks(s) -> np.ndarray:
  """The steps after the split at which the segments end (where distances are measured)."""
  return s.steps // s.segments * np.arange(1, s.segments + 1)


def needed_steps(s) -> list[int]:
  """The run's steps whose parameters and state the processes read: start (the flows' start),
  start + 1 (its nu), and start + t - 1, t, t + 1 around each mark t (midpoints, nu)."""
  return sorted({s.start, s.start + 1} | {int(s.start + t + d) for t in marks(s)
                                          for d in (-1, 0, 1)})


def _digest(*arrays) -> str:
  h = hashlib.sha256()
  for a in arrays:
    a = np.ascontiguousarray(np.asarray(a))
    h.update(f"{a.dtype}{a.shape}".encode())
    h.update(a.tobytes())
  return h.hexdigest()[:16]


class _Cache:
  """Finished segments of one computation as DIR/NAME.npz, each written atomically, with
  DIR/key.json naming the computation they belong to."""

  def __init__(self, path: str, key: dict):
    self.path = path
    key = json.loads(json.dumps(key, default=str))
    os.makedirs(path, exist_ok=True)
    key_file = os.path.join(path, "key.json")
    if os.path.exists(key_file):
      with open(key_file) as f:
        old = json.load(f)
      if old != key:
        diff = sorted(k for k in set(old) | set(key) if old.get(k) != key.get(k))
        raise ValueError(f"{path} holds another central-flow computation (differs in "
                         f"{', '.join(diff)}); delete it")
    else:
      runs.write_json_atomic(key_file, key)

  def load(self, name: str) -> Optional[dict]:
    path = os.path.join(self.path, name + ".npz")
    if not os.path.exists(path):
      return None
    with np.load(path) as z:
      return {k: z[k] for k in z.files}

  def save(self, name: str, arrays: dict) -> None:
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    runs.write_atomic(os.path.join(self.path, name + ".npz"), lambda f: np.savez(f, **arrays))


def _flat_nu(traj, step: int, member: int, form) -> jax.Array:
  """nu of the optimizer state kept at `step`, flat ([n] rmsprop, scalar otherwise; gd: 0)."""
  if form.name == "gd":
    return jnp.zeros(())
  nu = traj.opt_state(step, member).nu
  return ravel_pytree(nu)[0] if form.name == "rmsprop" else jnp.asarray(nu)


def _real(traj, member: int, s) -> dict:
  """The real run's per-step arrays from step `start` on (steps + 2 of them)."""
  i = np.searchsorted(traj.steps, s.start + np.arange(s.steps + 2))
  m = {k: v[member] for k, v in traj.metrics.items()}
  return dict(loss=m["train_loss"][i], sharpness=m["preconditioned_sharpness/max"][i],
              grad_sq=m["grad_norm"][i] ** 2, effective_lr=m["effective_lr"][i])


def processes(traj, member: int = 0, **overrides: Any) -> dict:
  """The central flow and the stable flow of one member of a central-flow run, beside it.

  Args:
    traj: analysis.trajectory.load of a run made by experiments/configs/central_flow_*.py (gd,
      scalar_rmsprop or rmsprop; float64; every step logged; needed_steps kept).
    member: the sweep member.
    **overrides: settings that replace the run's analysis.central_flow ones (e.g. k=4).

  Returns:
    dict of numpy arrays: real (loss, sharpness, grad_sq, effective_lr, [steps + 2] from step
    start), cf and gf (analysis.central_flow.Step, [steps]), marks [segments], and at each
    mark: dist_mid_cf, dist_mid_gf (the real midpoint to each flow), dist_real_cf,
    dist_real_gf, perp_real_cf (the part of real - central orthogonal to the central flow's
    tracked directions V = P^{-1/2} U), nu_err_cf, nu_err_gf (|nu_real - nu_flow| / |nu_real|,
    scalar RMSProp and RMSProp); eta, name, n_params, settings; k_cf [steps] (the central
    flow's tracked directions at each step) and k_max: the flows' eigenvalues [steps, k_max]
    and X [steps, k_max, k_max] are padded with NaN and 0 beyond the directions tracked.
  """
  s = settings({**traj.config.get("analysis", {}).get("central_flow", {}), **overrides})
  form = flow_forms.flow_form(traj.config["opt"])
  loss_fn, batch = traj.loss_fn(), traj.batch()        # (enables x64 for the float64 run)
  if traj.diverged[member]:
    raise ValueError(f"{traj.workdir}: member {member} diverged at step "
                     f"{traj.stop_step[member]}; the flows need a real run that stays finite")
  missing = sorted(set(needed_steps(s)) - set(traj.kept_steps))
  if missing:
    raise ValueError(f"{traj.workdir} did not keep steps {missing}, which these "
                     f"analysis.central_flow settings need: a run with train.keep = "
                     f"{needed_steps(s)} (central_flow_config sets it from the settings)")
  w = lambda t: ravel_pytree(traj.params(s.start + t, member))[0]
  p0, nu0 = traj.params(s.start, member), _flat_nu(traj, s.start + 1, member, form)
  key = dict(settings=s.to_dict(), version=VERSION, start=_digest(ravel_pytree(p0)[0], nu0))
  path = os.path.join(traj.workdir, "analysis", "central_flow", f"member{member}",
                      hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12])
  store = _Cache(path, key)
  out = {name: _flow(loss_fn, batch, form, p0, nu0, s, store, name) for name in ("cf", "gf")}
  ts = marks(s)
  mid = lambda t: (w(t - 1) + 2 * w(t) + w(t + 1)) / 4
  r = dict(eta=form.eta, name=form.name, real=_real(traj, member, s), cf=out["cf"][0],
           gf=out["gf"][0], marks=ts, n_params=int(ravel_pytree(p0)[0].size),
           k_max=s.k_max or s.k, settings=s.to_dict(),
           k_cf=np.repeat([e[3] for e in out["cf"][1]], s.steps // s.segments))
  for name in ("cf", "gf"):
    ends = out[name][1]
    r[f"dist_mid_{name}"] = np.array([np.linalg.norm(mid(t) - e[0]) for t, e in zip(ts, ends)])
    r[f"dist_real_{name}"] = np.array([np.linalg.norm(w(t) - e[0]) for t, e in zip(ts, ends)])
    if form.name != "gd":     # nu_real: the state after start + t + 1 updates, as nu0
      nus = [_flat_nu(traj, s.start + t + 1, member, form) for t in ts]
      r[f"nu_err_{name}"] = np.array([np.linalg.norm(n - e[1]) / np.linalg.norm(n)
                                      for n, e in zip(nus, ends)])
  r["perp_real_cf"] = np.array([perp_to_tracked(loss_fn, e[2], batch, form, e[1], e[3],
                                                3 * s.lanczos_iters, w(t) - e[0])
                                for t, e in zip(ts, out["cf"][1])])
  return r


def _flow(loss_fn, batch, form, p0, nu0, s, store: _Cache, name: str):
  """One flow ('cf': central, 'gf': stable) segment by segment from (p0, nu0), each finished
  segment read from or written to `store`. Returns (its Step log [steps], and per segment
  (flat params, nu, params, tracked directions) at its end)."""
  seg, k_max = s.steps // s.segments, s.k_max or s.k
  unravel = ravel_pytree(p0)[1]
  thr, n_sub = (cf.THRESHOLD, s.substeps) if name == "cf" else (float("inf"), s.stable_substeps)
  run = jax.jit(lambda p, nu, k_now: cf.central_flow(
      loss_fn, p, batch, form, seg, nu0=nu, k=k_now, substeps=n_sub, threshold=thr,
      lanczos_iters=s.lanczos_iters, method=s.method, eig_method=s.eig_method),
      static_argnums=2)
  p, nu, k_now, logs, ends = p0, nu0, s.k, [], []
  label = dict(cf="central flow", gf="stable flow")[name]
  t0, computed = time.time(), 0
  for i in range(s.segments):
    got = store.load(f"{name}_{i:03d}")
    if got is None:
      computed += 1
      while True:
        p_end, nu_end, log = run(p, nu, k_now)
        log = jax.device_get(log)
        if name == "gf" or k_now == k_max or not np.any(log.saturated):
          break
        k_now += 1                       # the public code's rule: add a direction
      p, nu = p_end, nu_end
      store.save(f"{name}_{i:03d}", dict(p=ravel_pytree(p)[0], nu=nu, k=k_now, **log._asdict()))
    else:
      p, nu = unravel(jnp.asarray(got.pop("p"))), jnp.asarray(got.pop("nu"))
      k_now = int(got.pop("k"))
      log = cf.Step(**got)
    logs.append(_pad(log, k_max))
    ends.append((ravel_pytree(p)[0], nu, p, k_now))
    left = (time.time() - t0) / computed * (s.segments - i - 1) if computed else 0.0
    _LOG.info("%s: segment %d/%d %s, %d direction(s) tracked, ETA %.0f s", label, i + 1,
              s.segments, "computed" if got is None else "read from the cache", k_now, left)
  return jax.tree.map(lambda *a: np.concatenate(a), *logs), ends


def _pad(log: "cf.Step", k_max: int) -> "cf.Step":
  """A segment's log with its eigenvalues padded to [T, k_max] (NaN) and X to
  [T, k_max, k_max] (0), so that segments tracking different numbers of directions stack."""
  n = k_max - log.eigenvalues.shape[-1]
  return log._replace(
      eigenvalues=np.pad(log.eigenvalues, ((0, 0), (0, n)), constant_values=np.nan),
      X=np.pad(log.X, ((0, 0), (0, n), (0, n))))


def perp_to_tracked(loss_fn, params, batch, form, nu, k, num_iters, d) -> float:
  """|d - its orthogonal projection on span(P^{-1/2} U)|: the part of the flat displacement d
  that the central flow's k tracked directions at (params, nu) cannot hold; U [k, n] are the
  top-k eigenvectors of the effective Hessian P^{-1/2} H P^{-1/2} (num_iters Lanczos steps)."""
  U = cf.effective_eigenvectors(loss_fn, params, batch, form, nu, k, num_iters)
  V = cf.scale_rows(U, form.p(jnp.asarray(nu)) ** -0.5)
  Q, _ = np.linalg.qr(np.asarray(V).T)                        # orthonormal basis of span(V)
  return float(np.linalg.norm(d - Q @ (Q.T @ d)))
