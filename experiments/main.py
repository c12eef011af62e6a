r"""Launcher: python -m experiments.main --config=experiments/configs/NAME.py --workdir=DIR.

Overrides: --config.opt.learning_rate=0.05, --config.model.widths='(64,64)', a sweep axis
--config.sweep.seed='(0,1,2)', a probe --config.probes.sharpness.k=2 (=None: off), another
component with its own fields --config.data.name=mnist --config.data.path=DIR; cheap variants:
--config=experiments/configs/NAME.py:quick. --describe lists every field of the config (value,
allowed values); --dry_run checks and builds everything without training. Re-running the same
command resumes the run in DIR; with a larger --config.train.steps it trains the run on from
where it stopped. Ctrl-C stops at the end of the current chunk (checkpointed); a second Ctrl-C
stops at once. Either way the same command resumes, with the same numbers as an uninterrupted
run.

Several processes (jax.distributed; the sweep's members over every process's devices, process 0
writing the run directory): --distributed alone reads the cluster's environment (SLURM, Open
MPI, TPU pods); on other machines give --coordinator_address=HOST:PORT, --num_processes=N and
--process_id=I to each process.
"""
from absl import app, flags, logging

from dynamics import distributed, experiment
from dynamics.config_utils import ConfigError
from experiments import cli

_CONFIG = flags.DEFINE_string("config", None, "Experiment config file: NAME.py or "
                              "NAME.py:variant; override fields with --config.a.b=VALUE.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (created, or resumed).")
_DESCRIBE = flags.DEFINE_bool("describe", False, "List every field of the config (its value "
                              "and allowed values) and exit.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Check the config and build data, model and "
                             "program without training, then exit.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Run as one of several processes "
                                 "(jax.distributed).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "With --distributed: HOST:PORT "
                                   "of process 0's coordinator.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "With --distributed: how many "
                                      "processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "With --distributed: this process, 0 to "
                                   "num_processes - 1.")
_TIMEOUT = flags.DEFINE_integer("distributed_timeout", 60, "Seconds to wait for the other "
                                "processes.")
flags.mark_flags_as_required(["config"])
_OVERRIDES = []


def parse_flags(argv):
  """absl's flags, with the --config.a.b=VALUE overrides taken out first."""
  with cli.one_line_errors():
    rest, overrides = cli.split_overrides(argv)
  _OVERRIDES[:] = overrides
  return app.parse_flags_with_usage(rest)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # progress is printed; library INFO chatter is not
  stop = cli.interrupt_on_ctrl_c()
  with cli.one_line_errors():
    given = [f for f in ("coordinator_address", "num_processes", "process_id")
             if flags.FLAGS[f].present]
    if given and not _DISTRIBUTED.value:
      raise ConfigError(f"--{given[0]} needs --distributed")
    if _DISTRIBUTED.value:
      distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                             _TIMEOUT.value)
    config = cli.apply_overrides(cli.load_config(_CONFIG.value), _OVERRIDES)
    if _DESCRIBE.value:
      print(experiment.describe(config))
      return
    if _DRY_RUN.value:
      exp = experiment.Experiment.from_config(config)
      print(f"dry run: {exp.summary()}; nothing trained")
      return
    if _WORKDIR.value is None:
      raise ConfigError("--workdir is required (the run's directory, created if missing)")
    path = experiment.run(config, _WORKDIR.value, stop=stop.is_set)
  if not distributed.is_primary():
    return
  from analysis import plots, trajectory
  paths = plots.training_curves(trajectory.load(path), f"{path}/figures")
  print(f"figures: {', '.join(paths)}", flush=True)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
