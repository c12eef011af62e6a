"""Central flows of GD, scalar RMSProp and RMSProp: their terms against dense and finite-difference
references, the complementarity map against the stability margin one substep ahead, the
continuous form against the engine's optimizers, Heun's order, and the flows against the real
optimizers at the edge of stability on a small digits MLP (float64)."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from analysis import central_flow as cf
from analysis import central_flow_processes as cfp
from analysis import curvature, flow_forms, trajectory
from dynamics import experiment, optimizers
from experiments.configs import central_flow_gd, common
from figure_report import check_report


@pytest.fixture(scope="module")
def problem():
  # the quick figures' problem: fc-tanh 32 on 200 digits of classes 0-3, MSE, float64, at an
  # initialization of its own (PRNGKey(0), not the engine's draw for seed 0)
  c = experiment.resolve(central_flow_gd.get_config("quick"))
  prob, _, model = experiment.build_problem(c)
  params = model.init(jax.random.PRNGKey(0), dtype=jnp.float64)
  return prob.batch_loss, params, jax.tree.map(jnp.asarray, prob.full_batch())


def _run(workdir, opt, **flow):
  """A central-flow run of the quick problem with optimizer `opt` and these processes'
  settings, trained into `workdir` and loaded."""
  c = common.central_flow_config(opt, quick=True, **flow)
  experiment.run(c, str(workdir), log=lambda *_: None)
  return trajectory.load(str(workdir))


def test_terms_match_dense_hessian_and_finite_differences(problem):
  loss_fn, params, batch = problem
  flat, unravel = ravel_pytree(params)
  U = jnp.asarray(np.linalg.qr(np.random.RandomState(0).randn(flat.size, 3))[0].T)
  t = cf.terms(loss_fn, params, batch, U)
  f = lambda x: loss_fn(unravel(x), batch)
  H = np.asarray(jax.hessian(f)(flat))
  np.testing.assert_allclose(t.M, U @ H @ U.T, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(t.HV, U @ H, rtol=1e-10, atol=1e-12)
  # g_ij = grad_w (u_i^T H(w) u_j): central differences of M along a random direction
  v = jnp.asarray(np.random.RandomState(1).randn(flat.size))
  eps = 1e-5
  M = lambda x: U @ np.asarray(jax.hessian(f)(x)) @ U.T
  fd = (M(flat + eps * v) - M(flat - eps * v)) / (2 * eps)
  np.testing.assert_allclose(np.einsum("ijn,n->ij", t.g, v), fd, rtol=1e-6, atol=1e-9)
  A0, B, active = cf.sdcp_inputs(t, U, cf.gd_form(0.5), jnp.zeros(()), dt=0.25)
  np.testing.assert_array_equal(active, np.diagonal(t.M) >= cf.THRESHOLD)


FORMS = {
    "gd": dict(name="gd", learning_rate=0.5),
    "scalar_rmsprop": dict(name="scalar_rmsprop", learning_rate=0.3, b2=0.9),
    "rmsprop": dict(name="rmsprop", learning_rate=0.01, b2=0.9),
}


def test_inactive_directions_leave_the_complementarity_problem():
  # k = 3 tracked directions with the third below the threshold: the solution must be the
  # solution of the problem on the two active directions (and 0 on the third) to solver
  # accuracy, and satisfy the KKT conditions there. (Raising A0_33 by a large constant instead
  # left the active block at ~1e-8 of the solver's scale: errors up to 11% on these seeds.)
  from analysis.central_flow_sdp import solve_psd_lcp
  solve = jax.jit(solve_psd_lcp)
  n, checked = 7, 0
  for seed in range(12):
    rng = np.random.RandomState(seed)
    data = jnp.asarray(rng.normal(size=(5, n)))
    loss_fn = lambda p, b: (jnp.sum(jnp.tanh(b @ p["w"]) ** 2) + 0.1 * jnp.sum(p["w"] ** 4)
                            + jnp.sum(jnp.sin(p["w"])))
    params = {"w": jnp.asarray(rng.normal(size=n))}
    lam, Q = np.linalg.eigh(jax.hessian(lambda w: loss_fn({"w": w}, data))(params["w"]))
    lam, Q = lam[::-1], Q[:, ::-1]
    form = cf.gd_form(2.03 / lam[1])     # eta lam_1 >= 2.03, eta lam_2 = 2.03, eta lam_3 < 1.95?
    if not form.eta * lam[2] < 0.95 * cf.THRESHOLD:
      continue
    V = cf.scale_rows(jnp.asarray(Q[:, :3].T), form.p(jnp.zeros(())) ** -0.5)
    t = cf.terms(loss_fn, params, data, V)
    A0, B, active = cf.sdcp_inputs(t, V, form, jnp.zeros(()), 0.25)
    assert list(np.asarray(active)) == [True, True, False]
    X = np.asarray(solve(A0, B)[0])
    A0r, Br, _ = cf.sdcp_inputs(t._replace(M=t.M[:2, :2], g=t.g[:2, :2], HV=t.HV[:2]), V[:2],
                                form, jnp.zeros(()), 0.25)
    Xr = np.asarray(solve(A0r, Br)[0])
    assert np.trace(Xr) > 0
    np.testing.assert_allclose(X[:2, :2], Xr, rtol=0, atol=1e-10 * np.abs(Xr).max())
    np.testing.assert_allclose(X[2], 0, atol=1e-12 * np.abs(Xr).max())
    AX = np.asarray(A0r) + np.einsum("ijlm,lm->ij", np.asarray(Br), X[:2, :2])
    scale = np.abs(np.asarray(A0r)).max()
    assert np.linalg.eigvalsh(AX)[0] >= -1e-10 * scale
    assert abs(np.sum(X[:2, :2] * AX)) <= 1e-10 * scale * np.abs(Xr).max()
    checked += 1
  assert checked >= 4


@pytest.mark.parametrize("name", list(FORMS))
def test_complementarity_map_is_the_stability_margin_one_substep_ahead(problem, name):
  # A(X) = A0 + B[X] must be V (2P - H) V^T at (w, nu) moved for dt along the flow's own
  # rates (dw/dt, dnu/dt) at that X, to first order in dt, with V held fixed: checked against
  # central finite differences of the margin computed from scratch (HVPs and P(nu) only)
  loss_fn, params, batch = problem
  form = flow_forms.flow_form(FORMS[name])
  flat, unravel = ravel_pytree(params)
  rng = np.random.RandomState(2)
  g = ravel_pytree(jax.grad(loss_fn)(params, batch))[0]
  nu0 = form.init_state(g)     # made positive everywhere (digits have constant pixels)
  nu = nu0 + jnp.mean(nu0) * rng.rand(*np.shape(nu0))
  k, dt = 2, 0.25
  U = jnp.asarray(np.linalg.qr(rng.randn(flat.size, k))[0].T)
  V = cf.scale_rows(U, form.p(nu) ** -0.5)
  t = cf.terms(loss_fn, params, batch, V)
  A0, B, active = cf.sdcp_inputs(t, V, form, nu, dt, threshold=-np.inf)
  assert np.all(active)
  L = rng.randn(k, k)
  X = jnp.asarray(L @ L.T)
  dw, dnu = cf.rates(t, V, form, nu, X)

  def margin(h):
    x, n_ = flat + h * dw, nu + h * dnu
    HV = jax.vmap(lambda v: jax.jvp(jax.grad(lambda y: loss_fn(unravel(y), batch)),
                                    (x,), (v,))[1])(V)
    P = jnp.broadcast_to(form.p(n_), flat.shape)
    return np.asarray(2 * cf.scale_rows(V, P) @ V.T - V @ HV.T)

  h = 1e-4
  expected = margin(0.0) + dt * (margin(h) - margin(-h)) / (2 * h)
  got = np.asarray(A0 + jnp.einsum("ijlm,lm->ij", B, X))
  np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9 * np.abs(expected).max())
  # B is a Gram tensor: symmetric under (ij) <-> (lm) and positive semi-definite
  Bm = np.asarray(B).reshape(k * k, k * k)
  np.testing.assert_allclose(Bm, Bm.T, rtol=1e-10, atol=1e-14 * np.abs(Bm).max())
  assert np.linalg.eigvalsh(0.5 * (Bm + Bm.T)).min() > -1e-10 * np.abs(Bm).max()
  if name == "gd":       # no state: B is the third-derivative Gram tensor alone
    np.testing.assert_array_equal(dnu, 0)


def test_flow_form_matches_the_engine_optimizers():
  # P(nu) is the engine's preconditioner and the state derivative is the engine's update:
  # nu' - nu = c (g^2 - nu') with c = (1 - b2) / b2 and nu' the nu the step uses
  rng = np.random.RandomState(0)
  params = {"a": jnp.asarray(rng.randn(3, 2)), "b": jnp.asarray(rng.randn(4))}
  grads = jax.tree.map(lambda x: jnp.asarray(rng.randn(*x.shape)), params)
  g = ravel_pytree(grads)[0]
  for cfg in FORMS.values():
    form, opt = flow_forms.flow_form(cfg), optimizers.build(cfg)
    state = opt.init(params)
    if form.name == "rmsprop":
      state = state._replace(nu=jax.tree.map(lambda x: jnp.abs(x) + 0.5, params))
    elif form.name == "scalar_rmsprop":
      state = state._replace(nu=jnp.asarray(2.0))
    upd, new = opt.update(grads, state, params)
    nu_new = (ravel_pytree(new.nu)[0] if form.name == "rmsprop" else new.nu)
    nu_old = (ravel_pytree(state.nu)[0] if form.name == "rmsprop" else state.nu)
    p = jnp.broadcast_to(form.p(jnp.asarray(nu_new if nu_new is not None else 0.0)), g.shape)
    np.testing.assert_allclose(ravel_pytree(opt.preconditioner(new, params))[0], p, rtol=1e-12)
    np.testing.assert_allclose(ravel_pytree(upd)[0], -g / p, rtol=1e-12)
    if form.name != "gd":
      sq = jnp.sum(g ** 2) if form.scalar else g ** 2
      np.testing.assert_allclose(nu_new - nu_old, form.dstate(nu_new, sq), rtol=1e-12)
  for bad, field in ((dict(name="adam"), "opt.name"),
                     (dict(name="rmsprop", weight_decay=0.1), "opt.weight_decay"),
                     (dict(name="rmsprop", bias_correction=True), "opt.bias_correction"),
                     (dict(name="gd", schedule=dict(name="warmup", warmup_steps=3)),
                      "opt.schedule.name")):
    with pytest.raises(Exception, match=field):
      flow_forms.flow_form(bad)


def test_heun_substeps_are_second_order_on_the_stable_flow(problem):
  # The stable flow of RMSProp (X = 0): dw/dt = -grad L / P(nu), dnu/dt = c (grad L^2 - nu).
  # Against a fine RK4 integration of that ODE written here, Euler's error shrinks like dt and
  # Heun's like dt^2.
  loss_fn, params, batch = problem
  form = flow_forms.flow_form(dict(name="rmsprop", learning_rate=0.01, b2=0.9))
  flat, unravel = ravel_pytree(params)
  grad = lambda x: ravel_pytree(jax.grad(loss_fn)(unravel(x), batch))[0]
  nu0 = grad(flat) ** 2 + 0.01

  def f(y):
    x, nu = y
    g = grad(x)
    return (-g / form.p(nu), form.dstate(nu, g ** 2))

  def rk4(y, h):
    k1 = f(y)
    k2 = f(jax.tree.map(lambda a, b: a + h / 2 * b, y, k1))
    k3 = f(jax.tree.map(lambda a, b: a + h / 2 * b, y, k2))
    k4 = f(jax.tree.map(lambda a, b: a + h * b, y, k3))
    return jax.tree.map(lambda a, b, c, d, e: a + h / 6 * (b + 2 * c + 2 * d + e),
                        y, k1, k2, k3, k4)

  y = (flat, nu0)
  for _ in range(32):
    y = jax.jit(rk4, static_argnums=1)(y, 2 / 32)
  err = {}
  for method in ("euler", "heun"):
    for sub in (1, 2):
      p, nu, _ = cf.central_flow(loss_fn, params, batch, form, 2, nu0=nu0, k=1, substeps=sub,
                                 lanczos_iters=5, threshold=float("inf"), method=method)
      err[method, sub] = float(jnp.linalg.norm(ravel_pytree(p)[0] - y[0]))
  moved = float(jnp.linalg.norm(y[0] - flat))
  assert err["euler", 2] < 0.7 * err["euler", 1]             # first order: halves
  assert err["heun", 2] < 0.35 * err["heun", 1]              # second order: quarters
  assert err["heun", 2] < 0.1 * err["euler", 2] and err["heun", 2] < 0.01 * moved, err


@pytest.mark.xdist_group("central_flow_runs")    # the notebook reuses these figures' runs
@pytest.mark.parametrize("name,claim_names", [
    ("gd", ("predicted time-averaged loss", "GD midpoint")),
    ("scalar_rmsprop", ("predicted time-averaged loss", "effective learning rate")),
    ("rmsprop", ("predicted time-averaged loss", "nu_RMSProp")),
])
def test_central_flow_tracks_the_time_averaged_optimizer_at_the_edge_of_stability(
    reproduce_root, name, claim_names):
  # The real optimizer (an ordinary run directory), its central flow and its stable flow side
  # by side from the real run's iterate at the edge of stability: the quick figure itself
  # (trained, drawn, reported, the flows cached in the run directory for the notebook), then
  # its processes read back here
  from experiments import reproduce
  from experiments.figures import central_flow as fig_cf
  figure = f"central_flow_{name}"
  lines = []
  report = reproduce.reproduce(figure, str(reproduce_root), quick=True, log=lines.append)
  check_report(reproduce_root, figure, report, claim_names)
  # the analysis shows its progress, segment by segment, for both flows
  for flow in ("central flow", "stable flow"):
    assert any(f"[{figure}] {flow}: segment 8/8 " in line and "ETA" in line for line in lines)
  run = reproduce_root / f"{figure}_quick" / "run"
  assert (run / "config.json").exists() and (run / "metrics.jsonl").exists()
  traj = trajectory.load(str(run))
  c = fig_cf.CONFIGS[name].get_config("quick")
  s = c.analysis.central_flow
  assert (c.data.n_train, tuple(c.model.widths)) == (200, (32,))
  assert set(cfp.needed_steps(s)) <= set(traj.kept_steps)
  assert traj.metrics["train_loss"].shape == (1, s.start + s.steps + 3)    # steps 0..end
  if name == "gd":      # unstable at initialization: GD catapults first
    loss_fn, batch = traj.loss_fn(), traj.batch()
    S0 = curvature.top_eigenpairs(loss_fn, traj.params(0, 0), batch, k=1,
                                  num_iters=60).eigenvalues[0]
    assert float(S0) > 2 / c.opt.learning_rate
  cache = list((run / "analysis" / "central_flow" / "member0").glob("*/cf_*.npz"))
  assert len(cache) == s.segments
  r = cfp.processes(traj)                          # read from the run directory's cache
  T, W = s.steps, s.window
  S = np.asarray(r["cf"].sharpness) / 2
  assert np.all(np.abs(S[25:] - 1) < (2e-3 if name == "gd" else 1e-2))    # pinned at 2
  assert np.asarray(r["gf"].sharpness)[-1] / 2 > 1.1     # the stable flow sharpens past it
  assert np.all(np.asarray(r["gf"].X) == 0) and np.all(np.asarray(r["gf"].num_active) == 0)
  assert np.all(np.asarray(r["cf"].num_active)[25:] >= 1)
  # predicted time-averaged loss against the real loss averaged over the config's window
  avg = fig_cf.window_average(r["real"]["loss"], T, W)
  ratio = np.asarray(r["cf"].predicted_loss)[W:T - W] / avg[W:T - W]
  assert 0.9 < np.median(ratio) < 1.1 and np.all((ratio > 0.4) & (ratio < 2.5))
  # the real midpoint (w_{t-1} + 2 w_t + w_{t+1}) / 4 is far closer to the central flow, and
  # what separates the real iterate from it lies mostly along the tracked directions V
  assert r["dist_mid_cf"][-1] < r["dist_mid_gf"][-1] / 5, (r["dist_mid_cf"], r["dist_mid_gf"])
  assert np.all(r["perp_real_cf"] <= r["dist_real_cf"] + 1e-12)
  if name != "gd":
    # the preconditioner: the central flow's effective learning rate is the real run's
    # time-average (the figure's claim: within 2%), the stable flow's drifts away
    elr = fig_cf.window_average(r["real"]["effective_lr"], T, W)[T - W]
    cf_err = abs(r["cf"].effective_lr[T - W] / elr - 1)
    gf_err = abs(r["gf"].effective_lr[T - W] / elr - 1)
    assert cf_err <= 0.02 and cf_err < gf_err / 3, (cf_err, gf_err)
    assert r["nu_err_cf"][-1] < r["nu_err_gf"][-1]


@pytest.mark.parametrize("name", ["gd", "rmsprop"])
def test_perp_to_tracked_matches_a_dense_eigendecomposition(problem, name):
  # reference: eigh of the dense P^-1/2 H P^-1/2, V = P^-1/2 U_top, residual of least squares
  loss_fn, params, batch = problem
  form = flow_forms.flow_form(FORMS[name])
  flat, unravel = ravel_pytree(params)
  rng = np.random.RandomState(4)
  nu = jnp.asarray(rng.uniform(0.5, 2.0, flat.size)) if name == "rmsprop" else jnp.zeros(())
  P = np.broadcast_to(np.asarray(form.p(nu), np.float64), flat.shape)
  H = np.asarray(jax.hessian(lambda x: loss_fn(unravel(x), batch))(flat))
  evals, evecs = np.linalg.eigh(H / np.sqrt(np.outer(P, P)))
  k = 2
  assert evals[-k] - evals[-k - 1] > 1e-3 * evals[-1]     # the top-k span is well defined
  V = (evecs[:, -k:] / np.sqrt(P)[:, None])                # [n, k] weight-space directions
  perp = lambda d: cfp.perp_to_tracked(loss_fn, params, batch, form, nu, k, 60, d)
  d = rng.randn(flat.size)
  out = d - V @ np.linalg.lstsq(V, d, rcond=None)[0]       # d's part orthogonal to span(V)
  np.testing.assert_allclose(perp(d), np.linalg.norm(out), rtol=1e-6)
  inside = V @ np.array([3.0, -1.0])                       # in the span: nothing is left
  assert perp(inside) < 1e-6 * np.linalg.norm(inside)
  np.testing.assert_allclose(perp(out), np.linalg.norm(out), rtol=1e-6)   # all of it is left


def test_bad_methods_are_refused_by_name(problem):
  loss_fn, params, batch = problem
  with pytest.raises(ValueError, match="method='rk4' is not allowed; allowed: euler, heun"):
    cf.central_flow(loss_fn, params, batch, cf.gd_form(0.5), 1, method="rk4")
  with pytest.raises(ValueError, match="eig_method='eigh' is not allowed"):
    cf.central_flow(loss_fn, params, batch, cf.gd_form(0.5), 1, eig_method="eigh")
  with pytest.raises(ValueError, match="steps=10 must be a multiple of segments=3"):
    cfp.settings(dict(steps=10, segments=3))
  with pytest.raises(ValueError, match="k=3, k_max=2 are not allowed"):
    cfp.settings(dict(k=3, k_max=2))
  with pytest.raises(ValueError, match="analysis.central_flow.method"):
    cfp.settings(dict(method="rk4"))


def test_a_killed_analysis_resumes_at_its_last_finished_segment(tmp_path, monkeypatch):
  # RMSProp from step 2, 4 segments; the central flow adds directions (k = 1 growing)
  traj = _run(tmp_path / "run", dict(name="rmsprop", learning_rate=0.01, b2=0.9), start=2,
              steps=8, segments=4, k=1, k_max=3, lanczos_iters=8)
  # both flows start from the state that the real run's step from `start` uses: nu after
  # start + 1 updates, whose P the engine's probe logs at step start + 1
  ref = cfp.processes(traj, lanczos_iters=8)           # (an override equal to the run's)
  for name in ("cf", "gf"):
    np.testing.assert_allclose(ref[name].effective_lr[0], ref["real"]["effective_lr"][1],
                               rtol=1e-12, err_msg=name)
  assert ref["k_cf"].max() > 1                     # directions were added (and are restored)
  (cache,) = (tmp_path / "run" / "analysis" / "central_flow" / "member0").iterdir()
  for p in cache.glob("*.npz"):
    p.unlink()
  saved, save = [], cfp._Cache.save

  def killed_after_three(self, name, arrays):
    if len(saved) == 3:
      raise KeyboardInterrupt                      # a kill while computing the 4th segment
    saved.append(name)
    save(self, name, arrays)

  monkeypatch.setattr(cfp._Cache, "save", killed_after_three)
  with pytest.raises(KeyboardInterrupt):
    cfp.processes(traj)
  assert saved == ["cf_000", "cf_001", "cf_002"]
  monkeypatch.setattr(cfp._Cache, "save", lambda self, name, arrays: (
      saved.append(name), save(self, name, arrays)))
  got = cfp.processes(trajectory.load(str(tmp_path / "run")))
  assert saved[3:] == ["cf_003"] + [f"gf_{i:03d}" for i in range(4)]    # only what was left
  for key in ("marks", "dist_mid_cf", "dist_mid_gf", "dist_real_cf", "nu_err_cf", "nu_err_gf",
              "perp_real_cf", "k_cf"):
    np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
  for name in ("cf", "gf"):
    for f, v in ref[name]._asdict().items():
      np.testing.assert_array_equal(getattr(got[name], f), v, err_msg=f"{name}.{f}")
  assert sorted(p.name for p in cache.glob("*.npz")) == sorted(
      [f"{n}_{i:03d}.npz" for n in ("cf", "gf") for i in range(4)])
  # other settings are computed apart, never from this cache
  other = cfp.processes(traj, substeps=2)
  assert len(list(cache.parent.iterdir())) == 2
  assert not np.array_equal(other["cf"].loss, ref["cf"].loss)
  # a directory whose key names another computation is refused
  key = json.loads((cache / "key.json").read_text())
  key["settings"]["substeps"] = 8
  (cache / "key.json").write_text(json.dumps(key))
  with pytest.raises(ValueError, match="holds another central-flow computation .*settings"):
    cfp.processes(traj)
  # settings whose steps the run did not keep are refused by name
  with pytest.raises(ValueError, match="did not keep steps"):
    cfp.processes(traj, steps=12)


def test_processes_add_directions_until_the_smallest_is_below_saturation(tmp_path):
  # GD from the edge of stability: the public code's rule (add one while the smallest tracked
  # is >= 1.5) ends at 4 directions here
  traj = _run(tmp_path / "run", dict(name="gd", learning_rate=0.5), start=30, steps=8,
              segments=4, lanczos_iters=8)
  run = lambda **kw: cfp.processes(traj, **kw)
  grown, fixed = run(k=2, k_max=6), run(k=4)      # grows 2 -> 3 -> 4
  np.testing.assert_array_equal(grown["k_cf"], 4)
  assert not np.any(grown["cf"].saturated)
  eigs = np.asarray(grown["cf"].eigenvalues)
  assert eigs.shape == (8, 6) and np.all(np.isnan(eigs[:, 4:])) and np.all(eigs[:, 3] < 1.5)
  assert np.all(np.asarray(grown["cf"].X)[:, 4:, :] == 0)
  # the same computation as tracking 4 from the start
  for f, v in fixed["cf"]._asdict().items():
    np.testing.assert_array_equal(getattr(grown["cf"], f)[..., :4, :4] if f == "X" else
                                  getattr(grown["cf"], f)[..., :4] if f == "eigenvalues" else
                                  getattr(grown["cf"], f), v, err_msg=f)
  for key in ("dist_real_cf", "dist_mid_cf", "perp_real_cf"):
    np.testing.assert_array_equal(grown[key], fixed[key], err_msg=key)
  # capped: k_max is kept, and the log says it was too few
  capped = run(k=2, k_max=3)                       # (k = 2, 3 compiled above)
  np.testing.assert_array_equal(capped["k_cf"], 3)
  assert np.all(capped["cf"].saturated)
