"""Figure definitions for experiments/reproduce.py, one module per phenomenon."""
import os


def claim(name: str, measured, expected: str, holds: bool, **extra) -> dict:
  """One line of a report: what was measured, what theory or the paper expects, and the verdict."""
  return dict(claim=name, measured=measured, expected=expected, holds=bool(holds), **extra)


def finite_claim(label: str, traj, i: int = 0) -> dict:
  """'LABEL: training stays finite' for member i of a Trajectories: fails with the step at which
  it diverged (its later numbers describe no training, so the figure's other claims fail too)."""
  bad = bool(traj.diverged[i])
  return claim(f"{label}: training stays finite",
               f"diverged at step {traj.stop_step[i]}" if bad else "finite", "no divergence",
               not bad)


def setup_label(cfg: dict, quick: bool) -> str:
  """'fc-tanh 200x200, mse, digits (full)' for a run's resolved config (a dict)."""
  m = cfg["model"]
  return (f"fc-{m['activation']} {'x'.join(map(str, m['widths']))}, {cfg['loss']['name']}, "
          f"{cfg['data']['name']} ({'quick' if quick else 'full'})")


def variant(quick: bool, *parts: str) -> str:
  """A config file's variant: the non-empty parts joined by '_', 'quick' in front when quick
  (e.g. (True, 'deep', 'mse') -> 'quick_deep_mse', (False, '') -> '')."""
  return "_".join(p for p in ("quick" if quick else "", *parts) if p)


def variant_runs(config, **variants: str):
  """A figure's runs(quick): {label: the config file's variant}, with 'quick' joined in front
  when quick (e.g. gd='', flow='flow' -> 'quick' and 'quick_flow')."""
  return lambda quick: {label: config.get_config(variant(quick, v))
                        for label, v in variants.items()}


def tidy(axes, fontsize: int = 8, **settings) -> None:
  """ax.set(**settings) (e.g. xlabel='step'), a light grid and a legend on every axis."""
  for ax in axes:
    ax.set(**settings)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=fontsize)


def save(fig, out: str, name: str, dpi: int = 120) -> str:
  """Lays out, writes OUT/NAME.png and closes the figure (analysis.plots.save); its path."""
  from analysis import plots
  return plots.save(fig, os.path.join(out, f"{name}.png"), dpi)
