"""Config variants are data: one function applies them (experiments/configs/common.py)."""
import ml_collections
import pytest

from experiments.configs import common, eos_gd, grokking

VARIANTS = {"quick": {"train.steps": 10, "sweep.seed": (0, 1)},
            "flow": {"opt": dict(name="flow"), "train.log_every": 5},
            "quick_flow": {"train.steps": 30},
            "momentum": {"opt.momentum": 0.9}}


def _base():
  return ml_collections.ConfigDict(dict(opt=dict(name="gd"), train=dict(steps=100, log_every=1),
                                        sweep=dict()))


def _apply(variant, **kw):
  return common.with_variant(_base(), variant, VARIANTS, **kw)


def test_single_parts_then_combinations_whatever_the_order_given():
  assert _apply("").to_dict() == _base().to_dict()
  c = _apply("flow_quick")
  assert (c.train.steps, c.train.log_every, c.opt.to_dict(), c.sweep.seed) == (
      30, 5, {"name": "flow"}, (0, 1))       # 'quick_flow' wins over 'quick' for train.steps
  assert _apply("quick").train.steps == 10 and _apply("flow").train.steps == 100


def test_patterns_give_overrides_from_the_part():
  c = _apply("quick_frac35", patterns={r"frac([0-9]+)": lambda n: {"data.train_frac":
                                                                    int(n) / 100}})
  assert c.data.train_frac == 0.35 and c.train.steps == 10


@pytest.mark.parametrize("variant, fragment", [
    ("quik", "variant part 'quik' of 'quik' is not allowed; allowed parts (joined by '_'): "
             "'flow', 'momentum', 'quick'"),
    ("quick_quick", "'quick' given twice"),
    ("flow_momentum", "choose at most one of 'flow', 'momentum'"),
])
def test_bad_variants_name_what_is_allowed(variant, fragment):
  with pytest.raises(ValueError) as e:
    _apply(variant, exclusive=(("flow", "momentum"),))
  assert fragment in str(e.value)


def test_real_configs_combine_their_variants():
  c = eos_gd.get_config("quick_momentum")
  assert (c.opt.name, c.opt.momentum, c.train.steps) == ("momentum", 0.9, 1500)
  assert list(c.sweep.opt.learning_rate) == list(eos_gd.QUICK_MOMENTUM_LEARNING_RATES)
  g = grokking.get_config("quick_frac30_seed0")
  assert (g.data.p, g.data.train_frac, g.sweep.to_dict()) == (53, 0.3, {})
  with pytest.raises(ValueError, match="choose at most one of 'wd', 'nowd'"):
    grokking.get_config("wd_nowd")
