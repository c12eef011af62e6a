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
