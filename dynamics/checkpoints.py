"""Checkpoints of a run directory, each with a digest so that a damaged one is found, not used.

    WORKDIR/checkpoints/latest/STEP/    orbax: the whole training state (resume); the two newest
    WORKDIR/checkpoints/kept/STEP/      orbax: params and optimizer state at the kept steps
    WORKDIR/checkpoints/digests/        KIND-STEP.json: the sha256 of every file of a checkpoint,
                                        written (atomically) after orbax finished it

A checkpoint is intact when its files hash to its digest. One without a digest was cut off
between orbax's save and the digest (a kill): it is not trusted either, except in a run
directory written before digests existed (no digests/ folder), whose checkpoints are read as
they are.
"""
import contextlib
import hashlib
import json
import logging
import os
from typing import Callable, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

DIGESTS = "digests"


class WriteFailed(RuntimeError):
  """A file of the run directory could not be written (disk full, file-size limit, ...)."""


def write_error(e: BaseException) -> Optional[str]:
  """The operating system's reason when `e` is a failed write (orbax reports those as
  ValueErrors carrying the errno), else None."""
  if isinstance(e, OSError):
    return e.strerror or str(e)
  text = str(e)
  reasons = ("No space left on device", "File too large", "Disk quota exceeded",
             "Read-only file system", "Permission denied")
  return next((r for r in reasons if r in text),
              "an operating-system error" if "os_error_code" in text else None)


@contextlib.contextmanager
def quiet_orbax():
  """Keeps orbax's own error log (a traceback per failed thread) quiet inside the block: the
  callers report the failure in one line."""
  absl_logger = logging.getLogger("absl")
  level = absl_logger.level
  absl_logger.setLevel(logging.CRITICAL)
  try:
    yield
  finally:
    absl_logger.setLevel(level)


@contextlib.contextmanager
def writing(path: str):
  """Turns a failed write inside the block into WriteFailed naming `path`."""
  try:
    with quiet_orbax():
      yield
  except Exception as e:  # noqa: BLE001  (re-raised unless it is a failed write)
    reason = write_error(e)
    if reason is None:
      raise
    raise WriteFailed(f"could not write {path}: {reason}") from None


