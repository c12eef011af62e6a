"""Matplotlib helpers shared by run figures, paper reproductions and notebooks."""
import os

import matplotlib.pyplot as plt  # headless machines fall back to the Agg backend by themselves
import numpy as np

from analysis.trajectory import Trajectory


def save(fig, path: str, dpi: int = 120) -> str:
  """Lays out, writes `path` and closes the figure; returns the path."""
  fig.tight_layout()
  fig.savefig(path, dpi=dpi)
  plt.close(fig)
  return path


def member_colors(n: int):
  """n distinguishable colors, ordered (a swept value maps to a position on the colormap)."""
  cmap = plt.get_cmap("viridis")
  return [cmap(x) for x in np.linspace(0.0, 0.85, max(n, 1))]


def plot_finite(ax, x, y, *args, **kw):
  """ax.plot of the points where y is finite (a stopped member's NaN tail left out)."""
  ok = np.isfinite(y)
  return ax.plot(np.asarray(x)[ok], np.asarray(y)[ok], *args, **kw)


def plot_metric(ax, traj: Trajectory, name: str, log_y: bool = False, title: str = "",
                style: str = "-", label: bool = True):
  """One line per sweep member; a diverged member ends with an x at its divergence step."""
  values = traj.metrics[name]
  for i, color in enumerate(member_colors(traj.n_members)):
    y = values[i]
    ok = np.isfinite(y)
    ax.plot(traj.steps[ok], y[ok], style, color=color, lw=1.3,
            label=traj.label(i) if label else None)
    if traj.diverged[i] and ok.any():
      last = np.flatnonzero(ok)[-1]
      ax.plot(traj.steps[last], y[last], "x", color=color, ms=8, mew=2)
  if log_y:
    ax.set_yscale("log")
  ax.set_xlabel("step")
  ax.set_title(title or name)
  ax.grid(alpha=0.3)
  return ax


def loss_and_accuracy(ax_l, ax_a, traj: Trajectory) -> None:
  """Loss (log scale) on ax_l and accuracy on ax_a, train solid and test dashed, every member."""
  title_l, title_a = "loss (train solid, test dashed)", "accuracy (train solid, test dashed)"
  plot_metric(ax_l, traj, "train_loss", log_y=True, title=title_l)
  plot_metric(ax_a, traj, "train_acc", title=title_a)
  if "test_loss" in traj.metrics:
    plot_metric(ax_l, traj, "test_loss", log_y=True, style="--", label=False, title=title_l)
    plot_metric(ax_a, traj, "test_acc", style="--", label=False, title=title_a)
  ax_a.set_ylim(-0.02, 1.02)
  ax_l.legend(fontsize=8, loc="best")


def training_curves(traj: Trajectory, out_dir: str, filename: str = "training_curves.png"):
  """Loss (log scale) and accuracy, train solid and test dashed, for every member."""
  os.makedirs(out_dir, exist_ok=True)
  fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(11, 4.2))
  loss_and_accuracy(ax_l, ax_a, traj)
  cfg = traj.config
  fig.suptitle(f"{cfg['model']['name']} on {cfg['data']['name']}, {cfg['opt']['name']}, "
               f"{cfg['loss']['name']} loss", fontsize=11)
  paths = [save(fig, os.path.join(out_dir, filename))]
  extra = [k for k in traj.metrics if k not in
           ("train_loss", "train_acc", "test_loss", "test_acc") and traj.metrics[k].ndim == 2]
  if extra:
    paths.append(probe_curves(traj, extra, out_dir))
  return paths


def probe_curves(traj: Trajectory, names, out_dir: str, filename: str = "probes.png") -> str:
  """One panel per scalar probe metric."""
  cols = min(3, len(names))
  rows = -(-len(names) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
  for ax, name in zip(axes.ravel(), names):
    positive = np.nanmin(traj.metrics[name]) > 0 if np.isfinite(traj.metrics[name]).any() else 0
    plot_metric(ax, traj, name, log_y=bool(positive))
  for ax in axes.ravel()[len(names):]:
    ax.axis("off")
  axes.ravel()[0].legend(fontsize=7)
  return save(fig, os.path.join(out_dir, filename), dpi=110)
