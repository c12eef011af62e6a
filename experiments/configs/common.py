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


def central_flow_config(opt: dict, quick: bool, data_name: str = "digits", n_train: int = 0,
                        widths: tuple = (), activation: str = "tanh", init: str = "normal",
                        seed: int = 0, **flow: Any) -> ml_collections.ConfigDict:
  """A central-flow figure's run (experiments/figures/central_flow.py): fc-ACTIVATION with MSE
  on digits of classes 0-3 (or 'cifar_digits'), full-batch `opt` in float64, an ordinary run
  directory with every step logged (effective sharpness, squared gradient norm, effective
  learning rate) and the parameters kept where the processes need them.
  analysis.central_flow_processes.processes(trajectory.load(DIR)) computes the flows from it
  with the settings of `analysis.central_flow` (central_flow_processes.FIELDS; `flow` overrides
  their defaults, as does e.g. --config.analysis.central_flow.k=4) and caches them in
  DIR/analysis/central_flow/.

  quick: 200 images and one hidden layer of 32 (CPU tests); full: 500 images, 64x64.
  """
  c = base_config(model="mlp", data_name=data_name, opt=opt["name"], loss="mse", seed=seed)
  c.model.widths = widths or ((32,) if quick else (64, 64))
  c.model.activation = activation
  c.model.init = init                       # 'normal', or 'torch' (PyTorch's default)
  if data_name == "digits":
    c.data.update(n_train=n_train or (200 if quick else 500), n_test=0, classes=[0, 1, 2, 3])
  c.opt.update(opt)
  if opt["name"] != "gd":                   # nu_1 = g_0^2, as the public code starts RMSProp
    c.opt.nu_init = "first_grad"
  c.analysis = ml_collections.ConfigDict()
  return with_flow(c, **{"steps": 200 if quick else 400,
                         "lanczos_iters": 20 if quick else 40, **flow})


def quick_only(name: str, variant: str) -> bool:
  """Whether `variant` of config file `name` is 'quick', its only variant (else ValueError)."""
  if variant not in ("", "quick"):
    raise ValueError(f"{name} variant {variant!r} is not allowed; allowed: 'quick'")
  return variant == "quick"


def with_flow(c: ml_collections.ConfigDict, **flow: Any) -> ml_collections.ConfigDict:
  """A central-flow config with `flow` set in analysis.central_flow, and what the run must do
  for those settings made to follow: train.steps (start + steps + 2, for the last midpoint),
  train.keep (the steps the processes read) and the probes' Lanczos steps."""
  from analysis import central_flow_processes as cfp
  s = cfp.settings({**c.analysis.get("central_flow", {}), **flow})
  c.analysis.central_flow = s
  c.train.update(float64=True, log_every=1, steps=s.start + s.steps + 2,
                 keep=cfp.needed_steps(s))
  # what the real run logs per step: effective sharpness lambda_max(P^-1/2 H P^-1/2), ||g||
  # (squared by the analysis) and the effective learning rate 1 / mean(P)
  c.probes.preconditioned_sharpness = dict(k=1, num_iters=s.lanczos_iters)
  c.probes.grad_norm = {}
  c.probes.effective_lr = {}
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
  shown = {pat: re.sub(r"\([^)]*\)", "N", pat) for pat in patterns}    # 'frac([0-9]+)': 'fracN'
  allowed = ", ".join([repr(p) for p in singles] + [repr(shown[p]) for p in patterns])
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
                       f"{', '.join(repr(shown.get(g, g)) for g in group)}")
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