def digest_dir(path: str) -> dict[str, str]:
  """{relative path: sha256} of every file below `path`."""
  out = {}
  for root, _, files in os.walk(path):
    for name in sorted(files):
      full = os.path.join(root, name)
      h = hashlib.sha256()
      with open(full, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
          h.update(block)
      out[os.path.relpath(full, path)] = h.hexdigest()
  return out


def leaves(tree) -> dict[str, np.ndarray]:
  return {f"leaf_{i:05d}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(tree))}


class Checkpoints:
  """The `latest` (resume) and `kept` (analysis) checkpoints of one run directory."""

  def __init__(self, root: str):
    self.root = root
    self._managers = None

  def _dir(self, kind: str, step: int) -> str:
    return os.path.join(self.root, kind, str(step))

  def _digest_file(self, kind: str, step: int) -> str:
    return os.path.join(self.root, DIGESTS, f"{kind}-{step}.json")

  def managers(self):
    if self._managers is None:
      # process 0 alone writes and reads the checkpoints of a multi-process run (of host
      # arrays that hold every member), so orbax must not wait for the other processes; and
      # orbax creates no directories for a subset of processes, so they are made here
      solo = {} if jax.process_count() == 1 else dict(multiprocessing_options=(
          ocp.options.MultiprocessingOptions(primary_host=0, active_processes={0})))
      for kind in ("latest", "kept"):
        os.makedirs(os.path.join(self.root, kind), exist_ok=True)
      self._managers = {kind: ocp.CheckpointManager(
          os.path.join(self.root, kind), options=ocp.CheckpointManagerOptions(
              max_to_keep=keep, enable_async_checkpointing=False, create=False, **solo))
          for kind, keep in (("latest", 2), ("kept", None))}
    return self._managers

  def _write_digest(self, kind: str, step: int) -> None:
    from dynamics.runs import write_json_atomic      # (runs imports this module)
    os.makedirs(os.path.join(self.root, DIGESTS), exist_ok=True)
    write_json_atomic(self._digest_file(kind, step), digest_dir(self._dir(kind, step)))

  def _save(self, kind: str, step: int, item: dict) -> None:
    manager = self.managers()[kind]
    with writing(self._dir(kind, step)):
      if step in manager.all_steps():     # damaged, or from a future the run left behind
        manager.delete(step)
      manager.save(step, args=ocp.args.StandardSave(item), force=True)
      manager.wait_until_finished()
      self._write_digest(kind, step)
    for name in os.listdir(os.path.join(self.root, DIGESTS)):   # digests of deleted steps
      k, _, s = name[:-5].rpartition("-")
      if k == kind and s.isdigit() and int(s) not in manager.all_steps():
        os.remove(os.path.join(self.root, DIGESTS, name))

  def save_latest(self, step: int, host_state) -> None:
    self._save("latest", step, leaves(host_state))

  def save_kept(self, step: int, host_state) -> None:
    """Params (as the model's nested dict) and optimizer state leaves at a kept step."""
    if step in self.managers()["kept"].all_steps() and self.intact("kept", step):
      return
    self._save("kept", step, {"params": jax.tree.map(np.asarray, host_state.params),
                              "opt_state": leaves(host_state.opt_state)})

  def discard_after(self, step: int) -> None:
    """Deletes the `latest` checkpoints past `step`: a run resumed (or restarted) from `step`
    leaves them behind, and they must not outrank what it saves next."""
    latest = self.managers()["latest"]
    for s in latest.all_steps():
      if s > step:
        latest.delete(s)

  def intact(self, kind: str, step: int) -> bool:
    """Whether the checkpoint's files match its digest (see the module docstring)."""
    path = self._digest_file(kind, step)
    if not os.path.exists(path):
      return not os.path.isdir(os.path.join(self.root, DIGESTS))    # written before digests
    try:
      with open(path) as f:
        want = json.load(f)
    except (OSError, ValueError):
      return False
    return digest_dir(self._dir(kind, step)) == want

  def adopt(self) -> None:
    """Writes digests for the checkpoints of a run directory made before digests existed, so
    that its old checkpoints stay trusted once new ones have digests."""
    if not os.path.isdir(os.path.join(self.root, DIGESTS)):
      for kind in ("latest", "kept"):
        for step in self.steps(kind):
          self._write_digest(kind, step)

  def steps(self, kind: str) -> list[int]:
    """The steps with a finished orbax checkpoint of `kind`, newest first."""
    return sorted(self.managers()[kind].all_steps(), reverse=True)

  def restore_latest(self, step: int, template):
    """The state saved at `step`, with the structure (and leaf dtypes) of template."""
    flat, treedef = jax.tree.flatten(template)
    with quiet_orbax():
      got = self.managers()["latest"].restore(step, args=ocp.args.StandardRestore(leaves(flat)))
    return jax.tree.unflatten(treedef, [np.asarray(got[k]) for k in sorted(got)])

  def newest_intact(self, at_most: Optional[int], template, log: Callable) -> tuple:
    """(step, state) of the newest intact `latest` checkpoint at or before `at_most` (None:
    any), or (None, None); each damaged one on the way is reported in one line."""
    for step in self.steps("latest"):
      if at_most is not None and step > at_most:
        continue
      if not self.intact("latest", step):
        log(f"checkpoint at step {step} ({self._dir('latest', step)}) is damaged: its files "
            "do not match their digest; trying an older one")
        continue
      try:
        return step, self.restore_latest(step, template)
      except Exception as e:  # noqa: BLE001  (any unreadable checkpoint: report, fall back)
        log(f"checkpoint at step {step} could not be read ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200]}); trying an older one")
    return None, None

  def close(self) -> None:
    for m in (self._managers or {}).values():
      m.close()
    self._managers = None
