"""The run directory: the trajectory on disk, written so that a kill at any moment is harmless.

    WORKDIR/config.json          resolved config, command line, git commit, versions, devices,
                                 sweep; each resume's step, commit, command and devices
    WORKDIR/metrics.jsonl        one line per log point: {"step": s, name: [value per member]}
    WORKDIR/summary.json         per member: sweep coordinates, stop step, diverged, last metrics
    WORKDIR/checkpoints/latest/  orbax: the whole training state (resume)
    WORKDIR/checkpoints/kept/    orbax: params and optimizer state at the kept steps (analysis)
    WORKDIR/figures/

Order of writes per chunk: metrics are appended and fsynced, then the checkpoint is saved
(atomically, by orbax). On resume the metric lines past the checkpoint's step are dropped and
recomputed, so a kill between the two writes, or in the middle of either, loses nothing.
"""
import json
import os
import subprocess
import sys
import time
from typing import Any, Callable

import jax
import numpy as np
import orbax.checkpoint as ocp

CONFIG, METRICS, SUMMARY = "config.json", "metrics.jsonl", "summary.json"


class ConfigMismatch(RuntimeError):
  """An existing run directory holds a run with a different config."""


def write_atomic(path: str, write: Callable[[Any], None]) -> None:
  """write(f) into a temporary binary file, synced, then renamed to path: a kill leaves the
  old file or the new one, never a torn one."""
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "wb") as f:
    write(f)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def write_json_atomic(path: str, obj: Any) -> None:
  text = json.dumps(obj, indent=1, default=_json_default)
  write_atomic(path, lambda f: f.write(text.encode()))


def _json_default(x):
  if isinstance(x, np.ndarray):
    return x.tolist()
  if isinstance(x, np.generic):
    return x.item()
  if isinstance(x, tuple):
    return list(x)
  raise TypeError(f"cannot write {type(x)} to JSON")


def normalize(cfg_dict: dict) -> dict:
  """The config as JSON sees it (tuples become lists), for comparisons."""
  return json.loads(json.dumps(cfg_dict, default=_json_default))


_ABSENT = "<absent>"


def _diff(old: Any, new: Any, prefix: str = "", defaults: Any = None) -> list[str]:
  """The fields that differ, as 'path: old -> new'.

  A field the stored config lacks (the run was created before the field existed) is no
  difference when its new value is the field's default: defaults keep the earlier behavior.
  """
  if isinstance(old, dict) and isinstance(new, dict):
    defaults = defaults if isinstance(defaults, dict) else {}
    out = []
    for k in sorted(set(old) | set(new)):
      if k not in old and k in defaults and new.get(k, _ABSENT) == defaults[k]:
        continue
      out += _diff(old.get(k, _ABSENT), new.get(k, _ABSENT), f"{prefix}{k}.", defaults.get(k))
    return out
  return [] if old == new else [f"{prefix[:-1]}: {old!r} -> {new!r}"]


def _git_commit() -> str:
  try:
    here = os.path.dirname(os.path.abspath(__file__))
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                          text=True, timeout=5).stdout.strip() or "unknown"
  except (OSError, subprocess.SubprocessError):
    return "unknown"


