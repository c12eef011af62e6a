r"""Reproduce a paper figure with one command: run (or reuse) its runs, draw it, write a report.

    python -m experiments.reproduce --figure=eos_gd            # full settings (GPU minutes)
    python -m experiments.reproduce --figure=eos_gd --quick    # reduced settings (CPU minutes)
    python -m experiments.reproduce --all --quick
    python -m experiments.reproduce --figure=grokking --steps=15000   # another horizon
    python -m experiments.reproduce --list

Each figure lands in ROOT/NAME/: one run directory per config (re-running reuses and resumes
them), NAME.png with the theory's prediction drawn beside the measurement, and report.json with,
for every claim, the measured number, the expected number and whether it holds.
"""
import contextlib
import json
import logging as std_logging
import os
import sys
import time
from typing import Callable, NamedTuple, Optional

from absl import app, flags, logging

from dynamics import experiment, runs
from experiments import cli, results

README = os.path.join(os.path.dirname(results.DOCS), "README.md")


class Figure(NamedTuple):
  """A reproducible figure.

  Attributes:
    description: what it shows and which paper it reproduces.
    runs: fn(quick) -> {label: config}; each config is run in ROOT/NAME/label.
    draw: fn(trajectories {label: Trajectory}, out_dir, quick) -> report dict with 'claims'.
  """
  description: str
  runs: Callable
  draw: Callable


def _registry() -> dict[str, Figure]:
  from experiments.figures import (central_flow, eos, eos_adam, eos_sgd, grokking,
                                   grokking_sweeps, hessian_spectrum, linear, lottery,
                                   neural_collapse, relu, softmax_collapse, tensor)
  specs = {}
  for module in (eos, eos_adam, eos_sgd, hessian_spectrum, grokking, grokking_sweeps,
                 softmax_collapse, lottery, central_flow, neural_collapse, linear, relu, tensor):
    specs.update(module.FIGURES)
  return {name: Figure(*spec) for name, spec in specs.items()}


def reproduce(name: str, root: str, quick: bool = False, log: Callable = print,
              steps: Optional[int] = None, stop: Optional[Callable[[], bool]] = None) -> dict:
  """Runs (or resumes) the figure's runs, draws it and writes report.json; returns the report.

  steps: if given, every run's train.steps is set to it (a shorter or longer horizon than the
  figure's own); the figure then lands in ROOT/NAME[_quick]_stepsN and its claims are judged on
  what ran. stop: polled between chunks of training (experiment.Experiment.run).
  """
  from analysis import trajectory
  figures = _registry()
  if name not in figures:
    raise ValueError(f"--figure={name!r} is not allowed; allowed: {', '.join(sorted(figures))}")
  fig = figures[name]
  configs = _configs(name, fig, quick, steps)
  out = run_dir(name, root, quick, steps=steps)
  os.makedirs(out, exist_ok=True)
  t0 = time.time()
  trajs, settings = {}, {}
  for i, (label, cfg) in enumerate(configs.items()):
    exp = experiment.Experiment.from_config(cfg)
    settings[label] = exp.summary()
    log(f"[{name}] run {i + 1}/{len(configs)} '{label}': {settings[label]}")
    trajs[label] = trajectory.load(exp.run(os.path.join(out, label), log=log, stop=stop))
  log(f"[{name}] analysis and drawing ({time.time() - t0:.0f} s so far)")
  t_draw = time.time()
  with _analysis_progress(lambda msg: log(f"[{name}] {msg}")):
    report = fig.draw(trajs, out, quick)
  report.update(figure=name, quick=quick, steps=steps, description=fig.description,
                **_seconds(out, configs, t0, t_draw), settings=settings,
                device=_device(), date=time.strftime("%Y-%m-%d"),
                git_commit=runs.git_commit(),
                all_hold=all(c["holds"] for c in report["claims"]))
  runs.write_json_atomic(os.path.join(out, "report.json"), report)
  for c in report["claims"]:
    log(f"[{name}] {'HOLDS ' if c['holds'] else 'FAILS '} {c['claim']}: measured "
        f"{results.fmt(c['measured'])}, expected {c['expected']}")
  for note in report.get("notes", []):     # context that is not a pass/fail claim
    log(f"[{name}] note: {note}")
  log(f"[{name}] figure and report in {out}")
  return report


@contextlib.contextmanager
def _analysis_progress(log: Callable):
  """The analysis modules' progress messages (Python's logging under 'analysis', level INFO)
  passed to `log` while a figure draws."""
  class Forward(std_logging.Handler):
    def emit(self, record):
      log(record.getMessage())

  logger, handler = std_logging.getLogger("analysis"), Forward(std_logging.INFO)
  level, propagate = logger.level, logger.propagate
  logger.addHandler(handler)
  logger.setLevel(std_logging.INFO)
  logger.propagate = False                # shown once, through `log`
  try:
    yield
  finally:
    logger.removeHandler(handler)
    logger.setLevel(level)
    logger.propagate = propagate


