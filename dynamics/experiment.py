"""An experiment from its config: resolved once, built once, trained into a run directory.

    exp = Experiment.from_config(config)     # every field checked; data, model, loss, optimizer,
                                             # sweep, probes, program: built once, in that order
    exp.run(workdir)                         # trains or resumes; the run directory is the record
    traj = analysis.trajectory.load(workdir) # and reads it back (it rebuilds exp from config.json)

config sections: seed, model, data, loss, opt, train, probes, sweep and analysis (settings of
analysis computed from the run afterwards, e.g. the central flows: stored with the run, never
read by training, free to change on resume). A bad value stops in from_config, before any work,
with a ConfigError naming the field and the allowed values.
"""
import json
import math
import os
import time
from typing import Any, Callable, NamedTuple, Optional

import jax
import ml_collections
import numpy as np

from dynamics import config_utils as cu
from dynamics import distributed
from dynamics import data as data_lib
from dynamics import fields, flow, losses, models, optimizers, probes, runs, train
from dynamics import sweep as sweep_lib

SECTIONS = ("seed", "model", "data", "loss", "opt", "train", "probes", "sweep", "analysis")

# Fields a run may change on resume: they decide where it ends, how the work is split into
# compiled chunks and how often it checkpoints, never the numbers of a step it takes; and the
# analysis section, which training never reads.
MAY_CHANGE = ("train.steps", "train.chunk_steps", "train.checkpoint_every_secs",
              "train.members_per_program", "analysis")


def opt_lib(opt_cfg):
  """The module that validates and builds this opt section: optimizers, or flow (RK4)."""
  return flow if cu.get(opt_cfg, "name") == flow.NAME else optimizers


def resolve(config: Any) -> ml_collections.ConfigDict:
  """The config with every section's defaults filled in; raises ConfigError on a bad value."""
  unknown = sorted(set(config.keys()) - set(SECTIONS))
  if unknown:
    raise cu.ConfigError(f"config: unknown section(s) {', '.join(unknown)}; allowed: "
                         f"{', '.join(SECTIONS)}")
  for s in ("model", "data", "opt"):
    if s not in config or "name" not in config[s]:
      raise cu.ConfigError(f"config.{s}.name is required")
  out = ml_collections.ConfigDict()
  out.seed = config.get("seed", 0)
  fields.Field(0, lo=0).check("seed", out.seed)
  out.model = models.validate(config.model)
  out.data = data_lib.validate(config.data)
  out.loss = losses.validate(config.get("loss", ml_collections.ConfigDict(dict(name="mse"))))
  out.opt = opt_lib(config.opt).validate(config.opt)
  out.train = train.validate(config.get("train", {}))
  out.probes = probes.resolve(config.get("probes", {}))
  out.sweep = ml_collections.ConfigDict(config.get("sweep", {}))
  out.analysis = ml_collections.ConfigDict(config.get("analysis", {}))
  model_fields = models.fields_of(out.model.name)
  sweep = sweep_lib.expand(out.sweep, opt_lib(out.opt).build(out.opt).hparam_names,
                           fields.sweepable(model_fields))
  for member in sweep.members:
    for axis, value in member.items():
      if axis.startswith("opt."):
        optimizers.check_hparam(axis[4:], value, field=f"sweep.{axis}")
      elif axis.startswith("model."):
        model_fields[axis[6:]].check(f"sweep.{axis}", value)
  return out


def opt_defaults(name: Any) -> ml_collections.ConfigDict:
  """The opt section of optimizer `name` (or the gradient flow) at its defaults."""
  return flow.default_config() if name == flow.NAME else optimizers.default_config(name)


def section_defaults(config: Any) -> dict:
  """Each section's fields at their defaults, for the config's model, data and optimizer names:
  what resolve fills in, and what a field added after a run was created must equal for the
  run to resume."""
  return dict(model=models.default_config(config.model.name),
              data=data_lib.default_config(config.data.name), loss=losses.default_config(),
              opt=opt_defaults(config.opt.name), train=train.default_config())


