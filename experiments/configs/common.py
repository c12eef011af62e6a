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
