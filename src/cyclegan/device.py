"""Which device to run on: `auto` picks CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

import functools
from pathlib import Path

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


CPUINFO = Path("/proc/cpuinfo")


@functools.cache
def cpu_has_amx(cpuinfo: Path = CPUINFO) -> bool:
    """Whether the CPU has AMX tiles for bf16 (Intel Xeon since Sapphire Rapids): there bf16
    autocast measured 2-2.6x as fast as fp32 for a training step and a translation
    (benchmarks/RESULTS.md), where without AMX it measured no faster. Read from Linux's
    /proc/cpuinfo flags; False where that file is missing or unreadable."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return "amx_bf16" in line.split(":", 1)[-1].split()
    return False