class Experiment(NamedTuple):
  """Everything a config builds, each part handed to the next by its constructor.

  Attributes:
    config: the resolved config (every field present and checked).
    dataset: the dynamics.data Dataset (numpy arrays and info).
    model: the dynamics.models Model (init, apply, config).
    problem: the dynamics.train.Problem (apply, loss, optimizer, data in the run's dtype).
    sweep: the dynamics.sweep Sweep (members).
    program: the dynamics.train.Program (step, log point, probes).
    runner: the dynamics.train.Runner (the compiled programs over the devices), or a
      GroupedRunner running the sweep through them in groups (train.members_per_program).
  """
  config: ml_collections.ConfigDict
  dataset: Any
  model: Any
  problem: train.Problem
  sweep: sweep_lib.Sweep
  program: train.Program
  runner: Any              # train.Runner, or train.GroupedRunner for a sweep run in groups

  @classmethod
  def from_config(cls, config: Any, resolved: bool = False) -> "Experiment":
    """Resolves (unless `resolved`) and builds the experiment; no files are touched."""
    cfg = config if resolved else resolve(config)
    enable_x64_if_needed(cfg)
    problem, dataset, model = build_problem(cfg)
    sweep = sweep_lib.expand(cfg.sweep, problem.opt.hparam_names)
    program = train.Program(problem, cfg.train, probes.build(cfg.probes, problem))
    runner = train.Runner(program, lambda key: model.init(key, dtype=dtype(cfg)), sweep,
                          base_seed=cfg.seed, base_init_scale=cfg.model.get("init_scale", 1.0))
    group = cfg.train.members_per_program
    if group > sweep.size:
      raise cu.ConfigError(f"train.members_per_program={group} is not allowed: the sweep has "
                           f"{sweep.size} member(s); use 1 to {sweep.size} (0: automatic)")
    if not group and sweep.size > 1:
      group = train.group_size(runner, sweep.size)
    if 0 < group < sweep.size:
      runner = train.GroupedRunner(runner, group)
    return cls(cfg, dataset, model, problem, sweep, program, runner)

  def summary(self) -> str:
    """One line: what was built."""
    c = self.config
    n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(
        jax.eval_shape(self.model.init, jax.random.PRNGKey(0))))
    return (f"{c.model.name} ({n:,} parameters) on {c.data.name} ({self.problem.n_train} "
            f"training examples), {c.loss.name} loss, {c.opt.name}, {self.sweep.size} "
            f"member(s), {c.train.steps} steps, probes: {', '.join(c.probes.keys()) or 'none'}")

  def batch(self) -> dict:
    """The full training batch {'x', 'y'} in the run's dtype."""
    return self.problem.full_batch()

  def run(self, workdir: str, log: Callable = print,
          stop: Optional[Callable[[], bool]] = None) -> str:
    """Trains (or resumes) the experiment in `workdir`; returns the run directory's path.

    Args:
      workdir: the run directory (created, or resumed when it holds the same config).
      log: where progress lines go.
      stop: polled after every chunk; when it returns True the run checkpoints and raises
        Interrupted (the launcher connects it to Ctrl-C).

    Raises:
      RunDirError: the directory is in use by another launch, or cannot be a directory.
      ConfigMismatch: it holds a run with another config.
      WriteFailed: a file could not be written (disk full, ...): the run resumes intact
        once the cause is gone.
      Interrupted: `stop` said so; the run resumes where it stopped.
    """
    if not distributed.is_primary():      # process 0 keeps the run directory and reports
      _train(self, None, lambda *_, **__: None, stop or (lambda: False))
      return os.path.abspath(workdir)
    rd = runs.RunDir(workdir)
    rd.acquire(log)
    try:
      defaults = {k: v.to_dict() for k, v in section_defaults(self.config).items()}
      rd.open(self.config.to_dict(), self.sweep, defaults=defaults, may_change=MAY_CHANGE)
      _train(self, rd, log, stop or (lambda: False))
    finally:
      rd.close()
      rd.release()
    return rd.path


