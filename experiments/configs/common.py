"""base_config: every section filled with its defaults, so any field can be overridden by flag;
with_variant: a config file's variants, declared as data.

A config file starts from base_config(...) and sets what differs, e.g.

    c = base_config(model="mlp", data="digits", opt="gd")
    c.model.widths = (64, 64)

and declares its variants (NAME.py:quick, NAME.py:quick_flow, ...) as overrides per name:

    VARIANTS = {"quick": {"train.steps": 200}, "flow": {"opt": dict(name="flow")},
                "quick_flow": {"train.steps": 6000}}
    def get_config(variant=""):
      return with_variant(base(), variant, VARIANTS)
"""
import re
from typing import Any, Callable, Mapping

import ml_collections

from dynamics import data, losses, models, optimizers, train


def base_config(model: str, data_name: str, opt: str, loss: str = "mse",
                seed: int = 0) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = seed                              # model init and minibatch order
  c.model = models.default_config(model)
  c.data = data.default_config(data_name)
  c.loss = losses.default_config()
  c.loss.name = loss
  c.opt = optimizers.default_config(opt)
  c.train = train.default_config()
  c.probes = ml_collections.ConfigDict()
  c.sweep = ml_collections.ConfigDict()
  return c


def digits_mlp(opt: str, activation: str = "tanh") -> ml_collections.ConfigDict:
  """The edge-of-stability network on digits (Cohen et al. 2021's fc-tanh, digits for CIFAR):
  fc-ACTIVATION 2x200 with MSE on the 1,500 digits training images (297 held out). Its quick
  variant, QUICK_DIGITS, is 2x64 on a 500-image subset, for CPU tests and notebooks."""
  c = base_config(model="mlp", data_name="digits", opt=opt, loss="mse")
  c.data.n_test = 297
  c.data.n_train = 0                          # 0: all 1,500 remaining images
  c.model.widths = (200, 200)
  c.model.activation = activation
  return c


QUICK_DIGITS = {"data.n_train": 500, "model.widths": (64, 64)}


def central_flow_config(opt: dict, quick: bool, **fields) -> ml_collections.ConfigDict:
  """A central-flow figure's settings (experiments/figures/central_flow.py): fc-tanh with MSE
  on digits of classes 0-3, the real optimizer `opt` for `start` steps, then it, its central
  flow and its stable flow side by side for `steps` steps, float64.

  quick: 200 images and one hidden layer of 32 (CPU tests); full: 500 images, 64x64.
  `fields` override the defaults below.
  """
  c = ml_collections.ConfigDict(dict(
      data="digits",                        # or 'cifar_digits' (1,000 images, 3x32x32)
      n_train=200 if quick else 500,        # digits of classes 0-3 ('digits' only)
      widths=(32,) if quick else (64, 64),
      activation="tanh",
      init="normal",                        # dynamics.models mlp init ('torch': PyTorch's)
      opt=optimizers.default_config(opt["name"]),
      start=30,                             # real steps before the processes split (catapult)
      steps=200 if quick else 400,          # a multiple of `segments`
      segments=8,                           # where the flows' weights meet the real run's
      k=3,                                  # tracked eigenvalues of the effective Hessian
      substeps=4,                           # central flow Euler substeps per optimizer step
      stable_substeps=4,
      method="euler",                       # or 'heun' (second order)
      # warm Lanczos steps per optimizer step: X ~ (lambda - 2) / |B| turns eigenvalue errors
      # into noise in X, so the larger network needs more
      lanczos_iters=20 if quick else 40,
      eig_method="lanczos",                 # or 'lobpcg'
      # the real run's loss, gradient norm and effective learning rate are averaged over
      # `window` steps (centred) before they are compared with the central flow's predictions:
      # at least the period of the real run's slowest oscillation
      window=10,
      seed=0,
  ))
  c.opt.update(opt)
  c.update(fields)
  # at most k_max tracked: more are added when the smallest tracked one reaches 1.5 (the public
  # code's rule; analysis.central_flow_processes.run_processes); by default k, fixed
  c.k_max = fields.get("k_max", c.k)
  return c


def _set(c: ml_collections.ConfigDict, dotted: str, value: Any) -> None:
  """c.a.b = value for dotted = 'a.b' (a ConfigDict value replaces the whole section)."""
  *path, last = dotted.split(".")
  for p in path:
    if p not in c:
      c[p] = ml_collections.ConfigDict()
    c = c[p]
  c[last] = ml_collections.ConfigDict(value) if isinstance(value, dict) else value


def with_variant(c: ml_collections.ConfigDict, variant: str, variants: Mapping[str, dict],
                 patterns: Mapping[str, Callable[..., dict]] = (),
                 exclusive: tuple = ()) -> ml_collections.ConfigDict:
  """The config `c` with a variant applied; `variant` names parts joined by '_' ('quick_flow').

  Every entry of `variants` whose parts ('quick', or a combination 'quick_flow') all appear in
  the variant is applied, single parts first, then combinations, so that a combination holds
  what only that combination sets (e.g. the quick learning rates of the momentum run).
  `patterns` maps a regular expression of one part ('frac([0-9]+)') to fn(*groups) -> its
  overrides. `exclusive` lists groups of parts of which at most one may be chosen. Overrides are
  {dotted field: value}; a dict value replaces a whole section.

  Raises:
    ValueError: an unknown part, a part given twice, or two parts of an exclusive group; the
      message lists what is allowed.
  """
  parts = [p for p in variant.split("_") if p] if variant else []
  singles = sorted({p for k in variants for p in k.split("_")})
  allowed = ", ".join([repr(p) for p in singles] + [repr(p) for p in patterns])
  matched = {}
  for p in parts:
    hit = [(pat, m) for pat in patterns for m in [re.fullmatch(pat, p)] if m]
    if p not in singles and not hit:
      raise ValueError(f"variant part {p!r} of {variant!r} is not allowed; allowed parts "
                       f"(joined by '_'): {allowed}")
    key = hit[0][0] if hit else p
    if key in matched:
      raise ValueError(f"variant {variant!r} is not allowed: {key!r} given twice")
    matched[key] = hit[0][1].groups() if hit else ()
  for group in exclusive:
    if len(set(group) & set(matched)) > 1:
      raise ValueError(f"variant {variant!r} is not allowed: choose at most one of "
                       f"{', '.join(repr(g) for g in group)}")
  chosen = set(matched)
  for key in sorted(variants, key=lambda k: (k.count("_"), list(variants).index(k))):
    if set(key.split("_")) <= chosen:
      for dotted, value in variants[key].items():
        _set(c, dotted, value)
  for pat, groups in matched.items():
    if pat in patterns:
      for dotted, value in patterns[pat](*groups).items():
        _set(c, dotted, value)
  return c
