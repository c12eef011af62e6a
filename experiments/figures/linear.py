"""Deep linear networks and matrix factorization: Saxe's exact mode dynamics and learning time
against depth, incremental learning in matrix sensing (Jin et al. 2023), over-parameterization
slowing GD (Xiong et al. 2023), and depth's bias to low rank in matrix completion (Arora, Cohen,
Hu, Luo 2019). The closed forms are analysis.linear_theory's; the measurements
analysis.factorization's and the in-loop probe mode_strengths."""
import matplotlib.pyplot as plt
import numpy as np

from analysis import factorization as fz
from analysis import linear_theory as lt
from experiments.configs import matrix_completion, matrix_sensing, saxe
from experiments.figures import claim, finite_claim, save, tidy, variant, variant_runs

SAXE_TOL = 0.02          # max |u_i - closed form| / s_i for the decoupled balanced start
TIME_TOL = 0.05          # learning time (to s_i / 2) against the formula
SLOPE_TOL = 0.15         # appearance slope against the linearized dynamics
OVER_SLOPE = (-2.3, -1.7)


# ---- saxe --------------------------------------------------------------------------------------

def _saxe_runs(quick):
  runs = dict(depth2="", depth3="depth3", random="random")
  runs.update({f"{init}{n}": f"{init}{n}" for init in ("orthogonal", "gaussian")
               for n in (saxe.QUICK_DEPTHS if quick else saxe.DEPTHS)})
  return variant_runs(saxe, **runs)(quick)


def _modes(t):
  """(time [T], s [k], measured u [T, k], depth) of member 0 from the in-loop probe."""
  s = fz.teacher_svd(t)[1]
  u = t.metrics["mode_strengths/strengths"][0]
  return t.steps * t.config["opt"]["learning_rate"], s[:u.shape[1]], u, len(
      t.config["model"]["widths"]) + 1


def _closed_form(s, u0, time, depth):
  return lt.saxe_curve(s, u0, time) if depth == 2 else lt.deep_mode_curve(s, u0, time, depth)


def _learning_step(t, frac=saxe.DEPTH_CRITERION):
  """The step at which member 0's train loss first falls to frac x its start (nan: never)."""
  loss = t.metrics["train_loss"][0]
  ok = np.isfinite(loss)
  return float(lt.crossing_steps(t.steps[ok], 1.0 / loss[ok, None], 1.0 / (frac * loss[0]))[0])


