"""run(config, workdir): the library function behind the launcher and the notebooks.

It resolves and validates the whole config before any work (a bad value stops here with the
field's name and the allowed values), then builds data, model, loss, optimizer, sweep and probes,
opens the run directory (resuming if it holds the same config), trains chunk by chunk with
progress on the terminal, and draws the training curves into WORKDIR/figures/.
"""
import math
import time
from typing import Any, Callable

import jax
import ml_collections
import numpy as np

from dynamics import config_utils as cu
from dynamics import data as data_lib
from dynamics import flow, losses, models, optimizers, runs, train
from dynamics import sweep as sweep_lib
from experiments import probes as probes_lib

SECTIONS = ("seed", "model", "data", "loss", "opt", "train", "probes", "sweep")


def opt_lib(opt_cfg):
  """The module that validates and builds this opt section: optimizers, or flow (RK4)."""
  return flow if opt_cfg.get("name") == flow.NAME else optimizers


def resolve(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config with every section's defaults filled in; raises ConfigError on a bad value."""
  unknown = sorted(set(config.keys()) - set(SECTIONS))
  if unknown:
    raise cu.ConfigError(f"config: unknown section(s) {', '.join(unknown)}; allowed: "
                         f"{', '.join(SECTIONS)}")
  for s in ("model", "data", "opt"):
    if s not in config or "name" not in config[s]:
      raise cu.ConfigError(f"config.{s}.name is required")
  seed = config.get("seed", 0)
  if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
    raise cu.ConfigError(f"seed={seed!r} is not allowed; it must be an integer >= 0")
  models.validate(config.model)
  data_lib.validate(config.data)
  opt_lib(config.opt).validate(config.opt)
  out = ml_collections.ConfigDict()
  out.seed = seed
  d = section_defaults(config)
  out.model = cu.with_defaults("model", config.model, d["model"])
  out.data = cu.with_defaults("data", config.data, d["data"])
  loss_cfg = config.get("loss", ml_collections.ConfigDict(dict(name="mse")))
  losses.validate(loss_cfg)
  out.loss = cu.with_defaults("loss", loss_cfg, d["loss"])
  if config.opt.name == flow.NAME:
    out.opt = cu.with_defaults("opt", config.opt, d["opt"])
  else:
    out.opt = optimizers.with_defaults(config.opt)   # fills a partial opt.schedule too
  out.train = cu.with_defaults("train", config.get("train", {}), d["train"])
  train.validate(out.train)
  out.probes = ml_collections.ConfigDict(config.get("probes", {}))
  probes_lib.validate(out.probes)
  out.sweep = ml_collections.ConfigDict(config.get("sweep", {}))
  sweep = sweep_lib.expand(out.sweep, opt_lib(out.opt).build(out.opt).hparam_names)
  for member in sweep.members:
    for axis, value in member.items():
      if axis.startswith("opt."):
        optimizers.check_hparam(axis[4:], value, field=f"sweep.{axis}")
  if out.model.get("init_scale", 1.0) == 0 and "init_scale" in out.sweep.get("model", {}):
    raise cu.ConfigError("model.init_scale must be nonzero when sweep.model.init_scale is set")
  return out


# Fields a run may change on resume: they decide where it ends, how the work is split into
# compiled chunks and how often it checkpoints, never the numbers of a step it takes.
MAY_CHANGE = ("train.steps", "train.chunk_steps", "train.checkpoint_every_secs")


def section_defaults(config: ml_collections.ConfigDict) -> dict:
  """Each section's fields at their defaults, for the config's model, data and optimizer names
  (validated): what resolve fills in, and what a field added after a run was created must
  equal for the run to resume."""
  opt = (flow.default_config() if config.opt.name == flow.NAME
         else optimizers.default_config(config.opt.name))
  return dict(model=models.default_config(config.model.name),
              data=data_lib.default_config(config.data.name), loss=losses.default_config(),
              opt=opt, train=train.default_config())


def build(cfg: ml_collections.ConfigDict):
  """Data, model, program and runner for a resolved config (no files touched)."""
  dtype = np.float64 if cfg.train.float64 else np.float32
  ds = data_lib.load(cfg.data)
  model = models.build(cfg.model, in_dim=ds.in_dim, out_dim=ds.out_dim)
  loss = losses.build(cfg.loss)
  opt = opt_lib(cfg.opt).build(cfg.opt)
  sweep = sweep_lib.expand(cfg.sweep, opt.hparam_names)
  # Only floating arrays take the run's dtype: integer labels and integer inputs (the
  # transformer's tokens) stay integer.
  cast = lambda a: a.astype(dtype) if np.issubdtype(a.dtype, np.floating) else a
  data = {"x_train": cast(ds.x_train), "y_train": cast(ds.y_train)}
  if ds.x_test.shape[0]:
    data.update(x_test=cast(ds.x_test), y_test=cast(ds.y_test))
  program = train.Program(model.apply, loss, losses.accuracy, opt, data, cfg.train)
  program.probes = {k: train.as_probe(v) for k, v in
                    probes_lib.build(cfg.probes, program, model).items()}
  runner = train.Runner(program, lambda key: model.init(key, dtype=dtype), sweep,
                        base_seed=cfg.seed, base_init_scale=cfg.model.get("init_scale", 1.0))
  return ds, model, program, runner


def _print(msg: str) -> None:
  print(msg, flush=True)


def run(config: ml_collections.ConfigDict, workdir: str, log: Callable = _print,
        plot: bool = True) -> str:
  """Trains (or resumes) the experiment `config` in `workdir`; returns the workdir."""
  cfg = resolve(config)
  # x64 for float64 runs, for a float64 loss on a float32 run (the loss casts up and back) and
  # for float64 optimizer moments; never switched off here: other code may rely on it
  if cfg.train.float64 or cfg.loss.float64 or cfg.opt.get("moments_float64", False):
    jax.config.update("jax_enable_x64", True)
  _, _, program, runner = build(cfg)
  rd = runs.RunDir(workdir)
  defaults = {k: v.to_dict() for k, v in section_defaults(cfg).items()}
  rd.open(cfg.to_dict(), runner.sweep, defaults=defaults, may_change=MAY_CHANGE)
  try:
    _train(cfg, program, runner, rd, log)
  finally:
    rd.close()
  if plot:
    from analysis import plots, trajectory
    paths = plots.training_curves(trajectory.load(workdir), f"{rd.path}/figures")
    log(f"figures: {', '.join(paths)}")
  return rd.path


def _train(cfg, program, runner, rd: runs.RunDir, log: Callable) -> None:
  tc = cfg.train
  kept = train.keep_steps(tc.keep, tc.steps, tc.log_every)
  if rd.latest_step() is not None:
    step, host = rd.restore_latest(runner.host_template())
    if step > tc.steps:
      raise cu.ConfigError(f"train.steps={tc.steps} is not allowed for {rd.path}: the run has "
                           f"reached step {step}; give train.steps >= {step}")
    rd.truncate_metrics(step)
    host = _reconcile(host, rd, cfg, step, log)
    rd.accept_changes()
    if np.all(host.done):     # a kill after the last checkpoint, or train.steps lowered to it
      rd.save_kept(step, host)
    _write_summary(rd, runner, host, step)
    state = runner.from_host(host)
    rd.record_resume(step)
    log(f"resuming {rd.path} at step {step}")
  else:
    step = 0
    rd.accept_changes()                # killed before its first checkpoint: a fresh start
    rd.truncate_metrics(-1)
    state, m0 = runner.log_initial(runner.init_state())
    rd.append_metrics(np.array([0]), m0)
    _checkpoint(rd, runner, state, 0, kept)
  t_start, t_ckpt, step_start = time.time(), time.time(), step
  while not _all_done(runner, state):
    n = runner.plan(step, kept)
    state, m = runner.run_chunk(state, n)
    steps = step + tc.log_every * np.arange(1, n + 1)
    step = int(steps[-1])
    finished = _all_done(runner, state)
    if finished:  # drop the log points after the last member stopped (all NaN)
      last = int(np.max(np.asarray(state.stop_step)[:runner.n]))
      keep = steps <= max(last, int(steps[0]))
      steps, m = steps[keep], {k: v[keep] for k, v in m.items()}
    rd.append_metrics(steps, m)
    if finished or step in kept or time.time() - t_ckpt > tc.checkpoint_every_secs:
      _checkpoint(rd, runner, state, step, kept, final=finished)
      t_ckpt = time.time()
    _progress(log, step, tc.steps, step_start, t_start, m, state, runner)


def _reconcile(host: train.TrainState, rd: runs.RunDir, cfg, step: int,
               log: Callable) -> train.TrainState:
  """The restored members' stop decisions for this launch's train.steps, made from the
  checkpoint and the metrics alone, so that a launch killed before its next checkpoint makes
  the same ones when it is run again:
  - a member that stopped (not diverged) before train.steps with no goal met in its metrics at
    its stop step stopped at an earlier launch's train.steps: it goes on (the decision a run
    launched with this train.steps made at that step);
  - a member still running at step >= train.steps stops there."""
  tc = cfg.train
  done, stop = np.asarray(host.done).copy(), np.asarray(host.stop_step).copy()
  ended = done & ~np.asarray(host.diverged) & (stop >= 0) & (stop < tc.steps)
  restart = np.zeros_like(done)
  # goals are compared in the metrics' dtype inside the program: float32 unless float64
  dtype = np.float64 if cfg.train.float64 else np.float32
  for s in np.unique(stop[ended]):
    m = rd.metrics_at(int(s))
    if m is None:
      raise RuntimeError(f"{rd.path}: no metrics logged at step {s}, where members stopped; "
                         "cannot tell which of them reached a goal")
    m = {k: v.astype(dtype) if np.issubdtype(v.dtype, np.floating) else v for k, v in m.items()}
    restart |= ended & (stop == s) & ~np.asarray(train.goal_reached(tc, m), dtype=bool)
  halt = ~done & (step >= tc.steps)
  if restart.any():
    log(f"train.steps = {tc.steps}: {int(restart.sum())} member(s) that stopped at an earlier "
        "train.steps go on")
  done = np.where(restart, False, done) | halt
  stop = np.where(restart, -1, np.where(halt, step, stop)).astype(host.stop_step.dtype)
  return host._replace(done=done, stop_step=stop)


def _all_done(runner, state) -> bool:
  return bool(np.all(np.asarray(state.done)))


def _checkpoint(rd, runner, state, step, kept, final=False) -> None:
  host = runner.to_host(state)
  if step in kept or final:
    rd.save_kept(step, host)
  rd.save_latest(step, host)
  _write_summary(rd, runner, host, step)


def _write_summary(rd, runner, host, step) -> None:
  members = []
  for i, coords in enumerate(runner.sweep.members):
    members.append(dict(coords=coords, done=bool(host.done[i]), diverged=bool(host.diverged[i]),
                        stop_step=int(host.stop_step[i])))
  runs.write_json_atomic(rd.file(runs.SUMMARY), dict(step=step, members=members))


def _progress(log, step, total, step_start, t_start, m, state, runner) -> None:
  elapsed = max(time.time() - t_start, 1e-9)
  rate = (step - step_start) / elapsed
  eta = (total - step) / rate if rate > 0 else math.inf
  loss = m["train_loss"][-1]
  done = np.asarray(state.done)[:runner.n]
  div = np.asarray(state.diverged)[:runner.n]
  finite = loss[np.isfinite(loss)]
  loss_txt = (f"train_loss min {finite.min():.4g} max {finite.max():.4g}" if finite.size
              else "train_loss n/a")
  log(f"step {step}/{total}  {rate:,.0f} steps/s  ETA {eta:,.0f}s  {loss_txt}  "
      f"running {int((~done).sum())}/{runner.n}  diverged {int(div.sum())}")


def describe(cfg: ml_collections.ConfigDict) -> dict[str, Any]:
  """A short dict describing a resolved config (for notebooks)."""
  opt = opt_lib(cfg.opt).build(cfg.opt)
  return dict(model=cfg.model.name, data=cfg.data.name, opt=cfg.opt.name,
              members=sweep_lib.expand(cfg.sweep, opt.hparam_names).size,
              steps=cfg.train.steps)
