"""What the command-line programs share: config files and --config.a.b=VALUE overrides, Ctrl-C,
and one-line errors.

    stop = cli.interrupt_on_ctrl_c()
    with cli.one_line_errors():
      experiment.run(config, workdir, stop=stop.is_set)
"""
import ast
import contextlib
import importlib.util
import os
import signal
import sys
import threading
from typing import Any

import ml_collections

from dynamics import data as data_lib
from dynamics import experiment, fields, models, runs
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


# ---- --config=FILE[:variant] and --config.a.b=VALUE overrides --------------------------------
def load_config(spec: str) -> ml_collections.ConfigDict:
  """get_config(variant) of the config file in `spec` ('path.py' or 'path.py:variant'), as a
  ConfigDict without type-safety (the declared fields check every value instead)."""
  path, _, variant = spec.partition(":")
  if not os.path.isfile(path):
    raise ConfigError(f"--config={spec}: there is no config file {path!r}; the configs are in "
                      "experiments/configs/")
  module_spec = importlib.util.spec_from_file_location(
      f"_config_{os.path.basename(path)[:-3]}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ConfigError(f"--config={spec}: {path} defines no get_config(variant)")
  try:
    config = module.get_config(variant)
  except ValueError as e:
    raise ConfigError(f"--config={spec}: {e}") from None
  return ml_collections.ConfigDict(config.to_dict(), type_safe=False)


def split_overrides(argv: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
  """(argv without the --config.a.b=VALUE arguments, [(a.b, VALUE), ...] in order)."""
  rest, overrides = [], []
  for a in argv:
    if a.startswith("--config."):
      key, eq, raw = a[len("--config."):].partition("=")
      if not eq:
        raise ConfigError(f"{a}: an override needs a value, e.g. --config.{key}=VALUE")
      overrides.append((key, raw))
    else:
      rest.append(a)
  return rest, overrides


def parse_value(raw: str) -> Any:
  """A Python literal ('0.1', '(64, 64)', 'True', 'None', "{}"), else the string itself."""
  try:
    return ast.literal_eval(raw)
  except (ValueError, SyntaxError):
    return raw


def _component_defaults(section: str, name: Any) -> ml_collections.ConfigDict:
  return dict(model=models.default_config, data=data_lib.default_config).get(
      section, experiment.opt_defaults)(name)


def _switch(config: ml_collections.ConfigDict, section: str, name: Any) -> None:
  """config[section] becomes component `name`'s fields at their defaults, keeping the values
  the config file set explicitly (unlike the old component's defaults) where the new component
  has the same field."""
  old = config[section]
  new = _component_defaults(section, name)
  try:
    old_defaults = _component_defaults(section, old.get("name"))
  except ConfigError:
    old_defaults = {}
  for k in old.keys():
    if k != "name" and k in new and (k not in old_defaults or old[k] != old_defaults[k]):
      new[k] = old[k]
  config[section] = ml_collections.ConfigDict(new.to_dict(), type_safe=False)


# sections whose sub-sections may be created from the command line
_OPEN = ("sweep", "probes", "analysis")


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: list[tuple[str, str]]) -> ml_collections.ConfigDict:
  """The config with --config.a.b=VALUE overrides applied: model.name, data.name and opt.name
  first (each brings its component's fields), then the others in order. Unknown sections stop
  here; unknown fields and bad values stop in experiment.resolve, naming the closest fields
  and the allowed values."""
  switches = [(k, v) for k, v in overrides if k in ("model.name", "data.name", "opt.name")]
  for key, raw in switches:
    _switch(config, key.split(".")[0], parse_value(raw))
  for key, raw in overrides:
    if (key, raw) in switches:
      continue
    parts = key.split(".")
    if parts[0] not in experiment.SECTIONS:
      hint = fields.did_you_mean(parts[0], experiment.SECTIONS)
      raise ConfigError(f"--config.{key}: unknown section {parts[0]!r}{hint}; allowed: "
                        f"{', '.join(experiment.SECTIONS)}")
    value = parse_value(raw)
    if parts == ["seed"]:
      config.seed = value
      continue
    node = config
    for i, p in enumerate(parts[:-1]):
      if p not in node or node[p] is None:
        if parts[0] not in _OPEN and parts[:2] != ["opt", "schedule"]:
          raise ConfigError(f"--config.{key}: {'.'.join(parts[:i + 1])} is not a section")
        node[p] = ml_collections.ConfigDict(type_safe=False)
      elif not isinstance(node[p], ml_collections.ConfigDict):
        raise ConfigError(f"--config.{key}: {'.'.join(parts[:i + 1])} is a field, not a "
                          "section")
      node = node[p]
    if parts[0] == "probes" and len(parts) == 2 and value is None:
      del node[parts[-1]]            # --config.probes.NAME=None switches a probe off
    else:
      node[parts[-1]] = (ml_collections.ConfigDict(value, type_safe=False)
                         if isinstance(value, dict) else value)
  return config