def _saxe_draw(trajs, out, quick):
  fig, ax = plt.subplots(1, 4, figsize=(22, 4.6))
  claims = [finite_claim(label, t) for label, t in trajs.items()]
  devs = {}
  for col, label in enumerate(("depth2", "depth3")):
    time, s, u, depth = _modes(trajs[label])
    th = _closed_form(s, u[0], time, depth)
    dev = devs[label] = np.abs(u - th).max(axis=0) / s
    for i in range(len(s)):
      ax[col].plot(time, u[:, i], f"C{i}-", lw=2, alpha=0.6, label=f"s = {s[i]:g}: GD")
      ax[col].plot(time, th[:, i], "k--", lw=0.9)
    ax[col].set_title(f"depth {depth}, decoupled balanced start u0 = {u[0, 0]:.1e}\n(dashed: "
                      "closed form)", fontsize=10)
    ax[col].set(xlabel="t = step x lr", ylabel="mode strength u_i")
    claims.append(claim(f"depth {depth}, decoupled balanced init: max |u_i(t) - closed form| / "
                        "s_i over the run", dev.round(5).tolist(), f"each < {SAXE_TOL:g}",
                        np.all(dev < SAXE_TOL), coupling=float(np.nanmax(
                            trajs[label].metrics["mode_strengths/coupling"][0]))))
    lr = trajs[label].config["opt"]["learning_rate"]
    meas = lt.crossing_steps(trajs[label].steps, np.maximum(u, 1e-300), s / 2) * lr
    pred = lt.deep_learning_time(s, u[0], s / 2, depth)
    rel = meas / pred - 1
    claims.append(claim(f"depth {depth}: learning time to u_i = s_i / 2 against the formula "
                        "(relative difference)", rel.round(5).tolist(), f"each within "
                        f"{TIME_TOL:.0%}", np.all(np.abs(rel) < TIME_TOL),
                        measured_times=meas.round(4).tolist(), formula=pred.round(4).tolist()))
  # a random small Gaussian start: the modes are coupled, the closed form no longer exact
  time, s, u, depth = _modes(trajs["random"])
  th = _closed_form(s, np.abs(u[0]), time, depth)
  dev = np.abs(u - th).max(axis=0) / s
  for i in range(len(s)):
    ax[2].plot(time, u[:, i], f"C{i}-", lw=2, alpha=0.6, label=f"s = {s[i]:g}")
    ax[2].plot(time, th[:, i], "k--", lw=0.9)
  ax[2].set_title("depth 2, random Gaussian start (scale 0.1)\n(dashed: closed form from "
                  "|u_i(0)|)", fontsize=10)
  ax[2].set(xlabel="t = step x lr")
  dev2 = devs["depth2"]
  claims.append(claim("depth 2, random small Gaussian init (stated): max |u_i - closed form "
                      "from |u_i(0)|| / s_i; the coupled start strays further than the "
                      "decoupled one", dev.round(4).tolist(),
                      "larger than the decoupled start's for every mode", np.all(dev > dev2),
                      decoupled=dev2.round(5).tolist(), initial_strengths=u[0].tolist()))
  # learning time against depth
  depths = saxe.QUICK_DEPTHS if quick else saxe.DEPTHS
  notes = []
  for init, mark in (("orthogonal", "o-"), ("gaussian", "s--")):
    steps = np.array([_learning_step(trajs[f"{init}{n}"]) for n in depths])
    ax[3].plot(depths, np.where(np.isfinite(steps), steps, np.nan), mark, label=init)
    reached = steps[np.isfinite(steps)]
    base = steps[list(depths).index(2)]
    horizon = trajs[f"{init}{depths[-1]}"].config["train"]["steps"]
    # not reached within the horizon: the ratio is at least horizon / base (stated as such)
    ratio = float(steps[-1] / base) if np.isfinite(steps[-1]) else float(horizon / base)
    shown = ratio if np.isfinite(steps[-1]) else f"> {ratio:.1f} (not reached in {horizon} steps)"
    notes.append(f"{init} init, steps to 10% of the initial loss at depths {list(depths)}: "
                 f"{[round(float(x), 1) for x in steps]} (nan: not within {horizon} steps)")
    if init == "orthogonal":
      claims.append(claim(f"random orthogonal init, lr 0.05/N: learning time at depth "
                          f"{depths[-1]} / at depth 2 (Saxe: depth independent)", shown,
                          "<= 2.5", ratio <= 2.5 and reached.size == steps.size,
                          steps=[None if not np.isfinite(x) else round(float(x), 1)
                                 for x in steps], depths=list(depths)))
    else:
      claims.append(claim(f"scaled Gaussian init N(0, 1/n), lr 0.05/N: learning time at depth "
                          f"{depths[-1]} / at depth 2 (grows with depth)", shown, ">= 3",
                          ratio >= 3, steps=[None if not np.isfinite(x) else float(x)
                                             for x in steps], depths=list(depths)))
  ax[3].set_title("learning time: steps until the loss is 10% of its start\n(lr = 0.05 / "
                  "depth, full-rank teacher)", fontsize=10)
  ax[3].set(xlabel="depth N", ylabel="steps", yscale="log", xscale="log")
  tidy(ax, 7)
  fig.suptitle(f"Deep linear networks on a whitened linear teacher (Saxe et al. 2014), GD, float64 "
               f"({'quick' if quick else 'full'})", fontsize=11)
  return dict(claims=claims, figures=[save(fig, out, "saxe")], notes=notes)


