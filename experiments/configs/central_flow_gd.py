r"""GD against its central flow and its stable (gradient) flow (Cohen et al. 2025, "Understanding
Optimization in Deep Learning with Central Flows", the GD figure), on the bundled digits.

fc-tanh with MSE on a digits subset (classes 0-3), full-batch GD at a learning rate whose 2/eta
lies below the initial sharpness, float64. GD first catapults; from its iterate at step
`start` the three processes run side by side for `steps` steps: real GD, the central flow
(analysis.central_flow, `k` tracked eigenvalues, `substeps` Euler substeps) and the stable flow.

    python -m experiments.reproduce --figure=central_flow_gd [--quick]

Variant `:quick` (200 images, one hidden layer of 32, 200 steps) for CPU tests.
Figure: GD's loss with the central flow's predicted time-averaged loss over it; sharpness of
the three processes with 2/eta; distances from GD's midpoint iterate to the two flows.
Run time (2-core CPU, measured): --quick ~25 s; full settings ~5 min.
"""
import ml_collections


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  if variant not in ("", "quick"):
    raise ValueError(f"central_flow_gd variant {variant!r} is not allowed; allowed: 'quick'")
  quick = variant == "quick"
  return ml_collections.ConfigDict(dict(
      n_train=200 if quick else 500,        # digits of classes 0-3
      widths=(32,) if quick else (64, 64),
      activation="tanh",
      learning_rate=0.5,                    # 2/eta = 4, below the initial sharpness
      start=30,                             # GD steps before the processes split (catapult)
      steps=200 if quick else 400,
      k=3, substeps=4,
      # warm Lanczos steps per optimizer step: X ~ (lambda - 2/eta) / (dt eta |g|^2 / 2) turns
      # eigenvalue errors into noise in X, so the larger network needs more
      lanczos_iters=20 if quick else 40,
      seed=0,
  ))
