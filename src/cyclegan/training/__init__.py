"""Training: the loop, checkpoints, the image pool, the lr schedule, the run log."""

from cyclegan.training.loop import train, train_step

__all__ = ["train", "train_step"]
