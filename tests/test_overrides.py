"""Launching by flag: every override a researcher would type works or stops in one line."""
import os
import subprocess
import sys

import pytest

from dynamics import experiment
from dynamics.config_utils import ConfigError
from experiments import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = "experiments/configs/quickstart.py"


def _config(spec, *overrides):
  """The resolved config of `spec` with --config.KEY=VALUE overrides ('KEY=VALUE' strings)."""
  _, parsed = cli.split_overrides([f"--config.{o}" for o in overrides])
  return experiment.resolve(cli.apply_overrides(cli.load_config(os.path.join(ROOT, spec)),
                                                parsed))


def _refused(spec, *overrides):
  with pytest.raises(ConfigError) as e:
    experiment.Experiment.from_config(_config(spec, *overrides))
  return str(e.value)


def test_list_fields_and_sweep_axes_take_tuples():
  c = _config(QUICKSTART, "model.widths=(200,200)", "train.steps=10000",
              "sweep.opt.learning_rate=(0.01,0.02,0.04,0.08)", "sweep.seed=(0,1)")
  assert tuple(c.model.widths) == (200, 200) and c.train.steps == 10000
  assert experiment.Experiment.from_config(c).sweep.size == 8
  quick = _config(QUICKSTART + ":quick", "sweep.seed=(0,1)")      # an axis the file lacks
  assert tuple(quick.sweep.seed) == (0, 1)


def test_probes_switch_on_with_settings_and_off():
  c = _config(QUICKSTART + ":quick", "probes.sharpness.k=2", "probes.hessian_trace={}",
              "probes.grad_norm=None")
  assert c.probes.sharpness.k == 2 and c.probes.sharpness.num_iters == 20   # the defaults
  assert "hessian_trace" in c.probes and "grad_norm" not in c.probes
  assert "did you mean sharpness" in _refused(QUICKSTART, "probes.sharpnes={}")


def test_another_component_brings_its_fields_and_keeps_explicit_values(tmp_path):
  c = _config("experiments/configs/eos_gd.py:quick", "data.name=mnist",
              f"data.path={tmp_path}")
  assert (c.data.name, c.data.path, c.data.n_train) == ("mnist", str(tmp_path), 500)
  with pytest.raises(ConfigError, match="mnist files not found"):
    experiment.Experiment.from_config(c)
  adam = _config(QUICKSTART, "opt.name=adam", "opt.b1=0.8")
  assert (adam.opt.name, adam.opt.b1, adam.opt.learning_rate) == ("adam", 0.8, 0.05)
  linear = _config(QUICKSTART, "model.name=deep_linear")
  assert tuple(linear.model.widths) == (64, 64) and "activation" not in linear.model


@pytest.mark.parametrize("override, fragment", [
    ("train.stepz=10", "unknown field(s) stepz (did you mean steps?)"),
    ("train.batch_size=100000", "train.batch_size=100000 is not allowed: the data has 1500 "
                                "training examples"),
    ("data.classes=(0,11)", "data.classes=(0, 11) is not allowed"),
    ("train.steps=1e3", "train.steps=1000.0 is not allowed; it must be an integer >= 1"),
    ("model.name=mpl", "model.name='mpl' is not allowed"),
])
def test_bad_overrides_name_the_field_and_what_is_allowed(override, fragment):
  assert fragment in _refused(QUICKSTART, override)


@pytest.mark.parametrize("spec, override, fragment", [
    (QUICKSTART, "foo.bar=1", "--config.foo.bar: unknown section 'foo'"),
    (QUICKSTART + ":quik", None, "variant part 'quik' of 'quik' is not allowed; allowed parts "
                                 "(joined by '_'): 'quick'"),
    ("experiments/configs/nope.py", None, "there is no config file"),
    (QUICKSTART, "model.widths.x=1", "model.widths is a field, not a section"),
])
def test_bad_config_specs_stop_before_building(spec, override, fragment):
  with pytest.raises(ConfigError) as e:
    _config(spec, *([override] if override else []))
  assert fragment in str(e.value)


def _launch(*args):
  return subprocess.run([sys.executable, "-m", "experiments.main", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)


def test_the_launcher_says_it_in_one_line_without_a_traceback():
  for args in ([f"--config={QUICKSTART}:quik", "--dry_run"],
               [f"--config={QUICKSTART}", "--config.train.stepz=10", "--dry_run"],
               [f"--config={QUICKSTART}", "--config.foo.bar=1", "--dry_run"],
               [f"--config={QUICKSTART}", "--config.train.steps", "--dry_run"]):
    out = _launch(*args)
    assert out.returncode == 2 and out.stderr.startswith("error: "), out.stderr[-2000:]
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_describe_lists_every_field_with_value_and_allowed_values():
  out = _launch(f"--config={QUICKSTART}", "--config.train.steps=300", "--describe")
  assert out.returncode == 0, out.stderr[-2000:]
  assert "train.steps = 300   # max optimizer steps per member; allowed: an integer >= 1" in (
      out.stdout)
  assert "probes.sharpness: off" in out.stdout and "probes.grad_norm: on" in out.stdout
  for section in ("model.", "data.", "loss.", "opt.", "sweep"):
    assert f"\n{section}" in out.stdout
