"""Wiring: configs, the launcher and figure reproduction. Imports dynamics and analysis (which
registers its in-loop probes)."""
import analysis  # noqa: F401  (registers the curvature and grokking probes)