class RunDir:
  """One run directory; `open` creates it or checks that it holds the same config."""

  def __init__(self, workdir: str):
    self.path = os.path.abspath(workdir)
    self._latest = self._kept = None
    self.previous_config = self._changed = None

  def file(self, name: str) -> str:
    return os.path.join(self.path, name)

  # ---- config ----------------------------------------------------------------------------
  def open(self, cfg_dict: dict, sweep, defaults: dict | None = None,
           may_change: tuple[str, ...] = ()) -> bool:
    """Creates the directory or checks it. Returns True when there is a run to resume.

    `defaults` (the config's fields at their default values) lets a run resume under code that
    has added fields since it was created, as long as the new fields keep their defaults.
    Fields in `may_change` (dotted paths) may differ from the stored config: the config it
    would replace is then left in `self.previous_config`, and `accept_changes()` (once the
    caller has checked the change against the run's state) writes the new one, recording the
    change under "changes" in config.json.
    """
    cfg_dict = normalize(cfg_dict)
    path = self.file(CONFIG)
    self.previous_config = self._changed = None
    if os.path.exists(path):
      with open(path) as f:
        stored = json.load(f)
      old = stored["config"]
      diff = _diff(old, cfg_dict, defaults=normalize(defaults or {}))
      refused = [d for d in diff if d.split(":")[0] not in may_change]
      if refused:
        raise ConfigMismatch(
            f"{self.path} already holds a run with a different config:\n  " +
            "\n  ".join(refused) + "\nTo resume it, run the same command as before (see "
            f"{path}); to start afresh, pass a new --workdir or delete {self.path}.")
      if diff:
        self.previous_config = old
        stored["changes"] = stored.get("changes", []) + [dict(
            fields=diff, command=sys.argv, git_commit=_git_commit(),
            at=time.strftime("%Y-%m-%d %H:%M:%S"))]
        stored["config"] = cfg_dict
        self._changed = stored
      return True
    os.makedirs(self.path, exist_ok=True)
    write_json_atomic(path, dict(
        config=cfg_dict, command=sys.argv, git_commit=_git_commit(),
        jax_version=jax.__version__, python=sys.version.split()[0],
        devices=[str(d) for d in jax.devices()], created=time.strftime("%Y-%m-%d %H:%M:%S"),
        sweep=dict(axes=list(sweep.axes), members=[dict(m) for m in sweep.members])))
    return False

  def accept_changes(self) -> None:
    """Writes the config that `open` found changed in `may_change` fields (no-op otherwise)."""
    if self._changed is not None:
      write_json_atomic(self.file(CONFIG), self._changed)
      self._changed = None

  def record_resume(self, step: int) -> None:
    """Appends to config.json's "resumes" the step a run resumed at and the code, command and
    devices it resumed under (they may differ from those that created it)."""
    with open(self.file(CONFIG)) as f:
      stored = json.load(f)
    stored["resumes"] = stored.get("resumes", []) + [dict(
        step=int(step), git_commit=_git_commit(), command=sys.argv,
        jax_version=jax.__version__, devices=[str(d) for d in jax.devices()],
        at=time.strftime("%Y-%m-%d %H:%M:%S"))]
    write_json_atomic(self.file(CONFIG), stored)

  def metrics_at(self, step: int) -> dict[str, np.ndarray] | None:
    """The logged metrics at `step` (name -> value per member), or None if not logged."""
    path = self.file(METRICS)
    if not os.path.exists(path):
      return None
    with open(path) as f:
      for line in f:
        row = json.loads(line) if line.endswith("\n") else {}
        if row.get("step") == step:
          return {k: np.asarray(v) for k, v in row.items() if k != "step"}
    return None

  # ---- metrics ---------------------------------------------------------------------------
  def append_metrics(self, steps: np.ndarray, metrics: dict[str, np.ndarray]) -> None:
    """Appends one line per log point; metrics[name] is [log point, member, ...]."""
    lines = []
    for i, step in enumerate(steps):
      row = {"step": int(step)}
      row.update({k: v[i].tolist() for k, v in metrics.items()})
      lines.append(json.dumps(row))
    with open(self.file(METRICS), "a") as f:
      f.write("\n".join(lines) + "\n")
      f.flush()
      os.fsync(f.fileno())

  def truncate_metrics(self, last_step: int) -> None:
    """Keeps the complete lines with step <= last_step (drops a torn last line too)."""
    path = self.file(METRICS)
    if not os.path.exists(path):
      return
    keep = []
    with open(path) as f:
      for line in f:
        if not line.endswith("\n"):
          break
        try:
          if json.loads(line)["step"] <= last_step:
            keep.append(line)
        except (ValueError, KeyError):
          break
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
      f.writelines(keep)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)

  # ---- checkpoints -----------------------------------------------------------------------
  def _managers(self):
    if self._latest is None:
      opts = dict(enable_async_checkpointing=False, create=True)
      self._latest = ocp.CheckpointManager(
          self.file("checkpoints/latest"), options=ocp.CheckpointManagerOptions(
              max_to_keep=2, **opts))
      self._kept = ocp.CheckpointManager(
          self.file("checkpoints/kept"), options=ocp.CheckpointManagerOptions(
              max_to_keep=None, **opts))
    return self._latest, self._kept

  @staticmethod
  def _leaves(tree) -> dict[str, np.ndarray]:
    return {f"leaf_{i:05d}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(tree))}

  def save_latest(self, step: int, host_state) -> None:
    latest, _ = self._managers()
    latest.save(step, args=ocp.args.StandardSave(self._leaves(host_state)), force=True)
    latest.wait_until_finished()

  def latest_step(self) -> int | None:
    return self._managers()[0].latest_step()

  def restore_latest(self, template):
    """The latest state, with the structure (and leaf dtypes) of template."""
    latest, _ = self._managers()
    step = latest.latest_step()
    leaves, treedef = jax.tree.flatten(template)
    target = self._leaves(leaves)
    got = latest.restore(step, args=ocp.args.StandardRestore(target))
    return step, jax.tree.unflatten(treedef, [np.asarray(got[k]) for k in sorted(got)])

  def save_kept(self, step: int, host_state) -> None:
    """Params (as the model's nested dict) and optimizer state leaves at a kept step."""
    _, kept = self._managers()
    if step in kept.all_steps():
      return
    item = {"params": jax.tree.map(np.asarray, host_state.params),
            "opt_state": self._leaves(host_state.opt_state)}
    kept.save(step, args=ocp.args.StandardSave(item), force=True)
    kept.wait_until_finished()

  def close(self) -> None:
    for m in (self._latest, self._kept):
      if m is not None:
        m.close()
    self._latest = self._kept = None
