r"""Launcher: python -m experiments.main --config=experiments/configs/NAME.py --workdir=DIR.

Overrides: --config.opt.learning_rate=0.05, --config.sweep.seed='(0,1,2)'; cheap variants:
--config=experiments/configs/NAME.py:quick. Re-running the same command resumes the run in DIR;
with a larger --config.train.steps it trains the run on from where it stopped. Ctrl-C stops at
the end of the current chunk (checkpointed); a second Ctrl-C stops at once. Either way the same
command resumes, with the same numbers as an uninterrupted run.
"""
from absl import app, flags, logging
from ml_collections import config_flags

from dynamics import experiment
from experiments import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (NAME.py or "
                                          "NAME.py:variant).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (created, or resumed).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # progress is printed; library INFO chatter is not
  stop = cli.interrupt_on_ctrl_c()
  with cli.one_line_errors():
    path = experiment.run(_CONFIG.value, _WORKDIR.value, stop=stop.is_set)
  from analysis import plots, trajectory
  paths = plots.training_curves(trajectory.load(path), f"{path}/figures")
  print(f"figures: {', '.join(paths)}", flush=True)


if __name__ == "__main__":
  app.run(main)
