#!/usr/bin/env bash
# Every measurement that needs one GPU, in one go, each result as JSON (and each figure with
# its report.json) under OUT_DIR; a failing step is logged and the rest go on.
#
#   bash benchmarks/gpu_suite.sh OUT_DIR [--short]
#
# Steps run in order of importance: the speed goals (grokking, training, sharpness), the
# CPU/GPU agreement cases (benchmarks/agreement.py), the central flow and neural-collapse
# speeds; without --short also the full grokking figure (p = 113, 40k steps, 5 seeds) and the
# central-flow figure on the public example's configuration (400 steps).
# Environment: DEADLINE_S=N stops the suite N seconds after it starts (each step gets the time
# left; a step that cannot start with 20 s left is skipped), for a device lent by the minute;
# PACK=FILE.tgz packs OUT_DIR into FILE after every step (checkpoints left out), so that what
# was measured survives a call that is cut off. The numbers go into benchmarks/README.md and
# README.md by hand, with the device's name, which each JSON records.
set -u
out=${1:?usage: bash benchmarks/gpu_suite.sh OUT_DIR [--short]}
short=${2:-}
deadline=$(( SECONDS + ${DEADLINE_S:-1000000} ))
mkdir -p "$out"
pack() {
  if [ -n "${PACK:-}" ]; then
    tar czf "$PACK.tmp" --exclude=checkpoints -C "$(dirname "$out")" "$(basename "$out")" \
      && mv "$PACK.tmp" "$PACK"
  fi
}
run() {   # run NAME CMD...: CMD's output in OUT_DIR/NAME.log, its status in OUT_DIR/status.txt
  local name=$1; shift
  local left=$(( deadline - SECONDS ))
  if [ "$left" -lt 20 ]; then
    echo "$name skipped (deadline)" >> "$out/status.txt"; return
  fi
  local t0=$SECONDS
  timeout "$left" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc $((SECONDS - t0)) s" >> "$out/status.txt"
  pack
}
python -c "import jax; print(jax.__version__, jax.devices())" > "$out/devices.txt" 2>&1
python -c "
import jax, jax.numpy as jnp
jax.config.update('jax_enable_x64', True)
key = jax.random.PRNGKey(3)
print('normal(PRNGKey(3), 3):', jax.random.normal(key, (3,), jnp.float64).tolist(), 'float64',
      jax.random.normal(key, (3,), jnp.float32).tolist(), 'float32')" \
    >> "$out/devices.txt" 2>&1   # the random streams, to compare with a CPU's
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv \
    >> "$out/devices.txt" 2>&1
# Does this backend flush float32 subnormals to zero inside jit (XLA:CPU does)? It decides when
# a float32 Adam second moment underflows (see opt.moments_float64).
python -c "
import jax, jax.numpy as jnp
x = jax.jit(lambda a: a * a)(jnp.float32(1e-20))
print('float32 1e-20 * 1e-20 in jit on', jax.devices()[0].platform, '=', float(x),
      '(flushed)' if float(x) == 0 else '(subnormal kept)')" > "$out/subnormals.txt" 2>&1
run grokking_speed python -m benchmarks.grokking_speed --out="$out/grokking_speed.json"
run train_speed python -m benchmarks.train_speed --out="$out/train_speed.json"
run curvature_speed python -m benchmarks.curvature_speed --out="$out/curvature_speed.json"
run agreement python -m benchmarks.agreement --out="$out/agreement.json"
run central_flow_speed python -m benchmarks.central_flow_speed --steps=3 \
    --out="$out/central_flow_speed.json"
run neural_collapse_speed python -m benchmarks.neural_collapse_speed \
    --out="$out/neural_collapse_speed.json"
run central_flow_speed_k4 python -m benchmarks.central_flow_speed --steps=3 --k=4 \
    --out="$out/central_flow_speed_k4.json"
run central_flow_speed_f32 python -m benchmarks.central_flow_speed --steps=3 --float32 \
    --out="$out/central_flow_speed_f32.json"
if [ "$short" != "--short" ]; then
  run grokking python -m experiments.reproduce --figure=grokking --root="$out/reproduce"
  run central_flow_figure python -m experiments.reproduce --figure=central_flow_speed \
      --root="$out/reproduce"
fi
cat "$out/status.txt"
