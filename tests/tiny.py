"""A tiny experiment config shared by the engine tests (a few hundred digits, a small MLP)."""
import ml_collections

from experiments.configs.common import base_config


def config(steps=40, log_every=5, chunk_steps=20, lrs=(0.05, 0.2), float64=False, **train):
  c = base_config("mlp", "digits", "gd")
  c.data.update(dict(n_train=120, n_test=40, classes=(0, 1, 2)))
  c.model.update(dict(widths=(8,), activation="tanh"))
  c.opt.learning_rate = 0.1
  c.train.update(dict(steps=steps, log_every=log_every, chunk_steps=chunk_steps,
                      float64=float64, keep="every:20", **train))
  c.probes.grad_norm = ml_collections.ConfigDict()
  if lrs:
    c.sweep.opt = ml_collections.ConfigDict(dict(learning_rate=lrs))
  return c
