"""GD, its central flow and its stable flow side by side (Cohen et al. 2025): the predicted
time-averaged loss, the sharpness held at 2/eta, and distances to GD's midpoint iterates."""
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from jax.flatten_util import ravel_pytree

from analysis import central_flow as cf
from dynamics import data, losses, models
from experiments.configs import central_flow_gd
from experiments.figures import claim, save

WINDOW = 10          # GD's loss is averaged over this many steps to compare with the prediction
SEGMENTS = 8


def _runs(quick):
  del quick
  return {}           # the three processes run inside _draw (they share one initialization)


def processes(c) -> dict:
  """GD from init for c.start steps, then GD, central flow and stable flow for c.steps."""
  jax.config.update("jax_enable_x64", True)
  ds = data.load(dict(name="digits", n_train=c.n_train, n_test=0, classes=[0, 1, 2, 3]))
  model = models.build(dict(name="mlp", widths=tuple(c.widths), activation=c.activation),
                       in_dim=ds.in_dim, out_dim=ds.out_dim)
  params = model.init(jax.random.PRNGKey(c.seed), dtype=jnp.float64)
  batch = {"x": jnp.asarray(ds.x_train, jnp.float64), "y": jnp.asarray(ds.y_train)}
  loss_fn = lambda p, b: jnp.mean(losses.mse(model.apply(p, b["x"]), b["y"]))
  eta = c.learning_rate

  def gd(p, n):
    def body(p, _):
      loss, g = jax.value_and_grad(loss_fn)(p, batch)
      return jax.tree.map(lambda a, b: a - eta * b, p, g), (loss, ravel_pytree(p)[0])
    return jax.lax.scan(body, p, None, length=n)

  p0, _ = jax.jit(lambda p: gd(p, c.start))(params)
  _, (gd_loss, gd_w) = jax.jit(lambda p: gd(p, c.steps + 1))(p0)
  # the flows run in SEGMENTS equal segments, so that their parameters (and the distances to
  # GD's midpoint iterates) are seen at each segment's end; each segment restarts the
  # eigenvector tracking with a cold Lanczos solve
  seg = c.steps // SEGMENTS
  run = jax.jit(lambda p, thr: cf.gd_central_flow(loss_fn, p, batch, eta, seg, k=c.k,
                                                    substeps=c.substeps, threshold=thr,
                                                    lanczos_iters=c.lanczos_iters),
                static_argnums=1)
  out = {"cf": [], "gf": []}
  dist = {"cf": [], "gf": []}
  mid = lambda t: (gd_w[t - 1] + 2 * gd_w[t] + gd_w[t + 1]) / 4
  for name, thr in (("cf", cf.THRESHOLD), ("gf", float("inf"))):
    p = p0
    for i in range(SEGMENTS):
      p, logs = run(p, thr)
      out[name].append(jax.device_get(logs))
      dist[name].append(float(jnp.linalg.norm(mid(seg * (i + 1)) - ravel_pytree(p)[0])))
  cat = lambda logs: jax.tree.map(lambda *a: np.concatenate(a), *logs)
  return dict(eta=eta, gd_loss=np.asarray(gd_loss), cf=cat(out["cf"]), gf=cat(out["gf"]),
              marks=seg * np.arange(1, SEGMENTS + 1), dist_cf=np.asarray(dist["cf"]),
              dist_gf=np.asarray(dist["gf"]), n_params=int(ravel_pytree(params)[0].size))


def _draw(trajs, out, quick):
  del trajs
  c = central_flow_gd.get_config("quick" if quick else "")
  r = processes(c)
  eta, T = r["eta"], len(r["cf"].loss)
  steps = np.arange(T)
  avg = np.convolve(r["gd_loss"], np.ones(WINDOW) / WINDOW, mode="same")[:T]
  fig, ax = plt.subplots(1, 3, figsize=(17, 4.6))
  ax[0].semilogy(steps, r["gd_loss"][:T], color="0.6", lw=0.8, label="GD")
  ok = slice(WINDOW // 2, T - WINDOW // 2)      # where the window lies inside the run
  ax[0].semilogy(steps[ok], avg[ok], "k-", lw=1.2, label=f"GD, {WINDOW}-step average")
  ax[0].semilogy(steps, r["cf"].predicted_loss, "C3--", lw=1.5,
                 label="central flow: predicted time-averaged loss")
  ax[0].semilogy(steps, r["gf"].loss, "C0:", lw=1.2, label="stable (gradient) flow")
  ax[1].plot(steps, r["cf"].sharpness, "C3-", label="central flow")
  ax[1].plot(steps, r["gf"].sharpness, "C0:", label="stable flow")
  ax[1].axhline(2 / eta, color="k", ls="--", lw=1, label=f"2/eta = {2 / eta:g}")
  ax[2].plot(r["marks"], r["dist_cf"], "C3o-", label="|GD midpoint - central flow|")
  ax[2].plot(r["marks"], r["dist_gf"], "C0s-", label="|GD midpoint - stable flow|")
  ax[0].set(title="loss", xlabel=f"step (after {c.start} GD steps)")
  ax[1].set(title="sharpness (top tracked eigenvalue)", xlabel="step")
  ax[2].set(title="distance in weight space", xlabel="step")
  for a in ax:
    a.grid(alpha=0.3)
    a.legend(fontsize=8)
  fig.suptitle(f"GD and its central flow: fc-{c.activation} "
               f"{'x'.join(map(str, c.widths))}, MSE, {c.n_train} digits (0-3), eta={eta:g}, "
               f"{r['n_params']:,} parameters, float64 ({'quick' if quick else 'full'})",
               fontsize=11)
  path = save(fig, out, "central_flow_gd")
  return dict(claims=_claims(r, avg, c), figures=[path])


def _claims(r, avg, c):
  eta, T = r["eta"], len(r["cf"].loss)
  lo, hi = WINDOW, T - WINDOW
  ratio = r["cf"].predicted_loss[lo:hi] / avg[lo:hi]
  S = r["cf"].sharpness * eta / 2
  reached = np.flatnonzero(np.abs(S - 1) < 1e-3)
  held = reached.size and np.all(np.abs(S[reached[0]:] - 1) < 1e-2)
  return [
      claim("central flow's predicted time-averaged loss over GD's "
            f"{WINDOW}-step average loss (median over the run)", float(np.median(ratio)),
            "in [0.9, 1.1] (within 10%)", 0.9 <= np.median(ratio) <= 1.1),
      claim("at the end: |GD midpoint - stable flow| / |GD midpoint - central flow|",
            float(r["dist_gf"][-1] / r["dist_cf"][-1]), ">= 5",
            r["dist_gf"][-1] >= 5 * r["dist_cf"][-1]),
      claim("central flow: S*eta/2 from its first arrival at 2/eta to the end (max deviation)",
            float(np.max(np.abs(S[reached[0]:] - 1))) if reached.size else None,
            "<= 0.01 (held at 2/eta)", bool(held)),
      claim("stable flow: S*eta/2 at the end", float(r["gf"].sharpness[-1] * eta / 2),
            "> 1 (sharpens past 2/eta)", r["gf"].sharpness[-1] * eta / 2 > 1),
  ]


FIGURES = {
    "central_flow_gd": ("GD beside its central flow and stable flow (Cohen et al. 2025): "
                        "predicted time-averaged loss, sharpness at 2/eta, distances",
                        _runs, _draw),
}
