"""The training loop: a chunk of steps is one compiled program over all sweep members.

Structure of one compiled chunk (see DESIGN.md, "Training: one compiled program per chunk"):

    while i < n_logs:                       # lax.fori_loop, n_logs is a traced scalar
      vmap over members:                    # the sweep axis, laid over the device mesh
        lax.scan(train_step, length=log_every)
        metrics, probes at the new point    # inside the program: nothing leaves the device
      buffer[i] = metrics

The host sees only the chunk's metric buffer. Per-member bookkeeping rides in the state:
a member that reaches a goal or max_steps is `done` and frozen; a member whose loss or
parameters turn non-finite is frozen at its last finite parameters, marked `diverged`, and its
later metrics are NaN, while the other members go on.

Randomness is `fold_in(member_key, step)`, so any chunking of the same steps (and so a resumed
run) produces the same numbers bit for bit.
"""
import copy
import os
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from dynamics import config_utils as cu
from dynamics import distributed, fields
from dynamics.fields import Field
from dynamics.sweep import Sweep

PRECISIONS = ("highest", "high", "default")
LAYOUTS = ("auto", "vmap", "map")


def _check_keep(path: str, value: Any) -> None:
  keep_steps(value, 1, 1)     # the spec's form; its steps are checked against train.steps below


# The `train` section, declared once (dynamics.fields derives defaults, checks, --describe).
FIELDS = dict(
    steps=Field(1000, "max optimizer steps per member", lo=1),
    log_every=Field(10, "steps between log points (metrics and probes)", lo=1),
    chunk_steps=Field(1000, "steps per compiled chunk (the host sees metrics once a chunk)",
                      lo=1),
    batch_size=Field(0, "0: full batch (GD); else minibatches, epoch-wise without replacement",
                     lo=0),
    loss_goal=Field(0.0, "stop a member once its train loss <= this (0: no goal)", lo=0),
    acc_goal=Field(0.0, "stop a member once its train accuracy >= this (0: no goal)", lo=0,
                   hi=1),
    test_acc_goal=Field(0.0, "stop a member once its test accuracy >= this (0: no goal)",
                        lo=0, hi=1),
    divergence_loss=Field(0.0, "also call a member diverged above this train loss (0: only "
                          "NaN/inf)", lo=0),
    precision=Field("highest", "matmul precision: highest = full fp32 (TF32 changes the "
                    "dynamics)", choices=PRECISIONS),
    float64=Field(False, "run everything in float64"),
    members_per_program=Field(0, "members trained together on the devices; a larger sweep runs "
                              "in consecutive groups through the same program (0: one per "
                              "device in the map layout, all that fit in vmap; see "
                              "dynamics.train.group_size)", lo=0),
    members=Field("auto", "how a sweep's members share a program: vmap (batched), map (one "
                  "after another, each the program of a single run), auto (map on the CPU)",
                  choices=LAYOUTS),
    keep=Field("log:12", "snapshots kept for analysis: 'log:N', 'every:K', 'none', '1,10,100'",
               kind="any", check=_check_keep),
    checkpoint_every_secs=Field(60.0, "latest-state checkpoint cadence (and at every kept "
                                "step, and the end)", lo=0),
)


def _check(cfg) -> None:
  if cfg.steps % cfg.log_every:
    raise cu.ConfigError(f"train.steps={cfg.steps} is not allowed; it must be a multiple of "
                         f"train.log_every={cfg.log_every}")
  keep_steps(cfg.keep, cfg.steps, cfg.log_every)


validate, default_config = fields.declare("train", FIELDS, _check)


