"""The processes of a central-flow experiment, run side by side from one initialization
(Cohen et al. 2025, Sec. 3-5; REFERENCE.md Sec. 2): the real optimizer (the engine's own
dynamics.optimizers step), its central flow, its stable flow, and the midpoint of the real
iterates (w_{t-1} + 2 w_t + w_{t+1}) / 4.

    r = run_processes(loss_fn, params, batch, opt_cfg, start=30, steps=200)

The real optimizer first runs `start` steps alone (it usually catapults out of an unstable
start; the central flow describes the oscillation at the edge, not that escape), then all three
run `steps` steps from its iterate and state. The flows run in `segments` equal segments so that
their parameters are seen at each segment's end, where the distances are measured; each segment
restarts the eigenvector tracking with a cold Lanczos solve. With k_max > k the central flow
adds tracked directions between segments (a segment that ran short of them runs again).

With `cache=DIR` the real runs and every finished segment of each flow are written to DIR as
they finish, so a killed computation resumes at its last finished segment and gives the same
numbers (long runs: the full central_flow_speed takes an hour on a CPU). The cache names what
it holds (the arguments, digests of the initial parameters and the batch, and of the code that
computes it), and a cache of anything else is refused.
"""
import hashlib
import json
import os
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from analysis import central_flow as cf
from analysis import curvature
from analysis import flow_forms
from dynamics import optimizers, runs


def real_run(loss_fn: Callable, params: Any, batch: Any, opt_cfg: Any, num_steps: int,
             state: Any = None, lanczos_iters: int = 20, keep_w: Any = None):
  """The engine's optimizer for num_steps full-batch steps, with its effective sharpness.

  The state starts with nu = the squared gradient at params (FlowForm.init_state) unless given.
  Per step t (the step from w_t): loss L(w_t), w_t (flat), the effective sharpness
  lambda_max(P^{-1/2} H(w_t) P^{-1/2}) with P the preconditioner of the step taken (warm
  Lanczos) and the effective learning rate 1 / mean(P) (as analysis.central_flow.Step).

  keep_w: None keeps w_t for every step; a sorted sequence of steps keeps only those (w is
  then [len(keep_w), n]; large models).

  Returns:
    (params, state) after the run, and a dict of per-step arrays: loss [T], w [T, n],
    sharpness [T], grad_sq [T] (||grad L(w_t)||^2), effective_lr [T], nu [T] (scalar
    states) or [T, n].
  """
  opt, form = optimizers.build(opt_cfg), flow_forms.flow_form(opt_cfg)
  if state is None:
    state = opt.init(params)
    g = ravel_pytree(jax.grad(loss_fn)(params, batch))[0]
    nu = form.init_state(g)
    if form.name == "rmsprop":
      state = state._replace(nu=ravel_pytree(params)[1](nu))
    elif form.name == "scalar_rmsprop":
      state = state._replace(nu=nu)
  v0 = jax.tree.map(lambda x: jnp.zeros((1,) + jnp.shape(x), jnp.result_type(x)), params)
  flat0 = ravel_pytree(params)[0]
  keep = None if keep_w is None else jnp.asarray(np.asarray(keep_w, np.int32))
  buf0 = jnp.zeros((0 if keep is None else keep.size, flat0.size), flat0.dtype)

  def body(carry, t):
    p, s, v, buf = carry
    loss, g = jax.value_and_grad(loss_fn)(p, batch)
    upd, s = opt.update(g, s, p)
    P = opt.preconditioner(s, p)
    e = curvature.preconditioned_sharpness(loss_fn, p, batch, P, k=1, num_iters=lanczos_iters,
                                           v0=v)
    flat_P = ravel_pytree(P)[0]
    nu = s.nu if form.name != "rmsprop" else ravel_pytree(s.nu)[0]
    w = ravel_pytree(p)[0]
    if keep is not None:     # write w at its slot if t is kept (an out-of-range slot is dropped)
      i = jnp.searchsorted(keep, t)
      hit = (i < keep.size) & (keep[jnp.minimum(i, keep.size - 1)] == t)
      buf = buf.at[jnp.where(hit, i, keep.size)].set(w, mode="drop")
    log = dict(loss=loss, sharpness=e.eigenvalues[0],
               grad_sq=sum(jnp.sum(x ** 2) for x in jax.tree.leaves(g)),
               effective_lr=1 / jnp.mean(flat_P), nu=nu if nu is not None else jnp.zeros(()))
    if keep is None:
      log["w"] = w
    return (jax.tree.map(lambda a, b: a + b, p, upd), s, e.eigenvectors, buf), log

  (params, state, _, buf), logs = jax.lax.scan(body, (params, state, v0, buf0),
                                               jnp.arange(num_steps))
  if keep is not None:
    logs["w"] = buf
  return params, state, logs


