"""Quality measures of translations."""

from cyclegan.evaluation.metrics import psnr

__all__ = ["psnr"]