class Interrupted(Exception):
  """A run stopped on request after checkpointing; the message says where and how to resume."""


def describe(config: Any) -> str:
  """Every field of the config after resolving: its value, what is allowed and what it does."""
  cfg = resolve(config)
  lines = [f"seed = {cfg.seed}   # model init and minibatch order; allowed: an integer >= 0"]
  choices = dict(model=tuple(models.MODELS), data=tuple(data_lib.DATASETS),
                 opt=optimizers.OPTIMIZERS + (flow.NAME,))
  for section, schema in schemas(cfg).items():
    if section in choices:
      lines.append(f"{section}.name = {cfg[section].name!r}   # another name brings its own "
                   f"fields; allowed: {', '.join(map(repr, choices[section]))}")
    lines += fields.describe(section, schema, cfg[section])
  lines += probes.describe(cfg.probes)
  axes = sweep_lib.allowed_axes(opt_lib(cfg.opt).build(cfg.opt).hparam_names,
                                fields.sweepable(models.fields_of(cfg.model.name)))
  lines.append(f"sweep = {cfg.sweep.to_dict()!r}   # sweepable axes (lists of values): "
               f"{', '.join(axes)}")
  if cfg.analysis:
    lines.append(f"analysis = {cfg.analysis.to_dict()!r}")
  return "\n".join(lines)


def schemas(cfg) -> dict:
  """section -> its declared fields for the config's chosen components."""
  opt = flow.FIELDS if cfg.opt.name == flow.NAME else optimizers.fields_of(cfg.opt.name)
  return dict(model=models.fields_of(cfg.model.name), data=data_lib.fields_of(cfg.data.name),
              loss=losses.FIELDS, opt=opt, train=train.FIELDS)


def dtype(cfg) -> Any:
  return np.float64 if cfg.train.float64 else np.float32


def enable_x64_if_needed(cfg) -> None:
  """x64 for float64 runs, for a float64 loss on a float32 run (the loss casts up and back) and
  for float64 optimizer moments; never switched off here: other code may rely on it."""
  if cfg.train.float64 or cfg.loss.float64 or cfg.opt.get("moments_float64", False):
    jax.config.update("jax_enable_x64", True)


def build_problem(cfg) -> tuple[train.Problem, Any, Any]:
  """(Problem, Dataset, Model) of a resolved config: what analysis needs to rebuild a run."""
  ds = data_lib.load(cfg.data)
  model = models.build(cfg.model, in_dim=ds.in_dim, out_dim=ds.out_dim, data=ds)
  # Only floating arrays take the run's dtype: integer labels and integer inputs (the
  # transformer's tokens) stay integer.
  dt = dtype(cfg)
  cast = lambda a: a.astype(dt) if np.issubdtype(a.dtype, np.floating) else a
  arrays = {"x_train": cast(ds.x_train), "y_train": cast(ds.y_train)}
  if ds.x_test.shape[0]:
    arrays.update(x_test=cast(ds.x_test), y_test=cast(ds.y_test))
  problem = train.Problem.of(model.apply, losses.build(cfg.loss), losses.accuracy,
                             opt_lib(cfg.opt).build(cfg.opt), arrays, cfg.train.batch_size,
                             readout=model.readout, penalty=model.penalty)
  return problem, ds, model


def run(config: Any, workdir: str, log: Callable = print,
        stop: Optional[Callable[[], bool]] = None) -> str:
  """Experiment.from_config(config).run(workdir, log, stop), with the workdir checked before
  anything is built: the launcher's library call."""
  if distributed.is_primary():
    runs.check_workdir(workdir)
  return Experiment.from_config(config).run(workdir, log, stop)


