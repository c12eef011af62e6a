"""Everything that measures parameters or trajectories. Imports dynamics, never experiments.

Importing the package registers its in-loop probes (sharpness, preconditioned and batch
sharpness, Hessian trace, softmax collapse) with dynamics.probes.
"""
from analysis import probes as _probes  # noqa: F401  (registers the probes)
