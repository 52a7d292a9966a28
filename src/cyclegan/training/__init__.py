"""Training: the loop, its state, the step, the image pool, the lr schedule, the run log."""
