r"""RMSProp against its central flow and its stable flow (Cohen et al. 2025, "Understanding
Optimization in Deep Learning with Central Flows", the RMSProp figure), on the bundled digits.

fc-tanh with MSE on a digits subset (classes 0-3), full-batch RMSProp (nu_0 = the squared
gradient at initialization, no bias correction, eps = 1e-8), float64. RMSProp's effective
sharpness lambda_max(P^-1 H), P = (sqrt(nu) + eps) / eta, climbs to 2 by step `start`; from
there the three processes run side by side: real RMSProp, its central flow (w and nu together;
analysis.central_flow) and its stable flow.

    python -m experiments.reproduce --figure=central_flow_rmsprop [--quick]
    python -m experiments.main --config=experiments/configs/central_flow_rmsprop.py:quick --workdir=DIR

The run, and the flows computed from it, as in common.central_flow_config.

Full settings: 500 images, fc-tanh 64x64, eta = 1e-3, 400 steps after 275, 6 tracked
directions. Variant `:quick` (200 images, one hidden layer of 32, eta = 3e-3, 200 steps after
250, 3 tracked directions) for CPU tests.
Figure: RMSProp's loss with the central flow's predicted time-averaged loss over it; effective
sharpness with 2; squared gradient norm and its prediction; distances from RMSProp's midpoint
iterate to the two flows; the effective learning rate 1/mean(P) of the three.
Run time (2-core CPU, measured before the runs moved onto run directories):
--quick ~30 s; full settings ~18 min (sharing the cores).
"""
import ml_collections

from experiments.configs.common import central_flow_config, quick_only


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  quick = quick_only("central_flow_rmsprop", variant)
  return central_flow_config(
      dict(name="rmsprop", learning_rate=3e-3 if quick else 1e-3, b2=0.99, eps=1e-8),
      quick=quick,
      # real steps before the split: past the effective sharpness's first overshoot above 2
      # and the catapult that ends it (full: at step ~225)
      start=250 if quick else 275,
      # several effective eigenvalues sit near 2: eigenvector errors turn into noise in X, so
      # the tracking needs more iterations
      lanczos_iters=60 if quick else 80,
      # the stable flow sharpens to an effective sharpness of ~20: Euler needs dt * S_eff < 2
      stable_substeps=16,
      # full: with k = 3 all three directions were active at 99% of the steps (k binding) and
      # the predicted squared gradient norm read 1.33x the real one; k = 6: 1.09x
      k=3 if quick else 6,
      window=20)
