"""load(workdir): a run directory back as arrays.

    traj = trajectory.load("/tmp/quickstart")
    traj.steps                  # [log point]
    traj.metrics["train_loss"]  # [member, log point] (NaN after a member stopped or diverged)
    traj.coords["opt.learning_rate"]   # [member] sweep coordinate of each member
    traj.kept_steps             # steps whose parameters were kept
    traj.params(step)           # params at a kept step, each leaf [member, ...]
    traj.params(step, member=0) # one member's params (jax arrays)

and what made it, rebuilt from config.json (no training, no probes):

    traj.model()                # the dynamics.models Model: init, apply, config
    traj.loss_fn()              # loss_fn(params, batch) -> mean training loss (what curvature
                                # code differentiates)
    traj.batch()                # the full training batch {'x', 'y'} in the run's dtype
    traj.dataset()              # the Dataset (its info: e.g. every modular pair, the split)
    traj.opt_state(step, member)  # the optimizer state kept at a step, as the optimizer's pytree
"""
import dataclasses
import json
import os
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dynamics import experiment, runs


@dataclasses.dataclass
class Trajectory:
  """A run directory as arrays (see module docstring)."""
  workdir: str
  config: dict
  steps: np.ndarray
  metrics: dict[str, np.ndarray]
  coords: dict[str, np.ndarray]
  members: list[dict[str, Any]]
  stop_step: np.ndarray
  diverged: np.ndarray
  kept_steps: list[int]
  damaged_steps: list[int] = dataclasses.field(default_factory=list)
  _built: dict = dataclasses.field(default_factory=dict, repr=False)

  @property
  def n_members(self) -> int:
    return len(self.members)

  def label(self, i: int) -> str:
    """A short legend label for member i, from its sweep coordinates."""
    return ", ".join(f"{k.split('.')[-1]}={v:g}" for k, v in self.members[i].items()) or "run"

  def params(self, step: int, member: int | None = None) -> dict:
    """Params kept at `step`: leaves [member, ...] (numpy), or member `member`'s params as jax
    arrays; KeyError naming the kept steps when `step` was not kept."""
    params = self._restore(step)["params"]
    return params if member is None else jax.tree.map(lambda v: jnp.asarray(v[member]), params)

  # ---- what made the run, rebuilt from its config ------------------------------------------
  def _problem(self):
    if "problem" not in self._built:
      cfg = experiment.resolve(ml_collections.ConfigDict(self.config))
      experiment.enable_x64_if_needed(cfg)
      self._built["problem"] = experiment.build_problem(cfg)
    return self._built["problem"]

  def model(self):
    """The run's model (dynamics.models.Model: init, apply, config)."""
    return self._problem()[2]

  def dataset(self):
    """The run's dataset (dynamics.data.Dataset: arrays as built, and info)."""
    return self._problem()[1]

  def problem(self):
    """The run's dynamics.train.Problem: apply, loss, optimizer, data in the run's dtype."""
    return self._problem()[0]

  def loss_fn(self):
    """loss_fn(params, batch) -> the mean training loss, as training computed it."""
    return self._problem()[0].batch_loss

  def batch(self) -> dict:
    """The full training batch {'x', 'y'} (jax arrays, the run's dtype)."""
    return jax.tree.map(jnp.asarray, self._problem()[0].full_batch())

  def opt_state(self, step: int, member: int = 0):
    """The optimizer state kept at `step` for one member, in the optimizer's own pytree."""
    opt = self._problem()[0].opt
    template = jax.eval_shape(opt.init, self.params(step, member))
    leaves = [jnp.asarray(x[member]) for x in self.opt_state_leaves(step)]
    return jax.tree.unflatten(jax.tree.structure(template), leaves)

  def opt_state_leaves(self, step: int) -> list[np.ndarray]:
    """Optimizer-state leaves at a kept step, in jax.tree.leaves order of the OptState."""
    got = self._restore(step)["opt_state"]
    return [np.asarray(got[k]) for k in sorted(got)]

  def _restore(self, step: int) -> dict:
    import orbax.checkpoint as ocp
    if step in self.damaged_steps:
      raise KeyError(f"the checkpoint kept at step {step} is damaged; intact kept steps: "
                     f"{self.kept_steps}")
    if step not in self.kept_steps:
      raise KeyError(f"step {step} was not kept; kept steps: {self.kept_steps}")
    path = os.path.join(self.workdir, "checkpoints", "kept", str(step))
    with ocp.StandardCheckpointer() as ckpt:
      return ckpt.restore(os.path.join(path, "default"))


