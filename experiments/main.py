r"""Launcher: python -m experiments.main --config=experiments/configs/NAME.py --workdir=DIR.

Overrides: --config.opt.learning_rate=0.05, --config.sweep.seed='(0,1,2)'; cheap variants:
--config=experiments/configs/NAME.py:quick. Re-running the same command resumes the run in DIR;
with a larger --config.train.steps it trains the run on from where it stopped.
"""
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from dynamics.config_utils import ConfigError
from dynamics.experiment import Experiment
from dynamics.runs import ConfigMismatch

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (NAME.py or "
                                          "NAME.py:variant).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (created, or resumed).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # progress is printed; library INFO chatter is not
  try:
    path = Experiment.from_config(_CONFIG.value).run(_WORKDIR.value)
  except (ConfigError, ConfigMismatch) as e:  # before any work: name the field, no traceback
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  from analysis import plots, trajectory
  paths = plots.training_curves(trajectory.load(path), f"{path}/figures")
  print(f"figures: {', '.join(paths)}", flush=True)


if __name__ == "__main__":
  app.run(main)