def _seconds(out: str, configs: dict, t0: float, t_draw: float) -> dict:
  """The figure's run time: seconds = what its runs spent training, over all their launches
  (train_seconds: so that a figure drawn from finished or resumed runs reports what they cost),
  plus the analysis and drawing; where a run did not record its seconds, train_seconds is None
  and seconds this call's own time."""
  trained = [runs.train_seconds(os.path.join(out, label)) for label in configs]
  if any(s is None for s in trained):
    return dict(seconds=round(time.time() - t0, 1), train_seconds=None)
  return dict(seconds=round(sum(trained) + time.time() - t_draw, 1),
              train_seconds=round(sum(trained), 1))


def run_dir(name: str, root: str, quick: bool = False, label: str = "",
            steps: Optional[int] = None) -> str:
  """Where reproduce(name, root, quick, steps=steps) keeps the figure (label ''), or its run
  `label` (a key of the figure's runs, e.g. 'sweep'): for trajectory.load."""
  return os.path.join(root, name + ("_quick" if quick else "") +
                      ("" if steps is None else f"_steps{steps}"), label)


def _device() -> str:
  """The device the figure ran on, in words (e.g. 'cpu (2 cores)', 'NVIDIA H100 80GB HBM3')."""
  import jax
  d = jax.devices()[0]
  if d.platform == "cpu":
    return f"cpu ({os.cpu_count()} cores)"
  return getattr(d, "device_kind", d.platform)


def _configs(name: str, fig: Figure, quick: bool, steps: Optional[int]) -> dict:
  """The figure's run configs, with train.steps = steps if given (checked here)."""
  configs = fig.runs(quick)
  if steps is not None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
      raise ValueError(f"--steps={steps!r} is not allowed; it must be a positive integer")
    if not configs:
      raise ValueError(f"--steps does not apply to --figure={name}: it launches no training "
                       "runs (its steps are in its config's docstring)")
    for label, cfg in configs.items():
      cfg.train.steps = steps
      try:                         # e.g. a multiple of train.log_every: refused before any run
        experiment.resolve(cfg)
      except ValueError as e:
        raise ValueError(f"--steps={steps} is not allowed for --figure={name} (run {label}): "
                         f"{e}") from None
  return configs


_FIGURE = flags.DEFINE_string("figure", None, "Figure to reproduce (see --list).")
_ALL = flags.DEFINE_bool("all", False, "Reproduce every figure.")
_QUICK = flags.DEFINE_bool("quick", False, "Reduced settings (CPU-friendly).")
_LIST = flags.DEFINE_bool("list", False, "List the figures and exit.")
_ROOT = flags.DEFINE_string("root", "runs/reproduce", "Where the runs and figures go.")
_STEPS = flags.DEFINE_integer("steps", None, "Train every run of the figure for this many steps "
                              "instead of its config's (output in ROOT/NAME_stepsN).")
_SUMMARY = flags.DEFINE_bool("summary", False, "Publish ROOT's full-settings reports and "
                             "figures into docs/reports and docs/figures, then write "
                             "docs/results.md from docs/reports and the README's gallery.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Check every run's config and build its data, "
                             "model and program without training or drawing, then exit.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  figures = _registry()
  if _SUMMARY.value:
    published = [n for n in sorted(figures) if results.publish(n, os.path.join(_ROOT.value, n))]
    print(f"published from {_ROOT.value}: {', '.join(published) or 'nothing'}")
    print(f"wrote {results.write({n: figures[n].description for n in sorted(figures)})}")
    results.write_gallery(README, sorted(figures))
    print(f"wrote the gallery of {README}")
    return
  if _LIST.value or not (_FIGURE.value or _ALL.value):
    for n, f in sorted(figures.items()):
      print(f"{n:18s} {f.description}")
    return
  names = sorted(figures) if _ALL.value else [_FIGURE.value]
  if _ALL.value and _STEPS.value is not None:   # --steps applies to the figures that train
    skip = [n for n in names if not figures[n].runs(_QUICK.value)]
    if skip:
      print(f"--steps does not apply to {', '.join(skip)} (no training runs): skipped")
    names = [n for n in names if n not in skip]
  if _FIGURE.value and _FIGURE.value not in figures:
    print(f"error: --figure={_FIGURE.value!r} is not allowed; allowed: "
          f"{', '.join(sorted(figures))}", file=sys.stderr)
    sys.exit(2)
  configs = {}
  for n in names:                  # refuse a bad --steps before any figure runs
    try:
      configs[n] = _configs(n, figures[n], _QUICK.value, _STEPS.value)
    except ValueError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)
  if _DRY_RUN.value:
    with cli.one_line_errors():
      for n, cfgs in configs.items():
        for label, cfg in cfgs.items():
          print(f"dry run: {n}/{label}: {experiment.Experiment.from_config(cfg).summary()}")
        print(f"dry run: {n}: {len(cfgs)} run(s) checked and built; nothing trained or drawn")
    return
  stop = cli.interrupt_on_ctrl_c()
  with cli.one_line_errors():
    reports = [reproduce(n, _ROOT.value, _QUICK.value, steps=_STEPS.value, stop=stop.is_set)
               for n in names]
  print(json.dumps({r["figure"]: r["all_hold"] for r in reports}))


if __name__ == "__main__":
  app.run(main)