def _read_metrics(rd: runs.RunDir, log_every: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
  lines, problem = rd.read_log(log_every)
  if problem:
    warnings.warn(f"{rd.file(runs.METRICS)}: {problem}; read up to the line before it (a "
                  "launch of the same command repairs the log)", stacklevel=3)
  rows = [json.loads(line) for line in lines]
  steps = np.asarray([r["step"] for r in rows], dtype=np.int64)
  names = [k for k in (rows[0] if rows else {}) if k != "step"]
  # [log, member, ...] as read, returned as [member, log, ...]
  return steps, {k: np.moveaxis(np.asarray([r[k] for r in rows], dtype=np.float64), 0, 1)
                 for k in names}


def _kept_steps(rd: runs.RunDir) -> tuple[list[int], list[int]]:
  """(intact kept steps, damaged ones), each damaged one reported in one line."""
  kept_dir = rd.file("checkpoints/kept")
  steps = sorted(int(d) for d in os.listdir(kept_dir) if d.isdigit()) if os.path.isdir(
      kept_dir) else []
  damaged = [s for s in steps if not rd.checkpoints.intact("kept", s)]
  for s in damaged:
    warnings.warn(f"{rd.path}: the checkpoint kept at step {s} is damaged (its files do not "
                  "match their digest); the other steps load", stacklevel=3)
  return [s for s in steps if s not in damaged], damaged


def load(workdir: str) -> Trajectory:
  """Reads config.json, metrics.jsonl, summary.json and the list of kept checkpoints.

  Raises FileNotFoundError saying whether the directory is missing, empty or not a run
  directory, and ValueError for a run directory without a logged step yet. A torn log tail or a
  damaged kept checkpoint is reported (a warning) and the rest is read.
  """
  workdir = os.path.abspath(workdir)
  if not os.path.isdir(workdir):
    raise FileNotFoundError(f"{workdir} does not exist" if not os.path.exists(workdir) else
                            f"{workdir} is a file, not a run directory")
  cfg_path = os.path.join(workdir, runs.CONFIG)
  if not os.path.exists(cfg_path):
    raise FileNotFoundError(f"{workdir} is empty: not a run directory (no {runs.CONFIG})"
                            if not os.listdir(workdir) else
                            f"{workdir} is not a run directory (no {runs.CONFIG})")
  with open(cfg_path) as f:
    meta = json.load(f)
  rd = runs.RunDir(workdir)
  steps, metrics = _read_metrics(rd, meta["config"]["train"]["log_every"])
  if not steps.size:
    raise ValueError(f"{workdir} holds a run that has logged nothing yet (its {runs.METRICS} is "
                     "missing or empty: stopped before its first log point?); run the same "
                     "command to resume it")
  members = meta["sweep"]["members"]
  coords = {a: np.asarray([m[a] for m in members]) for a in meta["sweep"]["axes"]}
  stop = np.full(len(members), -1)
  diverged = np.zeros(len(members), bool)
  summary_path = os.path.join(workdir, runs.SUMMARY)
  if os.path.exists(summary_path):
    with open(summary_path) as f:
      summary = json.load(f)["members"]
    stop = np.asarray([m["stop_step"] for m in summary])
    diverged = np.asarray([m["diverged"] for m in summary])
  kept, damaged = _kept_steps(rd)
  return Trajectory(workdir, meta["config"], steps, metrics, coords, members, stop, diverged,
                    kept, damaged_steps=damaged)
