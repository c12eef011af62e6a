"""Several processes, one run: jax.distributed's multi-controller runtime.

Every process runs the same program over the global device mesh (the sweep's member axis over
all processes' devices); process 0 alone touches the run directory (lock, config, metrics,
checkpoints, figures) and hands what it read (the resume point) to the others, so a resumed run
continues the same way on every process. In one process every function here is a no-op.
"""
import os
import socket
import time
from typing import Any, Optional

import jax
import numpy as np

from dynamics.config_utils import ConfigError

# The cluster environments jax.distributed.initialize() reads by itself, and the variable of
# each that holds the number of processes (checked against --num_processes when both are given).
_CLUSTERS = {"SLURM_JOB_ID": "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE": "OMPI_COMM_WORLD_SIZE"}


def initialize(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None, timeout_s: int = 60) -> None:
  """jax.distributed.initialize from the launcher's flags, or from the cluster's environment
  (SLURM, Open MPI, TPU pods) when none is given; a clear error for flags that are missing, out
  of range or disagree with the environment, and for a coordinator that does not answer within
  timeout_s (no hang)."""
  given = dict(coordinator_address=coordinator_address, num_processes=num_processes,
               process_id=process_id)
  if any(v is not None for v in given.values()):
    missing = [f"--{k}" for k, v in given.items() if v is None]
    if missing:
      raise ConfigError(f"--distributed with --coordinator_address, --num_processes and "
                        f"--process_id needs all three; missing: {', '.join(missing)}")
    if num_processes < 1:
      raise ConfigError(f"--num_processes={num_processes} must be at least 1")
    if not 0 <= process_id < num_processes:
      raise ConfigError(f"--process_id={process_id} is out of range: use 0 to "
                        f"{num_processes - 1} for --num_processes={num_processes}")
    for marker, size in _CLUSTERS.items():
      if marker in os.environ and size in os.environ and int(os.environ[size]) != num_processes:
        raise ConfigError(f"--num_processes={num_processes} disagrees with the environment "
                          f"({size}={os.environ[size]})")
  if process_id:      # jax ends the process (no exception) when the coordinator never answers
    _wait_for(coordinator_address, timeout_s)
  # collectives between CPU processes (and harmless beside a GPU); set before any backend
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  try:
    jax.distributed.initialize(**{k: v for k, v in given.items() if v is not None},
                               initialization_timeout=timeout_s)
  except Exception as e:      # jax reports a missing coordinator as a generic runtime error
    where = coordinator_address or "the address the cluster's environment names"
    raise ConfigError(f"--distributed: could not join the coordinator at {where} within "
                      f"{timeout_s} s ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
                      ) from None


def _wait_for(address: str, timeout_s: float) -> None:
  host, _, port = address.rpartition(":")
  deadline = time.time() + timeout_s
  while True:
    try:
      with socket.create_connection((host, int(port)), timeout=1):
        return
    except (OSError, ValueError) as e:
      if time.time() > deadline or isinstance(e, ValueError):
        raise ConfigError(f"--distributed: could not join the coordinator at {address} within "
                          f"{timeout_s} s (is process 0 running, and is "
                          f"--coordinator_address=HOST:PORT right?)") from None
      time.sleep(0.5)


def is_primary() -> bool:
  return jax.process_index() == 0


def put(tree: Any, sharding) -> Any:
  """jax.device_put of host arrays (the same on every process) onto a sharding that may span
  several processes: each process places the pieces its devices hold."""
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  def one(x):
    x = np.asarray(x)
    x = x.astype(jax.dtypes.canonicalize_dtype(x.dtype))     # as device_put does
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
  return jax.tree.map(one, tree)


def fetch(x: Any) -> np.ndarray:
  """A (possibly multi-process) array as a whole numpy array on every process."""
  if getattr(x, "is_fully_addressable", True):
    return np.asarray(x)
  from jax.experimental import multihost_utils
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def share(tree: Any, template: Any) -> Any:
  """Process 0's `tree` on every process (the others pass `template`, a tree of the same
  structure, shapes and dtypes); `tree` itself in one process."""
  if jax.process_count() == 1:
    return tree
  from jax.experimental import multihost_utils
  return jax.tree.map(np.asarray, multihost_utils.broadcast_one_to_all(
      tree if is_primary() else template))
