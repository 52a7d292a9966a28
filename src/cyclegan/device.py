"""Which device to run on (`auto` picks CUDA, then Apple's MPS, then the CPU), and the
arithmetic it runs: cyclegan.precision's policy, answered for this machine."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

from cyclegan.config import ConfigError
from cyclegan.precision import resolve_precision

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


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


# the CPU instructions that compute in bf16 natively: AMX tiles (Intel Xeon since Sapphire
# Rapids) and AVX-512 BF16 dot products (AMD Zen 4, Intel Cooper Lake and later)
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The CPU's feature flags from Linux's /proc/cpuinfo; empty where that file is missing
    or unreadable."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[-1].split())
    return frozenset()


@functools.cache
def cpu_has_bf16(cpuinfo: Path = CPUINFO) -> bool:
    """Whether the CPU computes in bf16 natively (BF16_FLAGS): there bf16 autocast measured
    1.5-2.6x as fast as fp32 for a training step and 1.8-2.0x for a translation (AMX on a
    Xeon, AVX-512 BF16 on an AMD EPYC; benchmarks/RESULTS.md); without, it gains nothing.
    Read from Linux's /proc/cpuinfo flags; False where that file is missing or unreadable."""
    return any(flag in BF16_FLAGS for flag in cpu_flags(cpuinfo))


@functools.cache
def cpu_has_amx(cpuinfo: Path = CPUINFO) -> bool:
    """Whether the CPU has AMX tiles for bf16 (Intel Xeon since Sapphire Rapids), where
    channels-last bf16 convolutions measured faster than the default layout; on AVX-512 BF16
    alone (AMD Zen 4) they measured slower (benchmarks/RESULTS.md)."""
    return "amx_bf16" in cpu_flags(cpuinfo)


def device_precision(device: torch.device, precision: str) -> str:
    """What `precision` (auto, fp32, bf16 or fp16) means on `device`: fp32, bf16 or fp16, by
    cyclegan.precision's policy, asking this machine whether its GPU supports bf16 and its CPU
    computes in bf16 natively. ConfigError for a precision the device does not run."""
    return resolve_precision(
        precision,
        device.type,
        cuda_bf16=device.type == "cuda" and torch.cuda.is_bf16_supported(),
        cpu_bf16=device.type == "cpu" and cpu_has_bf16(),
    )


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[object]:
    """The autocast context of a resolved `precision` on `device`: none for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision])