# ---- the life of a run: train, checkpoint, resume --------------------------------------------
def _train(exp: Experiment, rd: Optional[runs.RunDir], log: Callable,
           stop: Callable[[], bool]) -> None:
  """The run's life. rd is None on the processes other than 0 of a multi-process run: they
  compute what process 0 computes and take its decisions (resume point, when to checkpoint,
  when to stop), so that every process calls the same programs in the same order."""
  tc, runner = exp.config.train, exp.runner
  kept = train.keep_steps(tc.keep, tc.steps, tc.log_every)
  try:
    step, host = _prepare(exp, rd, log) if rd else (0, None)
  except Exception:
    distributed.share(np.int64(-2), np.int64(0))     # the others stop too, instead of waiting
    raise
  # seconds spent training by earlier launches, up to their last checkpoint (None: unknown,
  # a run directory written before summary.json recorded them)
  clock = _Clock(runs.train_seconds(rd.path) if rd and host is not None else 0.0)
  resumed = distributed.share(np.int64(-1 if host is None else step), np.int64(0))
  if resumed == -2:
    raise RuntimeError("process 0 stopped before training; its output says why")
  if resumed >= 0:
    step = int(resumed)
    state = runner.from_host(distributed.share(host, runner.host_template()))
  else:
    step = 0
    state, m0 = runner.log_initial(runner.init_state())
    if rd:
      rd.append_metrics(np.array([0]), m0)
    _checkpoint(rd, runner, state, 0, kept, clock)
  t_start, t_ckpt, step_start = time.time(), time.time(), step
  while not _all_done(runner, state):
    n = runner.plan(step, kept)
    state, m = runner.run_chunk(state, n)
    steps = step + tc.log_every * np.arange(1, n + 1)
    step = int(steps[-1])
    finished = _all_done(runner, state)
    if finished:  # drop the log points after the last member stopped (all NaN)
      last = int(np.max(distributed.fetch(state.stop_step)[:runner.n]))
      keep = steps <= max(last, int(steps[0]))
      steps, m = steps[keep], {k: v[keep] for k, v in m.items()}
    if rd:
      rd.append_metrics(steps, m)
    halt = not finished and stop()
    save = finished or halt or step in kept or time.time() - t_ckpt > tc.checkpoint_every_secs
    halt, save = (bool(x) for x in distributed.share(np.array([halt, save]), np.zeros(2, bool)))
    if save:
      _checkpoint(rd, runner, state, step, kept, clock, final=finished)
      t_ckpt = time.time()
    _progress(log, step, tc.steps, step_start, t_start, m, state, runner)
    if halt:
      raise Interrupted(f"interrupted at step {step}; run the same command to resume")


def _prepare(exp: Experiment, rd: runs.RunDir, log: Callable):
  """(step, host state) to resume from with the run directory made ready for it, or (0, None)
  for a fresh start (the directory emptied of a start killed before its first checkpoint)."""
  tc, runner = exp.config.train, exp.runner
  step, host = _resume_point(exp, rd, log)
  if host is None:
    rd.accept_changes()
    rd.truncate_metrics(-1, tc.log_every)
    return 0, None
  if step > tc.steps:
    raise cu.ConfigError(f"train.steps={tc.steps} is not allowed for {rd.path}: the run has "
                         f"reached step {step}; give train.steps >= {step}")
  rd.truncate_metrics(step, tc.log_every)
  host = _reconcile(host, rd, exp.config, step, log)
  rd.accept_changes()
  if np.all(host.done):     # a kill after the last checkpoint, or train.steps lowered to it
    rd.checkpoints.save_kept(step, host)
  _write_summary(rd, runner, host, step, runs.train_seconds(rd.path))
  rd.record_resume(step)
  log(f"resuming {rd.path} at step {step}")
  return step, host


