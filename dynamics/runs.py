"""The run directory: the trajectory on disk, written so that a kill at any moment is harmless.
Its files are listed in docs/architecture.md ("The run directory"); metrics.jsonl holds one line
per log point, {"step": s, name: [value per member]}, and the lock the host, pid and start of
the launch writing the directory.

One writer at a time: a launch holds an exclusive lock on WORKDIR/lock (flock) while it runs,
so a second launch stops at once, naming the first; a lock left by a process that is gone is
taken over. Order of writes per chunk: metrics are appended and fsynced, then the checkpoint
is saved (atomically, by orbax) and its digest written. On resume every line of the log is
checked: the run restarts from the newest intact checkpoint at or before the last intact log
point and recomputes the rest, so a kill between the writes, in the middle of either, a torn
or damaged log tail or a damaged checkpoint loses nothing and leaves every log step once.
"""
import fcntl
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any, Callable, Optional

import jax
import numpy as np

from dynamics.checkpoints import Checkpoints, WriteFailed, writing  # noqa: F401 (re-exported)

CONFIG, METRICS, SUMMARY, LOCK = "config.json", "metrics.jsonl", "summary.json", "lock"


class ConfigMismatch(RuntimeError):
  """An existing run directory holds a run with a different config."""


class RunDirError(RuntimeError):
  """A run directory that cannot be used: in use by another launch, or not a directory."""


def check_workdir(workdir: Optional[str]) -> str:
  """The absolute path of a usable run directory (existing, or creatable where it is), or a
  RunDirError saying in one line why not. Touches nothing."""
  if not workdir:
    raise RunDirError("--workdir is empty; give the run's directory (created if missing)")
  path = os.path.abspath(workdir)
  if os.path.exists(path) and not os.path.isdir(path):
    raise RunDirError(f"--workdir={workdir} is a file, not a directory")
  parent = path
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise RunDirError(f"--workdir={workdir} cannot be created: {parent} is a file")
  if not os.access(parent, os.W_OK | os.X_OK):
    raise RunDirError(f"--workdir={workdir} is not writable ({parent} does not allow writing)")
  return path


def write_atomic(path: str, write: Callable[[Any], None]) -> None:
  """write(f) into a temporary binary file, synced, then renamed to path: a kill leaves the
  old file or the new one, never a torn one."""
  tmp = f"{path}.tmp{os.getpid()}"
  try:
    with writing(path), open(tmp, "wb") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  os.replace(tmp, path)


def write_json_atomic(path: str, obj: Any) -> None:
  text = json.dumps(obj, indent=1, default=_json_default)
  write_atomic(path, lambda f: f.write(text.encode()))


def _json_default(x):
  if isinstance(x, (np.ndarray, np.generic)):
    return x.tolist()
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


def _who(holder: str) -> str:
  try:
    h = json.loads(holder)
    return f"pid {h['pid']} on {h['host']}, started {h['started']}"
  except (ValueError, KeyError, TypeError):
    return "unknown process"


def git_commit() -> str:
  try:
    here = os.path.dirname(os.path.abspath(__file__))
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                          text=True, timeout=5).stdout.strip() or "unknown"
  except (OSError, subprocess.SubprocessError):
    return "unknown"


def train_seconds(workdir: str) -> Optional[float]:
  """The seconds spent training a run, over all its launches, as summary.json recorded them at
  its last checkpoint (None: not recorded, or the file unreadable)."""
  try:
    with open(os.path.join(workdir, SUMMARY)) as f:
      seconds = json.load(f).get("train_seconds")
  except (OSError, ValueError, AttributeError):
    return None
  return float(seconds) if isinstance(seconds, (int, float)) else None


