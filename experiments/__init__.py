"""Wiring: configs, the launcher, probes and figure reproduction."""