# ---- incremental learning ---------------------------------------------------------------------

def _sensing_sigma(t, r):
  b = t.batch()
  m_hat = lt.sensing_operator(np.asarray(b["x"]), np.asarray(b["y"]))
  return np.linalg.eigvalsh(m_hat)[::-1][:r]


def _incremental_draw(trajs, out, quick):
  t = trajs["sensing"]
  lr, r = t.config["opt"]["learning_rate"], t.config["data"]["rank"]
  claims = [finite_claim(f"sensing, {t.label(i)}", t, i) for i in range(t.n_members)]
  g = fz.gram_eigenvalues(t)
  sigma = _sensing_sigma(t, r)
  c = 0.1 * sigma                          # the appearance threshold, small against sigma_i
  alphas = np.asarray(t.coords["model.init_scale"])
  cross = np.array([lt.crossing_steps(g["steps"], np.maximum(g["eigenvalues"][:, i, :r], 1e-300),
                                      c) for i in range(len(alphas))])      # [alpha, r]
  fig, ax = plt.subplots(1, 2, figsize=(13, 4.6))
  for i, a in enumerate(alphas):
    for j in range(r + 1):
      ax[0].semilogy(g["steps"], g["eigenvalues"][:, i, j], f"C{i}-", lw=1.2,
                     label=f"alpha = {a:g}" if j == 0 else None)
  for j in range(r):
    ax[0].axhline(t.dataset().info["spectrum"][j], color="k", ls=":", lw=0.7)
  ax[0].set(title="eigenvalues of U U^T (top r + 1), dotted: M*'s", xlabel="step",
            ylim=(1e-6, 5))
  x = np.log(1 / alphas)
  slope = np.array([np.polyfit(x, cross[:, j], 1)[0] for j in range(r)])
  pred = lt.appearance_slope(sigma, lr, discrete=True)
  for j in range(r):
    ax[1].plot(x, cross[:, j], f"C{j}o", label=f"eigenvalue {j + 1} (sigma = {sigma[j]:.2f}): "
               f"slope {slope[j]:.2f}, predicted {pred[j]:.2f}")
    b = np.mean(cross[:, j] - pred[j] * x)
    ax[1].plot(x, b + pred[j] * x, f"C{j}--", lw=0.8)
  ax[1].set(title="appearance step (eigenvalue reaches sigma_i / 10) vs ln(1/alpha)",
            xlabel="ln(1/alpha)", ylabel="step")
  tidy(ax, 7)
  rel = slope / pred - 1
  order = bool(np.all(np.diff(cross, axis=1) > 0))
  claims += [
      claim("appearance step vs ln(1/alpha): fitted slope against the linearized dynamics' "
            "1 / ln(1 + 2 lr sigma_i) (relative difference)", rel.round(4).tolist(),
            f"each within {SLOPE_TOL:.0%}", np.all(np.abs(rel) < SLOPE_TOL),
            slope=slope.round(3).tolist(), predicted=pred.round(3).tolist(),
            sigma_hat=sigma.round(4).tolist()),
      claim("staircase: the eigenvalues appear one at a time, in order of sigma_i, at every alpha",
            cross.round(1).tolist(), "increasing along each row", order),
  ]
  end = g["eigenvalues"][-1, :, :r]
  spec = np.asarray(t.dataset().info["spectrum"])
  err = float(np.abs(end / spec - 1).max())
  claims.append(claim("the top r eigenvalues of U U^T at the end against M*'s (relative)", err,
                      "<= 0.01", err <= 0.01))
  fig.suptitle(f"Incremental learning in symmetric matrix sensing (Jin et al. 2023): d = "
               f"{t.config['data']['dimension']}, rank {r}, m = {t.config['data']['n_train']}, "
               f"k = {t.config['model']['width']}, GD lr {lr:g} "
               f"({'quick' if quick else 'full'})", fontsize=11)
  return dict(claims=claims, figures=[save(fig, out, "incremental_learning")], notes=[])


