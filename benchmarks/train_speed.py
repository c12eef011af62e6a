r"""Training-loop speed: ms/step, achieved FLOP/s and fraction of the fp32 peak.

    python -m benchmarks.train_speed                      # fc-tanh 2x200, MSE, digits, full batch
    python -m benchmarks.train_speed --members=16 --steps_per_chunk=1000
    python -m benchmarks.train_speed --peak_tflops=0.2    # give a CPU's peak to get a fraction
    python -m benchmarks.train_speed --layout=vmap        # the sweep as one batched program

Two measurements of the same model and data (the edge-of-stability MLP, 55k parameters, full
batch of the 1,500 digits training images, float32 at 'highest' precision): one run, and a sweep
of --members learning rates as one vmapped program. Times are whole compiled chunks
(steps_per_chunk steps with one log point per log_every steps, metrics included), after a
warm-up chunk that compiles. FLOPs are XLA's count for one step of all members.
"""
import jax
import numpy as np
from absl import app, flags

from benchmarks import common
from experiments.configs.common import base_config

_MEMBERS = flags.DEFINE_integer("members", 16, "Sweep size of the second measurement.")
_LAYOUT = flags.DEFINE_enum("layout", "auto", ["auto", "vmap", "map"],
                            "train.members: how the sweep's members share the program.")


def config(members: int):
  c = base_config("mlp", "digits", "gd")
  c.model.widths = (200, 200)
  c.model.activation = "tanh"
  c.train.steps = 10 ** 9 // common.LOG_EVERY.value * common.LOG_EVERY.value
  c.train.log_every = common.LOG_EVERY.value
  c.train.chunk_steps = common.STEPS_PER_CHUNK.value
  c.train.keep = "none"
  c.train.members = _LAYOUT.value
  if members > 1:
    c.sweep.opt = dict(learning_rate=tuple(np.geomspace(0.001, 0.05, members).tolist()))
  return c


def measure(members: int) -> dict:
  return common.measure_training(config(members), common.REPEATS.value, common.PEAK_TFLOPS.value)


def main(argv):
  del argv
  results = dict(device=common.device_name(), jax=jax.__version__, layout=_LAYOUT.value,
                 runs=[measure(1), measure(_MEMBERS.value)])
  common.report(results, common.OUT.value)


if __name__ == "__main__":
  app.run(main)