def _resume_point(exp: Experiment, rd: runs.RunDir, log: Callable):
  """(step, host state) to resume from, or (0, None) for a fresh start.

  The newest intact checkpoint, and when the log has a torn or unreadable line the newest one
  at or before its last intact point, so that the log is recomputed from there. Where none
  qualifies the run starts again from step 0: training is deterministic, so the numbers come
  out the same.
  """
  lines, problem = rd.read_log(exp.config.train.log_every)
  if problem:
    log(f"{rd.file(runs.METRICS)}: {problem}; its lines from there are recomputed")
  last_intact = json.loads(lines[-1])["step"] if lines else -1
  rd.checkpoints.adopt()
  if not rd.checkpoints.steps("latest"):
    return 0, None
  step, host = rd.checkpoints.newest_intact(last_intact if problem else None,
                                            exp.runner.host_template(), log)
  rd.checkpoints.discard_after(-1 if host is None else step)
  if host is None:
    log(f"no intact checkpoint in {rd.file('checkpoints/latest')} at or before step "
        f"{max(last_intact, 0)} of the log; starting again from step 0 (same config, same "
        "numbers)")
    return 0, None
  return step, host


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
  dt = dtype(cfg)
  for s in np.unique(stop[ended]):
    m = rd.metrics_at(int(s), tc.log_every)
    if m is None:
      raise RuntimeError(f"{rd.path}: no metrics logged at step {s}, where members stopped; "
                         "cannot tell which of them reached a goal")
    m = {k: v.astype(dt) if np.issubdtype(v.dtype, np.floating) else v for k, v in m.items()}
    restart |= ended & (stop == s) & ~np.asarray(train.goal_reached(tc, m), dtype=bool)
  halt = ~done & (step >= tc.steps)
  if restart.any():
    log(f"train.steps = {tc.steps}: {int(restart.sum())} member(s) that stopped at an earlier "
        "train.steps go on")
  done = np.where(restart, False, done) | halt
  stop = np.where(restart, -1, np.where(halt, step, stop)).astype(host.stop_step.dtype)
  return host._replace(done=done, stop_step=stop)


def _all_done(runner, state) -> bool:
  return bool(np.all(distributed.fetch(state.done)[:runner.n]))


class _Clock:
  """Seconds spent training a run, over all its launches: those recorded by earlier ones (None
  when unknown) plus this launch's."""

  def __init__(self, before: Optional[float]):
    self.before, self.start = before, time.time()

  def seconds(self) -> Optional[float]:
    return None if self.before is None else round(self.before + time.time() - self.start, 1)


def _checkpoint(rd, runner, state, step, kept, clock: _Clock, final=False) -> None:
  host = runner.to_host(state)      # on every process (it gathers the members)
  if rd is None:
    return
  if step in kept or final:
    rd.checkpoints.save_kept(step, host)
  rd.checkpoints.save_latest(step, host)
  _write_summary(rd, runner, host, step, clock.seconds())


def _write_summary(rd, runner, host, step, seconds: Optional[float]) -> None:
  """summary.json: each member's coordinates and stop, and the seconds spent training up to
  this checkpoint (over every launch; compiling included)."""
  members = [dict(coords=c, done=bool(host.done[i]), diverged=bool(host.diverged[i]),
                  stop_step=int(host.stop_step[i])) for i, c in enumerate(runner.sweep.members)]
  runs.write_json_atomic(rd.file(runs.SUMMARY),
                         dict(step=step, members=members, train_seconds=seconds))


def _progress(log, step, total, step_start, t_start, m, state, runner) -> None:
  elapsed = max(time.time() - t_start, 1e-9)
  rate = (step - step_start) / elapsed
  eta = (total - step) / rate if rate > 0 else math.inf
  loss = m["train_loss"][-1]
  done = distributed.fetch(state.done)[:runner.n]
  div = distributed.fetch(state.diverged)[:runner.n]
  finite = loss[np.isfinite(loss)]
  loss_txt = (f"train_loss min {finite.min():.4g} max {finite.max():.4g}" if finite.size
              else "train_loss n/a")
  log(f"step {step}/{total}  {rate:,.0f} steps/s  ETA {eta:,.0f}s  {loss_txt}  "
      f"running {int((~done).sum())}/{runner.n}  diverged {int(div.sum())}")