# ---- over-parameterization --------------------------------------------------------------------

def _over_draw(trajs, out, quick):
  claims = [finite_claim(label, t) for label, t in trajs.items()]
  fig, ax = plt.subplots(1, 1, figsize=(7, 4.8))
  res = {k: fz.recovery(t) for k, t in trajs.items()}
  for (label, r), color in zip(res.items(), ("C0", "C3")):
    t = trajs[label]
    ok = r["steps"] > 0
    ax.loglog(r["steps"][ok], np.maximum(r["squared_error"][ok, 0], 1e-32), f"{color}o-", ms=3,
              label=f"k = {t.config['model']['width']} ({label})")
  t, r = trajs["over"], res["over"]
  lr, k = t.config["opt"]["learning_rate"], t.config["model"]["width"]
  rank, d = t.config["data"]["rank"], t.config["data"]["dimension"]
  steps, err = r["steps"], r["squared_error"][:, 0]
  late = steps >= steps[-1] / 10
  slope = lt.loglog_slope(steps[late], err[late], tail=1.0)
  asym = lt.overparameterized_error(steps[late], lr, k, rank, d)
  ax.loglog(steps[late], asym, "k--", lw=0.9, label="q / (16 (lr T)^2)")
  # the population law from the over-parameterized block's size at the kept step nearest T/100
  t0 = int(steps[np.argmin(np.abs(steps - steps[-1] / 100))])
  rho0 = lt.slow_singular_values(np.asarray(t.params(t0)["U"][0], np.float64),
                                 np.asarray(t.dataset().info["V"]))
  after = steps >= t0
  pred = lt.overparameterized_error(steps[after] - t0, lr, k, rank, d, rho0=rho0)
  ax.loglog(steps[after], pred, "k:", lw=1.2, label=f"population law from rho(step {t0})")
  claims.append(claim(f"k = {k} > r = {rank}: fitted slope of log error vs log step over the "
                      "last decade", slope, f"in [{OVER_SLOPE[0]}, {OVER_SLOPE[1]}]",
                      OVER_SLOPE[0] <= slope <= OVER_SLOPE[1],
                      end_error=float(err[-1]), asymptote=float(asym[-1]),
                      population_law_end=float(pred[-1]), rho0=rho0.tolist()))
  # k = r: geometric, from the logged train loss (every 2 steps) before float64's floor
  te = trajs["exact"]
  loss = te.metrics["train_loss"][0]
  win = (loss < 1e-4) & (loss > 1e-24)
  rate = lt.geometric_rate(te.steps[win], loss[win], tail=1.0)
  theory = lt.exact_rate(np.asarray(te.dataset().info["spectrum"]),
                         te.config["opt"]["learning_rate"], te.config["data"]["dimension"])
  e_end = float(res["exact"]["squared_error"][-1, 0])
  claims += [
      claim("k = r: per-step factor of the train loss between 1e-4 and 1e-24 (geometric "
            "decay) against the population rate", rate, f"< 1 and within 25% of "
            f"{theory:.3f}", rate < 1 and abs(rate / theory - 1) < 0.25,
            points=int(win.sum())),
      claim("k = r reaches ||U U^T - M*||_F^2 < 1e-20 while k > r is still above 1e-8",
            dict(exact=e_end, over=float(err[-1])), "exact < 1e-20 < 1e-8 < over",
            e_end < 1e-20 and err[-1] > 1e-8),
  ]
  tidy([ax], title=f"||U U^T - M*||_F^2, d = {d}, r = {rank}, GD lr {lr:g} (Xiong et al. 2023)",
       xlabel="step")
  return dict(claims=claims, figures=[save(fig, out, "overparameterization")], notes=[])


# ---- depth and low rank -----------------------------------------------------------------------

