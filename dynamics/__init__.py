"""Everything that produces a trajectory: models, data, losses, optimizers, the training loop."""
