r"""Grokking training speed: the p = 113 configuration of Nanda et al. (experiments/configs/
grokking.py), one run and a sweep of seeds as one vmapped program.

    python -m benchmarks.grokking_speed                   # 1 seed, then 32 seeds
    python -m benchmarks.grokking_speed --seeds=8 --steps_per_chunk=500 --quick

Full-batch AdamW steps of the one-layer transformer (d_model 128, d_mlp 512) on the 3,830
training pairs, float32 at 'highest' precision with float64 cross-entropy (the config's
defaults; --float32_loss for the float32 loss). Prints ms/step, ms/step per run, and achieved
TFLOP/s against the device's fp32 peak (XLA's FLOP count for one step of all members).
"""
import jax
from absl import app, flags

from benchmarks import common
from experiments.configs import grokking

_SEEDS = flags.DEFINE_integer("seeds", 32, "Sweep size of the second measurement.")
_QUICK = flags.DEFINE_bool("quick", False, "The :quick model and data (p = 53), for CPUs.")
_F32_LOSS = flags.DEFINE_bool("float32_loss", False, "float32 cross-entropy.")


def config(seeds: int):
  c = grokking.get_config("quick" if _QUICK.value else "")
  c.train.steps = 10 ** 9 // common.LOG_EVERY.value * common.LOG_EVERY.value
  c.train.log_every = common.LOG_EVERY.value
  c.train.chunk_steps = common.STEPS_PER_CHUNK.value
  c.train.keep = "none"
  c.probes = {}
  c.loss.float64 = not _F32_LOSS.value
  c.sweep = {"seed": tuple(range(seeds))} if seeds > 1 else {}
  return c


def main(argv):
  del argv
  runs = [common.measure_training(config(n), common.REPEATS.value, common.PEAK_TFLOPS.value)
          for n in (1, _SEEDS.value)]
  results = dict(device=common.device_name(), jax=jax.__version__, runs=runs,
                 quick=_QUICK.value, float64_loss=not _F32_LOSS.value)
  common.report(results, common.OUT.value)


if __name__ == "__main__":
  app.run(main)
