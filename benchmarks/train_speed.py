r"""Training-loop speed: ms/step, achieved FLOP/s and fraction of the fp32 peak.

    python -m benchmarks.train_speed                      # fc-tanh 2x200, MSE, digits, full batch
    python -m benchmarks.train_speed --members=16 --steps_per_chunk=1000
    python -m benchmarks.train_speed --peak_tflops=0.2    # give a CPU's peak to get a fraction
    python -m benchmarks.train_speed --layout=vmap        # the sweep as one batched program
    python -m benchmarks.train_speed --rounds=3           # alternate, keep the fastest of each

Two measurements of the same model and data (the edge-of-stability MLP, 55k parameters, full
batch of the 1,500 digits training images, float32 at 'highest' precision): one run, and a sweep
of --members learning rates (train.members: `auto` is `map` on the CPU, each member the single
run's program, and `vmap`, one batched program, elsewhere; with --members_per_program=0 a `map`
sweep runs in groups of one member per device), and the ratio of a member's cost to the single
run's. Times are whole compiled chunks (steps_per_chunk steps with one log point per log_every
steps, metrics included), after a warm-up chunk that compiles. FLOPs are XLA's count for one
step of all members.
"""
import jax
import numpy as np
from absl import app, flags

from benchmarks import common
from experiments.configs.common import base_config

_MEMBERS = flags.DEFINE_integer("members", 16, "Sweep size of the second measurement.")
_ROUNDS = flags.DEFINE_integer("rounds", 1, "Measure the run and the sweep alternately this many "
                               "times and keep each one's fastest (a shared machine's noise).")
_GROUP = flags.DEFINE_integer("members_per_program", 0, "train.members_per_program of the sweep.")
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
  c.train.members_per_program = _GROUP.value
  if members > 1:
    c.sweep.opt = dict(learning_rate=tuple(np.geomspace(0.001, 0.05, members).tolist()))
  return c


def measure(members: int) -> dict:
  return common.measure_training(config(members), common.REPEATS.value, common.PEAK_TFLOPS.value)


def cost_ratio(runs: list[dict]) -> float:
  """A sweep member's cost over a single run's: the fastest ms/step per member of each."""
  one = min(r["ms_per_step_per_member"] for r in runs if r["members"] == 1)
  many = min(r["ms_per_step_per_member"] for r in runs if r["members"] > 1)
  return many / one


def main(argv):
  del argv
  runs = []
  for _ in range(_ROUNDS.value):
    runs += [measure(1), measure(_MEMBERS.value)]
  results = dict(device=common.device_name(), jax=jax.__version__, layout=_LAYOUT.value,
                 members_per_program=_GROUP.value, runs=runs,
                 per_member_over_single=cost_ratio(runs))
  common.report(results, common.OUT.value)
  print(f"a sweep member costs {results['per_member_over_single']:.2f}x a single run "
        f"(fastest of {_ROUNDS.value} round(s) each)")


if __name__ == "__main__":
  app.run(main)
