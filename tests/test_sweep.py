import ml_collections
import pytest

import tiny
from dynamics import experiment, sweep
from dynamics.config_utils import ConfigError
from dynamics.train import keep_steps


def test_grid_is_cartesian_product_in_alphabetical_axis_order():
  c = ml_collections.ConfigDict()
  c.seed = [0, 1]
  c.opt = ml_collections.ConfigDict({"learning_rate": [0.1, 0.2, 0.3]})
  s = sweep.expand(c, ("learning_rate",))
  assert s.axes == ("opt.learning_rate", "seed")
  assert s.size == 6
  assert s.members[0] == {"seed": 0, "opt.learning_rate": 0.1}
  assert s.members[3] == {"seed": 1, "opt.learning_rate": 0.2}
  assert list(s.column("seed", 7)) == [0, 1, 0, 1, 0, 1]
  assert list(s.column("opt.momentum", 0.5)) == [0.5] * 6


def test_empty_sweep_is_one_member():
  s = sweep.expand(ml_collections.ConfigDict(), ("learning_rate",))
  assert s.size == 1 and s.members == ({},)


@pytest.mark.parametrize("bad, fragment", [
    ({"opt": {"b7": [1.0]}}, "sweep.opt.b7 cannot be swept"),
    ({"model": {"widths": [1, 2]}}, "allowed sweep axes: seed, opt.learning_rate"),
    ({"seed": []}, "sweep.seed=[] must be a non-empty list"),
    ({"seed": [0.5]}, "sweep.seed=[0.5] must hold non-negative integers"),
    ({"opt": {"learning_rate": ["a"]}}, "sweep values must be numbers"),
])
def test_bad_sweeps_are_refused_with_the_field_name(bad, fragment):
  with pytest.raises(ConfigError, match=None) as e:
    sweep.expand(ml_collections.ConfigDict(bad), ("learning_rate",))
  assert fragment in str(e.value)


def test_keep_steps_specs():
  assert keep_steps("none", 100, 10) == [0, 100]
  assert keep_steps("every:30", 100, 10) == [0, 30, 60, 90, 100]
  assert keep_steps("3,15,100", 100, 10) == [0, 10, 20, 100]  # rounded up to the log grid
  log = keep_steps("log:5", 1000, 1)
  assert log == [0, 1, 6, 32, 178, 1000]
  with pytest.raises(ConfigError, match="train.keep='log:x' is not allowed"):
    keep_steps("log:x", 100, 10)


@pytest.mark.parametrize("scales, fragment", [
    ([1e-3, 0.0], "sweep.model.init_scale=0.0 is not allowed; it must be a number > 0"),
    ([-1e-3], "sweep.model.init_scale=-0.001 is not allowed; it must be a number > 0"),
])
def test_a_swept_model_value_is_checked_like_the_field(scales, fragment):
  c = tiny.config()
  c.sweep.model = ml_collections.ConfigDict({"init_scale": scales})
  with pytest.raises(ConfigError) as e:
    experiment.resolve(c)
  assert fragment in str(e.value)