def _completion_grid(quick):
  return ((matrix_completion.QUICK_DEPTHS, matrix_completion.QUICK_OBSERVED) if quick else
          (matrix_completion.DEPTHS, matrix_completion.OBSERVED))


def _completion_runs(quick):
  depths, observed = _completion_grid(quick)
  return {f"depth{n}_obs{m}": matrix_completion.get_config(variant(quick, f"depth{n}_obs{m}"))
          for n in depths for m in observed}


def _completion_draw(trajs, out, quick):
  depths, observed = _completion_grid(quick)
  claims = [finite_claim(label, t) for label, t in trajs.items()]
  end = {label: fz.recovery(t, [t.kept_steps[-1]]) for label, t in trajs.items()}
  err, rank = ({n: np.array([end[f"depth{n}_obs{m}"][key][0, 0] for m in observed])
                for n in depths} for key in ("unobserved_error", "effective_rank"))
  train = {n: [float(trajs[f"depth{n}_obs{m}"].metrics["train_loss"][0, -1]) for m in observed]
           for n in depths}
  fig, ax = plt.subplots(1, 2, figsize=(13, 4.6))
  for n in depths:
    ax[0].plot(observed, err[n], "o-", label=f"depth {n}")
    ax[1].plot(observed, rank[n], "o-", label=f"depth {n}")
  tidy([ax[0]], title="relative error on the unobserved entries (end)", xlabel="observed entries")
  tidy([ax[1]], title="effective rank of W (end; M* has rank 2)", xlabel="observed entries")
  m0 = observed[0]
  claims.append(claim(f"{m0} observed entries: depth 3 has lower test error and lower effective "
                      "rank than depth 2 (Arora et al. 2019)",
                      dict(test_error={f"depth{n}": float(err[n][0]) for n in (2, 3)},
                           effective_rank={f"depth{n}": float(rank[n][0]) for n in (2, 3)}),
                      "depth 3 < depth 2 in both", err[3][0] < err[2][0] and
                      rank[3][0] < rank[2][0], error_gap=float(err[2][0] - err[3][0]),
                      rank_gap=float(rank[2][0] - rank[3][0])))
  notes = [f"depth {n}: test error {err[n].round(3).tolist()}, effective rank "
           f"{rank[n].round(2).tolist()}, final train loss {[f'{x:.1e}' for x in train[n]]} at "
           f"{list(observed)} observed entries" for n in depths]
  c = next(iter(trajs.values())).config
  fig.suptitle(f"Matrix completion, {c['data']['rows']}x{c['data']['cols']} of rank "
               f"{c['data']['rank']}, deep factorization (width {c['model']['width']}, init "
               f"{c['model']['init_scale']:g}), GD lr {c['opt']['learning_rate']:g} "
               f"({'quick' if quick else 'full'})", fontsize=11)
  return dict(claims=claims, figures=[save(fig, out, "depth_low_rank")], notes=notes)


FIGURES = {
    "saxe": ("deep linear networks from a decoupled balanced start follow Saxe's closed-form "
             "mode curves; learning time against depth, orthogonal vs Gaussian init (Saxe, "
             "McClelland, Ganguli 2014)", _saxe_runs, _saxe_draw),
    "incremental_learning": ("symmetric matrix sensing from small init: the eigenvalues of U U^T "
                             "appear one at a time, each at a step ~ ln(1/alpha) (Jin et al. "
                             "2023)", variant_runs(matrix_sensing, sensing=""),
                             _incremental_draw),
    "overparameterization": ("matrix sensing: width k = r converges geometrically, k > r like "
                             "T^-2 (Xiong et al. 2023)",
                             variant_runs(matrix_sensing, exact="exact", over="over"), _over_draw),
    "depth_low_rank": ("matrix completion by deep matrix factorization: depth lowers the "
                       "effective rank and the error on unobserved entries (Arora, Cohen, Hu, "
                       "Luo 2019)", _completion_runs, _completion_draw),
}
