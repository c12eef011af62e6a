"""Everything that measures parameters or trajectories. Imports dynamics, never experiments."""
