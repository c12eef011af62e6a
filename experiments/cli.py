"""What the two command-line programs (main, reproduce) share: Ctrl-C, and one-line errors.

    stop = cli.interrupt_on_ctrl_c()
    with cli.one_line_errors():
      experiment.run(config, workdir, stop=stop.is_set)
"""
import contextlib
import signal
import sys
import threading

from dynamics import experiment, runs
from dynamics.config_utils import ConfigError

# bad input: nothing ran (exit status 2)
BAD_INPUT = (ConfigError, runs.ConfigMismatch, runs.RunDirError)


def interrupt_on_ctrl_c() -> threading.Event:
  """The first Ctrl-C sets the returned event (a run stops after its chunk, checkpointed); the
  second restores the default action, so it ends the process at once. A kill at any moment is
  harmless to a run directory, and no traceback is printed either way. Also makes a write past
  a file-size limit fail with an error (reported in one line) instead of SIGXFSZ's kill."""
  stop = threading.Event()

  def first(signum, frame):
    del signum, frame
    print("\nCtrl-C: stopping at the end of this chunk (Ctrl-C again to stop at once)",
          file=sys.stderr, flush=True)
    stop.set()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
  signal.signal(signal.SIGINT, first)
  signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
  return stop


@contextlib.contextmanager
def one_line_errors():
  """Bad input (exit 2), a failed write (exit 1) and an interruption (exit 130) end the program
  with one line on stderr, never a traceback."""
  try:
    yield
  except BAD_INPUT as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except runs.WriteFailed as e:
    print(f"error: {e}; the run stopped and resumes intact with the same command once the "
          "cause is gone", file=sys.stderr)
    sys.exit(1)
  except experiment.Interrupted as e:
    print(str(e), file=sys.stderr)
    sys.exit(130)