# the code a cached result depends on: a change here makes an old cache refuse to resume
_CODE = ("analysis/central_flow.py", "analysis/central_flow_processes.py",
         "analysis/central_flow_sdp.py", "analysis/curvature.py", "analysis/lanczos.py",
         "analysis/flow_forms.py", "dynamics/optimizers.py", "dynamics/losses.py", "dynamics/models")


def _code_digest() -> str:
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  files = []
  for rel in _CODE:
    path = os.path.join(root, rel)
    files += ([os.path.join(path, f) for f in sorted(os.listdir(path)) if f.endswith(".py")]
              if os.path.isdir(path) else [path])
  h = hashlib.sha256()
  for path in files:
    with open(path, "rb") as f:
      h.update(f.read())
  return h.hexdigest()[:16]


def _digest(*arrays) -> str:
  h = hashlib.sha256()
  for a in arrays:
    a = np.ascontiguousarray(np.asarray(a))
    h.update(f"{a.dtype}{a.shape}".encode())
    h.update(a.tobytes())
  return h.hexdigest()[:16]


class _Cache:
  """Finished parts of one run_processes call as DIR/NAME.npz, each written atomically, with
  DIR/key.json naming the computation they belong to. path None: nothing is kept."""

  def __init__(self, path: Optional[str], key: dict):
    self.path = path
    if path is None:
      return
    key = json.loads(json.dumps(key, default=str))
    os.makedirs(path, exist_ok=True)
    key_file = os.path.join(path, "key.json")
    if os.path.exists(key_file):
      with open(key_file) as f:
        old = json.load(f)
      if old != key:
        diff = sorted(k for k in set(old) | set(key) if old.get(k) != key.get(k))
        raise ValueError(f"cache={path!r} holds another central-flow computation (differs in "
                         f"{', '.join(diff)}); pass another directory or delete it")
    else:
      runs.write_json_atomic(key_file, key)

  def load(self, name: str) -> Optional[dict]:
    if self.path is None or not os.path.exists(os.path.join(self.path, name + ".npz")):
      return None
    with np.load(os.path.join(self.path, name + ".npz")) as z:
      return {k: z[k] for k in z.files}

  def save(self, name: str, arrays: dict) -> None:
    if self.path is not None:
      arrays = {k: np.asarray(v) for k, v in arrays.items()}
      runs.write_atomic(os.path.join(self.path, name + ".npz"),
                        lambda f: np.savez(f, **arrays))



