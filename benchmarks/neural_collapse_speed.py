r"""The cost of the neural-collapse measures (analysis.neural_collapse.measures: NC1-NC4 and
their variants) on 10,000 x 512 features with C = 10, against one full-batch training step of a
model that produces such features (an MLP 784-512-512-10 with cross-entropy on 10,000 inputs,
MNIST-shaped, random data: no files needed).

    python -m benchmarks.neural_collapse_speed [--out=FILE.json]

Prints ms per call (jitted, compile excluded), XLA's FLOP count, the achieved TFLOP/s and the
fraction of the device's fp32 peak where it is known, and the ratio of the two costs.
"""
import json

import jax
import jax.numpy as jnp
import numpy as np
from absl import app

from analysis import neural_collapse as nc
from benchmarks import common

_N, _D, _C, _IN = 10_000, 512, 10, 784


def _row(name, fn, args, repeats=5):
  jitted = jax.jit(fn)
  sec = common.time_calls(lambda: jax.block_until_ready(jitted(*args)), repeats)
  flops = common.flops_of(fn, *args)
  peak = common.fp32_peak_tflops()
  achieved = flops / sec / 1e12
  return dict(name=name, ms=1e3 * sec, gflop=flops / 1e9, achieved_tflops=achieved,
              fraction_of_peak=achieved / peak if peak else None)


def main(argv):
  del argv
  rng = np.random.RandomState(0)
  y = jnp.asarray(np.repeat(np.arange(_C), _N // _C))
  h = jnp.asarray(rng.randn(_N, _D).astype(np.float32) + 3 * rng.randn(_C, _D)[np.asarray(y)])
  w, b = jnp.asarray(rng.randn(_C, _D).astype(np.float32)), jnp.zeros((_C,), jnp.float32)
  measure = _row("NC1-NC4 (measures)", lambda h, w, b: nc.measures(h, y, _C, w, b), (h, w, b))

  params = {k: jnp.asarray(rng.randn(*s).astype(np.float32) / np.sqrt(s[0]))
            for k, s in (("W1", (_IN, _D)), ("W2", (_D, _D)), ("W3", (_D, _C)))}
  x = jnp.asarray(rng.randn(_N, _IN).astype(np.float32))

  def step(p):
    def loss(p):
      z = jax.nn.relu(jax.nn.relu(x @ p["W1"]) @ p["W2"]) @ p["W3"]
      return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), y[:, None], 1))
    g = jax.grad(loss)(p)
    return jax.tree.map(lambda a, b: a - 0.1 * b, p, g)
  with jax.default_matmul_precision("highest"):
    train = _row("one GD step, MLP 784-512-512-10", step, (params,))
  out = dict(device=common.device_name(), jax=jax.__version__, features=[_N, _D], classes=_C,
             rows=[measure, train], ratio=measure["ms"] / train["ms"])
  print(f"device: {out['device']}  jax {out['jax']}  features {_N} x {_D}, C = {_C}")
  for r in out["rows"]:
    frac = f"{100 * r['fraction_of_peak']:.1f}%" if r["fraction_of_peak"] else "n/a"
    print(f"{r['name']:34s} {r['ms']:9.2f} ms  {r['gflop']:8.2f} GFLOP  "
          f"{r['achieved_tflops']:7.3f} TFLOP/s  of fp32 peak {frac}")
  print(f"measures / training step: {out['ratio']:.2f}")
  if common.OUT.value:
    with open(common.OUT.value, "w") as f:
      json.dump(out, f, indent=1)


if __name__ == "__main__":
  app.run(main)
