"""base_config: every section filled with its defaults, so any field can be overridden by flag.

A config file starts from base_config(...) and sets what differs, e.g.

    c = base_config(model="mlp", data="digits", opt="gd")
    c.model.widths = (64, 64)
"""
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


def digits_mlp(opt: str, quick: bool, activation: str = "tanh") -> ml_collections.ConfigDict:
  """The edge-of-stability network on digits (Cohen et al. 2021's fc-tanh, digits for CIFAR).

  fc-ACTIVATION 2x200 with MSE on the 1,500 digits training images (297 held out); quick:
  2x64 on a 500-image subset, for CPU tests and notebooks.
  """
  c = base_config(model="mlp", data_name="digits", opt=opt, loss="mse")
  c.data.n_test = 297
  c.data.n_train = 500 if quick else 0        # 0: all 1,500 remaining images
  c.model.widths = (64, 64) if quick else (200, 200)
  c.model.activation = activation
  return c


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
