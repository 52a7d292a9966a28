"""Image quality measures."""

from __future__ import annotations

import math

import torch


def psnr(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 2.0) -> float:
    """Peak signal-to-noise ratio in dB of two same-shaped tensors (default range [-1, 1]).

    Computed over all elements at once; identical inputs give +inf.
    """
    if prediction.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(prediction.shape)} vs {tuple(target.shape)}")
    mse = torch.mean((prediction.double() - target.double()) ** 2).item()
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)