def run_processes(loss_fn: Callable, params: Any, batch: Any, opt_cfg: Any, start: int,
                  steps: int, segments: int = 8, k: int = 3, substeps: int = 4,
                  stable_substeps: int = 4, lanczos_iters: int = 20,
                  method: str = "euler", eig_method: str = "lanczos",
                  cache: Optional[str] = None, k_max: Optional[int] = None) -> dict:
  """The real optimizer, its central flow and its stable flow from one initialization.

  Args:
    loss_fn, params, batch: the problem (params' dtype is the computation's; float64 advised).
    opt_cfg: the `opt` section: gd, scalar_rmsprop or rmsprop (optimizers.flow_form).
    start: real steps before the processes split; steps: steps after (a multiple of segments).
    segments: how often the flows' parameters are compared with the real run.
    k, substeps, lanczos_iters, method, eig_method: passed to analysis.central_flow.central_flow;
      stable_substeps: the stable flow's substeps.
    k_max: None keeps k tracked directions throughout. Else the central flow adds directions
      as the public code does, up to k_max: a segment in which the smallest tracked effective
      eigenvalue reached SATURATION (1.5) at some step is run again from its start with one
      more direction, and the next segment starts with the count the last one ended with.
    cache: a directory for the finished parts (resume after a kill); it must hold parts of
      this same computation, else ValueError.

  Returns:
    dict of numpy arrays: real (dict of per-step arrays for steps + 2 steps after the split,
    see real_run; its w only around the marks, at real["w_steps"]), cf and gf
    (analysis.central_flow.Step, [steps]), marks [segments] (steps
    at the segment ends), and at each mark: dist_mid_cf, dist_mid_gf (the real midpoint to
    each flow), dist_real_cf, dist_real_gf, perp_real_cf (the part of real - central
    orthogonal to the central flow's tracked directions V = P^{-1/2} U), nu_err_cf,
    nu_err_gf (|nu_real - nu_flow| / |nu_real|, scalar RMSProp and RMSProp); eta, n_params;
    k_cf [steps] (the central flow's tracked directions at each step) and k_max: the flows'
    eigenvalues [steps, k_max] and X [steps, k_max, k_max] are padded with NaN and 0 beyond
    the directions tracked at that step.
  """
  if steps % segments:
    raise ValueError(f"steps={steps} must be a multiple of segments={segments}")
  k_max = k if k_max is None else k_max
  if not 1 <= k <= k_max:
    raise ValueError(f"k={k}, k_max={k_max} are not allowed: need 1 <= k <= k_max")
  form = flow_forms.flow_form(opt_cfg)
  flat0, unravel = ravel_pytree(params)
  seg = steps // segments
  marks = seg * np.arange(1, segments + 1)
  keep = sorted({int(t + d) for t in marks for d in (-1, 0, 1)})   # w around each mark
  store = _Cache(cache, dict(
      opt=dict(opt_cfg), start=start, steps=steps, segments=segments, k=k, k_max=k_max,
      substeps=substeps, stable_substeps=stable_substeps, lanczos_iters=lanczos_iters,
      method=method, eig_method=eig_method, params=_digest(flat0),
      batch=_digest(*jax.tree.leaves(batch)), code=_code_digest()))
  got = store.load("real")
  if got is None:
    p0, s0, _ = jax.jit(lambda p: real_run(loss_fn, p, batch, opt_cfg, start,
                                           lanczos_iters=lanczos_iters))(params)
    _, _, real = jax.jit(lambda p, s: real_run(loss_fn, p, batch, opt_cfg, steps + 2, s,
                                               lanczos_iters=lanczos_iters, keep_w=keep))(p0, s0)
    real = jax.device_get(real)
    real["w_steps"] = np.asarray(keep)
    # the flows' state is the nu' that the step from w_0 uses (FlowForm), i.e. after the
    # real run's first update of it, not the state s0 carried out of the steps before
    nu_start = np.asarray(real["nu"][0])
    store.save("real", dict(p0=ravel_pytree(p0)[0], nu_start=nu_start,
                            **{f"real/{f}": v for f, v in real.items()}))
  else:
    p0, nu_start = unravel(jnp.asarray(got["p0"])), jnp.asarray(got["nu_start"])
    real = {f[5:]: v for f, v in got.items() if f.startswith("real/")}
  run = jax.jit(lambda p, nu, thr, n_sub, k_now: cf.central_flow(
      loss_fn, p, batch, form, seg, nu0=nu, k=k_now, substeps=n_sub, threshold=thr,
      lanczos_iters=lanczos_iters, method=method, eig_method=eig_method),
      static_argnums=(2, 3, 4))
  out = {}
  for name, thr, n_sub in (("cf", cf.THRESHOLD, substeps), ("gf", float("inf"), stable_substeps)):
    p, nu, k_now, logs, ends = p0, nu_start, k, [], []
    for i in range(segments):
      got = store.load(f"{name}_{i:03d}")
      if got is None:
        while True:
          p_end, nu_end, log = run(p, nu, thr, n_sub, k_now)
          log = jax.device_get(log)
          if name == "gf" or k_now == k_max or not np.any(log.saturated):
            break
          k_now += 1                       # the public code's rule: add a direction
        p, nu = p_end, nu_end
        store.save(f"{name}_{i:03d}", dict(p=ravel_pytree(p)[0], nu=nu, k=k_now,
                                           **log._asdict()))
      else:
        p, nu = unravel(jnp.asarray(got.pop("p"))), jnp.asarray(got.pop("nu"))
        k_now = int(got.pop("k"))
        log = cf.Step(**got)
      logs.append(_pad(log, k_max))
      ends.append((ravel_pytree(p)[0], nu, p, k_now))
    out[name] = (jax.tree.map(lambda *a: np.concatenate(a), *logs), ends)
  slot = {t: i for i, t in enumerate(keep)}
  w = lambda t: real["w"][slot[t]]
  mid = lambda t: (w(t - 1) + 2 * w(t) + w(t + 1)) / 4
  r = dict(eta=form.eta, name=form.name, real=real, cf=out["cf"][0], gf=out["gf"][0],
           marks=marks, n_params=int(flat0.size), k_max=k_max,
           k_cf=np.repeat([e[3] for e in out["cf"][1]], seg))
  for name in ("cf", "gf"):
    ends = out[name][1]
    r[f"dist_mid_{name}"] = np.array([np.linalg.norm(mid(t) - e[0]) for t, e in zip(marks, ends)])
    r[f"dist_real_{name}"] = np.array([np.linalg.norm(w(t) - e[0]) for t, e in zip(marks, ends)])
    if form.name != "gd":
      r[f"nu_err_{name}"] = np.array([np.linalg.norm(real["nu"][t] - e[1])
                                      / np.linalg.norm(real["nu"][t]) for t, e in zip(marks, ends)])
  r["perp_real_cf"] = np.array([perp_to_tracked(loss_fn, e[2], batch, form, e[1], e[3],
                                                3 * lanczos_iters, w(t) - e[0])
                                for t, e in zip(marks, out["cf"][1])])
  return r


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