class RunDir:
  """One run directory; `open` creates it or checks that it holds the same config."""

  def __init__(self, workdir: str):
    self.path = check_workdir(workdir)
    self.checkpoints = Checkpoints(self.file("checkpoints"))
    self.previous_config = self._changed = None
    self._lock_fd = None

  def file(self, name: str) -> str:
    return os.path.join(self.path, name)

  # ---- one writer ------------------------------------------------------------------------
  def acquire(self, log: Callable = print) -> None:
    """Takes the directory's exclusive lock, or raises RunDirError naming the launch that holds
    it. A lock file left by a launch that is gone (killed) is taken over, with a line."""
    os.makedirs(self.path, exist_ok=True)
    fd = os.open(self.file(LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    holder = os.read(fd, 4096).decode(errors="replace").strip()
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      os.close(fd)
      raise RunDirError(f"{self.path} is in use by another launch ({_who(holder)}); a run "
                        "directory has one writer at a time: wait for it, or stop it") from None
    if holder:
      log(f"taking over the lock of {self.path} from a launch that is gone ({_who(holder)})")
    me = json.dumps(dict(host=socket.gethostname(), pid=os.getpid(),
                         started=time.strftime("%Y-%m-%d %H:%M:%S")))
    os.ftruncate(fd, 0)
    os.pwrite(fd, me.encode(), 0)
    os.fsync(fd)
    self._lock_fd = fd

  def release(self) -> None:
    """Empties and releases the lock (an empty lock file is a free directory)."""
    if self._lock_fd is not None:
      os.ftruncate(self._lock_fd, 0)
      fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
      os.close(self._lock_fd)
      self._lock_fd = None

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
            fields=diff, command=sys.argv, git_commit=git_commit(),
            at=time.strftime("%Y-%m-%d %H:%M:%S"))]
        stored["config"] = cfg_dict
        self._changed = stored
      return True
    os.makedirs(self.path, exist_ok=True)
    write_json_atomic(path, dict(
        config=cfg_dict, command=sys.argv, git_commit=git_commit(),
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
        step=int(step), git_commit=git_commit(), command=sys.argv,
        jax_version=jax.__version__, devices=[str(d) for d in jax.devices()],
        at=time.strftime("%Y-%m-%d %H:%M:%S"))]
    write_json_atomic(self.file(CONFIG), stored)

  def read_log(self, log_every: int) -> tuple[list[str], Optional[str]]:
    """The intact lines of metrics.jsonl and what is wrong after them (None: nothing).

    A line is intact when it is complete (newline-terminated), readable and holds the next
    log step (0, log_every, 2 log_every, ...: each log step once, in order); reading stops at
    the first line that is not.
    """
    path = self.file(METRICS)
    if not os.path.exists(path):
      return [], None
    with open(path, "rb") as f:
      *lines, tail = f.read().split(b"\n")
    good = []
    for i, raw in enumerate(lines):
      want = len(good) * log_every
      try:
        step = json.loads(raw)["step"]
      except (ValueError, KeyError, TypeError):
        return good, f"line {i + 1} is unreadable"
      if step != want:
        return good, f"line {i + 1} holds step {step} where step {want} belongs"
      good.append(raw.decode() + "\n")
    return good, (f"its last line ({len(lines) + 1}) is torn" if tail else None)

  def metrics_at(self, step: int, log_every: int) -> dict[str, np.ndarray] | None:
    """The logged metrics at `step` (name -> value per member), or None if not logged."""
    for line in self.read_log(log_every)[0]:
      row = json.loads(line)
      if row["step"] == step:
        return {k: np.asarray(v) for k, v in row.items() if k != "step"}
    return None

  # ---- metrics ---------------------------------------------------------------------------
  def append_metrics(self, steps: np.ndarray, metrics: dict[str, np.ndarray]) -> None:
    """Appends one line per log point; metrics[name] is [log point, member, ...]."""
    lines = [json.dumps({"step": int(step), **{k: v[i].tolist() for k, v in metrics.items()}})
             for i, step in enumerate(steps)]
    with writing(self.file(METRICS)), open(self.file(METRICS), "a") as f:
      f.write("\n".join(lines) + "\n")
      f.flush()
      os.fsync(f.fileno())

  def truncate_metrics(self, last_step: int, log_every: int) -> None:
    """Keeps the intact lines with step <= last_step (see read_log)."""
    keep = [l for l in self.read_log(log_every)[0] if json.loads(l)["step"] <= last_step]
    write_atomic(self.file(METRICS), lambda f: f.write("".join(keep).encode()))

  def close(self) -> None:
    self.checkpoints.close()
