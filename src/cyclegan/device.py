"""Which device to run on: `auto` picks CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

import torch

from cyclegan.config import ConfigError


def pick_device(name: str) -> torch.device:
    """auto: cuda, then mps, then cpu; an explicit device must exist."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise ConfigError(
            f"--device {name}: no {name.upper()} device is available here; "
            "use --device cpu or --device auto"
        )
    return torch.device(name)