def keep_steps(spec: Any, steps: int, log_every: int) -> list[int]:
  """Steps whose parameters are kept, on the log grid, always including 0 and the last step.

  'log:N' gives about N log-spaced steps, 'every:K' every K steps, 'none' only the ends, and a
  comma-separated string or list gives explicit steps (rounded up to the log grid).
  """
  last = -(-steps // log_every) * log_every
  msg = (f"train.keep={spec!r} is not allowed; use 'log:N', 'every:K', 'none' or a list of "
         "steps such as '1,10,100'")
  kind, _, count = spec.partition(":") if isinstance(spec, str) else ("", "", "")
  if kind in ("log", "every"):
    try:
      n = int(count)
    except ValueError:
      raise cu.ConfigError(msg) from None
    if n < (0 if kind == "log" else 1):
      raise cu.ConfigError(msg)
    raw = range(n, last + 1, n) if kind == "every" else np.geomspace(1, max(last, 1), n)
  elif spec in ("none", "", None):
    raw = []
  else:
    try:
      raw = [int(s) for s in (spec.split(",") if isinstance(spec, str) else spec)]
    except (TypeError, ValueError):
      raise cu.ConfigError(msg) from None
  grid = {min(last, int(-(-float(s) // log_every)) * log_every) for s in raw}
  return sorted(grid | {0, last})


def goal_reached(cfg: Any, m: dict) -> Any:
  """Whether a log point's metrics meet one of the train section's goals (per member; works on
  jnp arrays inside the program and on the host's logged numpy arrays alike)."""
  reached = False
  if cfg.loss_goal > 0:
    reached = reached | (m["train_loss"] <= cfg.loss_goal)
  if cfg.acc_goal > 0:
    reached = reached | (m["train_acc"] >= cfg.acc_goal)
  if cfg.test_acc_goal > 0:
    reached = reached | (m["test_acc"] >= cfg.test_acc_goal)
  return reached


class TrainState(NamedTuple):
  """The state of ONE member (vmapped: every leaf gains a leading member axis)."""
  step: jax.Array          # int32, the global step (counts on after a member is done)
  params: Any
  opt_state: Any
  probe_state: Any         # dict name -> state of stateful probes (e.g. warm-start vectors)
  key: jax.Array           # uint32[2]; minibatch and probe randomness is fold_in(key, step)
  done: jax.Array          # bool: stopped (goal, max steps) or diverged; params frozen
  diverged: jax.Array      # bool
  stop_step: jax.Array     # int32: step at which the member stopped or diverged; -1 while running


class Probe(NamedTuple):
  """An in-loop measurement: apply(pstate, params, opt_state, batch, key) -> (pstate, metrics).

  `init(params, batch) -> pstate` gives its carried state (e.g. eigenvectors for warm starts),
  with batch the full training batch; metrics is an array or a dict of arrays of fixed shapes.
  """
  init: Callable[[Any], Any]
  apply: Callable[..., tuple[Any, Any]]


def as_probe(fn: Callable | Probe) -> Probe:
  """A plain fn(params, opt_state, batch) -> metrics as a stateless Probe."""
  if isinstance(fn, Probe):
    return fn
  return Probe(init=lambda params, batch=None: (), apply=lambda s, p, o, b, k: (s, fn(p, o, b)))


def _tree_where(cond, a, b):
  return jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)


def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


class Problem(NamedTuple):
  """What training and every in-loop probe need to know of an experiment: the model's apply,
  the loss, the optimizer and the training data (see Problem.of)."""
  apply: Callable
  loss: Any                # a dynamics.losses.Loss (per_example(outputs, y) -> [N])
  accuracy: Callable       # per-example accuracy fn(outputs, y) -> [N]
  opt: Any                 # a dynamics.optimizers.Optimizer, or a dynamics.flow.GradientFlow
  data: dict               # x_train, y_train and optionally x_test, y_test
  batch_size: int          # examples per step; 0: the full batch
  readout: Optional[Callable] = None   # readout(params) -> (W [C, d], b or None): the model's
                                       # last layer on its features
  penalty: Optional[Callable] = None   # penalty(params) -> scalar added to the training loss

  @classmethod
  def of(cls, apply, loss, accuracy, opt, data, batch_size: int = 0,
         readout: Optional[Callable] = None, penalty: Optional[Callable] = None) -> "Problem":
    """The problem with batch_size 0 when it covers the whole training set.

    Raises:
      ConfigError: batch_size larger than the training set.
    """
    n = data["x_train"].shape[0]
    if batch_size > n:
      raise cu.ConfigError(f"train.batch_size={batch_size} is not allowed: the data has {n} "
                           f"training examples; use at most {n} (0: the full batch)")
    return cls(apply, loss, accuracy, opt, data, batch_size if 0 < batch_size < n else 0,
               readout, penalty)

  @property
  def n_train(self) -> int:
    return self.data["x_train"].shape[0]

  def batch_loss(self, params, batch):
    """Mean loss of params on a batch {'x', 'y'}, plus the model's penalty where it has one:
    the function training and curvature code differentiate."""
    value = jnp.mean(self.loss.per_example(self.apply(params, batch["x"]), batch["y"]))
    return value if self.penalty is None else value + self.penalty(params)

  def full_batch(self) -> dict:
    """The whole training set as a batch {'x', 'y'}."""
    return {"x": self.data["x_train"], "y": self.data["y_train"]}


class Program:
  """Builds the per-member step and log functions and the compiled chunk over all members.

  Args:
    problem: the Problem (model, loss, optimizer, data).
    cfg: the train section (validated).
    probes: name -> Probe or fn(params, opt_state, batch) -> metrics, built for this problem.
  """

  def __init__(self, problem: Problem, cfg, probes=None):
    self.problem, self.cfg = problem, cfg
    self.apply, self.loss, self.accuracy = problem.apply, problem.loss, problem.accuracy
    self.opt, self.data, self.batch_loss = problem.opt, problem.data, problem.batch_loss
    self.probes = {k: as_probe(v) for k, v in (probes or {}).items()}
    self.n_train, self.batch_size = problem.n_train, problem.batch_size
    self.has_test = "x_test" in self.data and self.data["x_test"].shape[0] > 0
    if cfg.test_acc_goal > 0 and not self.has_test:
      raise cu.ConfigError(f"train.test_acc_goal={cfg.test_acc_goal!r} is not allowed: the data "
                           "has no test split; set it to 0 or give the data a test split")

  # ---- one member -------------------------------------------------------------------------
  @staticmethod
  def full_batch(data) -> dict:
    return {"x": data["x_train"], "y": data["y_train"]}

  def minibatch(self, data, key, step):
    """Epoch-wise shuffling without replacement: batch i of epoch e is a slice of perm(e)."""
    if not self.batch_size:
      return self.full_batch(data)
    per_epoch = self.n_train // self.batch_size
    perm = jax.random.permutation(jax.random.fold_in(key, step // per_epoch), self.n_train)
    idx = jax.lax.dynamic_slice(perm, ((step % per_epoch) * self.batch_size,), (self.batch_size,))
    return {"x": data["x_train"][idx], "y": data["y_train"][idx]}

  def train_step(self, s: TrainState, data) -> TrainState:
    batch = self.minibatch(data, s.key, s.step)
    value, params, opt_state = self.opt.step(lambda p: self.batch_loss(p, batch), s.params,
                                             s.opt_state)
    finite = jnp.isfinite(value) & _all_finite(params)
    if self.cfg.divergence_loss > 0:
      finite &= value <= self.cfg.divergence_loss
    active = ~s.done
    take = active & finite
    blew_up = active & ~finite
    return s._replace(
        step=s.step + 1,
        params=_tree_where(take, params, s.params),
        opt_state=_tree_where(take, opt_state, s.opt_state),
        done=s.done | blew_up, diverged=s.diverged | blew_up,
        stop_step=jnp.where(blew_up, s.step, s.stop_step))

  def _metrics_on(self, params, x, y, prefix):
    outputs = self.apply(params, x)
    return {f"{prefix}_loss": jnp.mean(self.loss.per_example(outputs, y)),
            f"{prefix}_acc": jnp.mean(self.accuracy(outputs, y))}

  def log_point(self, s: TrainState, data) -> tuple[TrainState, dict]:
    """Metrics and probes at the current params; then the stop conditions."""
    valid = ~s.done
    m = self._metrics_on(s.params, data["x_train"], data["y_train"], "train")
    if self.has_test:
      m.update(self._metrics_on(s.params, data["x_test"], data["y_test"], "test"))
    m.update(self.opt.metrics(s.opt_state))
    probe_state = dict(s.probe_state)
    key = jax.random.fold_in(jax.random.fold_in(s.key, s.step), 1)
    for i, (name, probe) in enumerate(sorted(self.probes.items())):
      ps, out = probe.apply(s.probe_state[name], s.params, s.opt_state, self.full_batch(data),
                            jax.random.fold_in(key, i))
      probe_state[name] = _tree_where(valid, ps, s.probe_state[name])
      if isinstance(out, dict):
        m.update({f"{name}/{k}": v for k, v in out.items()})
      else:
        m[name] = out
    m = {k: jnp.where(valid, v, jnp.nan).astype(v.dtype) if jnp.issubdtype(v.dtype, jnp.floating)
         else v for k, v in m.items()}
    stop = valid & ((s.step >= self.cfg.steps) | goal_reached(self.cfg, m))
    s = s._replace(probe_state=probe_state, done=s.done | stop,
                   stop_step=jnp.where(stop, s.step, s.stop_step))
    return s, m

  def interval(self, s: TrainState, data) -> tuple[TrainState, dict]:
    s, _ = jax.lax.scan(lambda c, _: (self.train_step(c, data), None), s, None,
                        length=self.cfg.log_every)
    return self.log_point(s, data)

  def init_member(self, init_params, seed, hparams, scale, data) -> TrainState:
    """A member's initial state from its seed, optimizer hyperparameters and init-scale ratio."""
    key_init, key_run = jax.random.split(jax.random.PRNGKey(seed))
    params = jax.tree.map(lambda p: p * scale.astype(p.dtype), init_params(key_init))
    opt_state = self.opt.start(params, key_run, hparams)
    return TrainState(
        step=jnp.int32(0), params=params, opt_state=opt_state,
        probe_state={k: p.init(params, self.full_batch(data))
                     for k, p in sorted(self.probes.items())},
        key=key_run, done=jnp.bool_(False), diverged=jnp.bool_(False), stop_step=jnp.int32(-1))


def layout(cfg, platform: str) -> str:
  """train.members resolved for a platform: 'auto' is 'map' on the CPU, where XLA runs the
  batched matrix products of a vmapped network at about half the throughput of plain ones (so
  a vmapped sweep cost 2.2x more per member than single runs), and 'vmap' elsewhere."""
  if cfg.members != "auto":
    return cfg.members
  return "map" if platform == "cpu" else "vmap"


class Runner:
  """The compiled programs over all members, sharded along the sweep axis.

  The member axis is padded to a multiple of the device count; padding members start `done`
  and are dropped from every output. With the 'map' layout each device runs its members one
  after another (lax.map inside shard_map), each member exactly the program of a single run.
  """

  def __init__(self, program: Program, init_params: Callable, sweep: Sweep, base_seed: int,
               base_init_scale: float = 1.0, devices=None):
    self.program, self.sweep = program, sweep
    devices = devices if devices is not None else jax.devices()
    self.n = sweep.size
    self.n_pad = -(-self.n // len(devices)) * len(devices)
    self.mesh = jax.sharding.Mesh(np.asarray(devices), ("members",))
    self.member_sharding = NamedSharding(self.mesh, P("members"))
    self.buffer_sharding = NamedSharding(self.mesh, P(None, "members"))
    self.replicated = NamedSharding(self.mesh, P())
    self.layout = layout(program.cfg, self.mesh.devices.flat[0].platform)
    self._init_params, self._init_fn = init_params, None
    self._base_seed, self._base_scale = base_seed, base_init_scale
    self.data = distributed.put(program.data, self.replicated)
    self.max_logs = max(1, program.cfg.chunk_steps // program.cfg.log_every)
    self._chunk = jax.jit(self._local(self._chunk_fn, (P("members"), P(), P()),
                                      (P("members"), P(None, "members"))),
                          donate_argnums=(0,),
                          in_shardings=(self.member_sharding, self.replicated, self.replicated),
                          out_shardings=(self.member_sharding, self.buffer_sharding))
    self._log0 = jax.jit(self._local(self._over_members(program.log_point),
                                     (P("members"), P()), (P("members"), P("members"))),
                         in_shardings=(self.member_sharding, self.replicated),
                         out_shardings=(self.member_sharding, self.member_sharding))

  def _over_members(self, fn: Callable) -> Callable:
    """fn(member, data) over the leading member axis of its first argument, in the layout."""
    if self.layout == "vmap":
      return jax.vmap(fn, in_axes=(0, None))
    return lambda members, data: jax.lax.map(lambda m: fn(m, data), members)

  def _local(self, fn: Callable, in_specs, out_specs) -> Callable:
    """fn as it is (vmap: the partitioner splits the batched program over the devices), or
    (map) run by each device on its own members, so that no device waits for another's."""
    if self.layout == "vmap":
      return fn
    return jax.shard_map(fn, mesh=self.mesh, in_specs=in_specs, out_specs=out_specs,
                         check_vma=False)      # no collectives: each device's members alone

  def _pad(self, column: np.ndarray) -> np.ndarray:
    return np.concatenate([column, np.repeat(column[:1], self.n_pad - self.n, axis=0)])

  def _init(self):
    """(the jitted initialization over the members, its arguments)."""
    sweep, opt = self.sweep, self.program.opt
    seeds = self._pad(sweep.column("seed", self._base_seed).astype(np.uint32))
    scales = self._pad(sweep.column("model.init_scale", self._base_scale) / self._base_scale)
    hparams = {h: self._pad(sweep.column(f"opt.{h}", np.nan))
               for h in opt.hparam_names if f"opt.{h}" in sweep.axes}
    if self._init_fn is None:     # one program for every group of a grouped sweep
      init = self._over_members(lambda member, data: self.program.init_member(
          self._init_params, *member, data))
      self._init_fn = jax.jit(lambda sd, hp, sc, data: init((sd, hp, sc), data),
                              out_shardings=self.member_sharding)
    args = distributed.put((seeds, hparams, scales), self.replicated)
    return self._init_fn, args + (self.data,)

  def for_members(self, sweep: Sweep, n_pad: Optional[int] = None) -> "Runner":
    """This runner, its compiled programs included, for other members: at most n_pad of them,
    by default this runner's."""
    other = copy.copy(self)
    other.sweep, other.n = sweep, sweep.size
    other.n_pad = self.n_pad if n_pad is None else n_pad
    if other.n > other.n_pad:
      raise ValueError(f"{other.n} members do not fit a program for {other.n_pad}")
    return other

  def state_bytes_per_member(self) -> int:
    fn, args = self._init()
    return sum(int(np.prod(x.shape[1:])) * x.dtype.itemsize
               for x in jax.tree.leaves(jax.eval_shape(fn, *args)))

  def init_state(self) -> TrainState:
    """Every member's initial state, laid over the devices."""
    fn, args = self._init()
    with jax.default_matmul_precision(self.program.cfg.precision):
      state = fn(*args)
    padding = np.arange(self.n_pad) >= self.n
    return state._replace(done=distributed.put(padding, self.member_sharding))

  def host_template(self) -> TrainState:
    """Zeros with the structure, shapes and dtypes of to_host(init_state()), from tracing
    alone: what a checkpoint is restored into, without compiling or running the
    initialization (a resumed or finished run never needs it)."""
    fn, args = self._init()
    with jax.default_matmul_precision(self.program.cfg.precision):
      shapes = jax.eval_shape(fn, *args)
    return jax.tree.map(lambda x: np.zeros((self.n,) + x.shape[1:], x.dtype), shapes)

  def _chunk_fn(self, state: TrainState, data, n_logs: jax.Array):
    interval = self._over_members(self.program.interval)
    shapes = jax.eval_shape(interval, state, data)[1]
    buf = jax.tree.map(lambda x: jnp.zeros((self.max_logs,) + x.shape, x.dtype), shapes)

    def body(i, carry):
      s, b = carry
      s, m = interval(s, data)
      return s, jax.tree.map(lambda bb, mm: bb.at[i].set(mm), b, m)

    return jax.lax.fori_loop(0, n_logs, body, (state, buf))

  def log_initial(self, state: TrainState) -> tuple[TrainState, dict]:
    """Metrics and probes at step 0, as one log row."""
    with jax.default_matmul_precision(self.program.cfg.precision):
      state, m = self._log0(state, self.data)
    return state, {k: distributed.fetch(v)[None, :self.n] for k, v in m.items()}

  def run_chunk(self, state: TrainState, n_logs: int) -> tuple[TrainState, dict]:
    """n_logs * log_every steps; returns the state and metrics [n_logs, member, ...]."""
    if not 1 <= n_logs <= self.max_logs:
      raise ValueError(f"n_logs={n_logs} must lie in [1, {self.max_logs}]")
    with jax.default_matmul_precision(self.program.cfg.precision):
      state, buf = self._chunk(state, self.data, np.int32(n_logs))
    return state, {k: distributed.fetch(v)[:n_logs, :self.n] for k, v in buf.items()}

  def to_host(self, state: TrainState) -> TrainState:
    """The real members' state as host numpy arrays (for checkpoints)."""
    return jax.tree.map(lambda x: distributed.fetch(x)[:self.n], state)

  def from_host(self, host_state: TrainState) -> TrainState:
    """Inverse of to_host: pad, mark padding done, and lay over the devices."""
    padded = jax.tree.map(lambda x: self._pad(np.asarray(x)), host_state)
    padded = padded._replace(done=np.asarray(padded.done) | (np.arange(self.n_pad) >= self.n))
    return distributed.put(padded, self.member_sharding)

  def plan(self, step: int, kept: list[int]) -> int:
    """Log points in the next chunk: up to the chunk size, never past a kept step or the end."""
    le = self.program.cfg.log_every
    nxt = [k for k in kept if k > step]
    end = min([step + self.max_logs * le] + nxt[:1])
    return max(1, (end - step) // le)


def group_size(runner: "Runner", n: int) -> int:
  """train.members_per_program = 0 for a sweep of n members on `runner`'s devices.

  The map layout: one member per device. Each device then runs exactly a single run's program
  on one state, where a program over several members slices and restacks the state of each at
  every log interval (measured on the CPU, benchmarks/train_speed.py: a member of a 16-member
  sweep cost 1.01x a single run in groups of one, 1.07x in one program).
  The vmap layout: every member in one program when their states take at most a quarter of the
  device's memory (a GPU's allocator limit, the host's memory for the CPU), else as many as do.
  The activations of a step are not counted: where a program still runs out of memory, set
  train.members_per_program."""
  devices = runner.mesh.devices
  if runner.layout == "map":
    return int(min(n, devices.size))
  try:
    limit = devices.flat[0].memory_stats()["bytes_limit"]
  except Exception:           # the CPU backend keeps no statistics
    limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  return int(min(n, max(1, limit // 4 // max(runner.state_bytes_per_member(), 1))))


class GroupedRunner:
  """A sweep larger than one program: consecutive groups of `group` members through the same
  compiled programs (a Runner for `group` members), every chunk visiting every group, so the run
  directory, the metrics and resuming are those of one program. Its state lives on the host
  (numpy leaves over all members); each group is laid over the devices for its chunk."""

  def __init__(self, runner: Runner, group: int):
    self.program, self.sweep, self.n = runner.program, runner.sweep, runner.n
    self.max_logs, self.data, self.layout = runner.max_logs, runner.data, runner.layout
    self.plan = runner.plan
    self._bounds = [(i, min(i + group, self.n)) for i in range(0, self.n, group)]
    groups = [Sweep(runner.sweep.axes, runner.sweep.members[a:b]) for a, b in self._bounds]
    devices = runner.mesh.devices.size
    self._first = runner.for_members(groups[0], n_pad=-(-group // devices) * devices)
    self._runners = [self._first.for_members(g) for g in groups]

  def _each(self, state, fn):
    """fn(runner, device state of its group) -> (device state, metrics) for every group; the
    states and metrics joined along the member axis."""
    states, metrics = [], []
    for r, (a, b) in zip(self._runners, self._bounds):
      part = r.from_host(jax.tree.map(lambda x: x[a:b], state))
      part, m = fn(r, part)
      states.append(r.to_host(part))
      metrics.append(m)
    joined = jax.tree.map(lambda *xs: np.concatenate(xs), *states)
    return joined, {k: np.concatenate([m[k] for m in metrics], axis=1) for k in metrics[0]}

  def init_state(self) -> TrainState:
    parts = [r.to_host(r.init_state()) for r in self._runners]
    return jax.tree.map(lambda *xs: np.concatenate(xs), *parts)

  def host_template(self) -> TrainState:
    return jax.tree.map(lambda x: np.zeros((self.n,) + x.shape[1:], x.dtype),
                        self._first.host_template())

  def log_initial(self, state: TrainState) -> tuple[TrainState, dict]:
    return self._each(state, lambda r, s: r.log_initial(s))

  def run_chunk(self, state: TrainState, n_logs: int) -> tuple[TrainState, dict]:
    return self._each(state, lambda r, s: r.run_chunk(s, n_logs))

  def to_host(self, state: TrainState) -> TrainState:
    return state

  def from_host(self, host_state: TrainState) -> TrainState:
    return jax.tree.map(np.asarray, host_state)
