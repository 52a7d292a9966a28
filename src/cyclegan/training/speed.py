"""How the networks run during training (`SpeedConfig`): memory format, mixed precision,
compilation, recomputed residual blocks. benchmarks/train_speed.py measures each option."""

from __future__ import annotations

import contextlib

import torch

from cyclegan.config import SpeedConfig
from cyclegan.device import cpu_has_amx
from cyclegan.models import CycleGAN


def resolve_precision(device: torch.device, precision: str) -> torch.dtype:
    """auto: bf16 on CUDA GPUs that support it, else fp16 there; bf16 on CPUs with AMX (0.39x
    the fp32 step time at 256 px), fp32 on other CPUs (bf16 measured no faster without AMX)
    and on MPS."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_has_amx() else torch.float32
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def mixed_precision(
    device: torch.device, precision: str
) -> contextlib.AbstractContextManager[object]:
    """The autocast context for `precision` on `device` (none for fp32)."""
    dtype = resolve_precision(device, precision)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def gradient_scaler(device: torch.device, speed: SpeedConfig) -> torch.amp.GradScaler | None:
    """fp16 gradients underflow without loss scaling; bf16 and fp32 need none."""
    if resolve_precision(device, speed.precision) != torch.float16:
        return None
    return torch.amp.GradScaler(device.type)


def fused_adam_available(device: torch.device) -> bool:
    """Adam's fused kernels exist for CPU and CUDA tensors (not MPS in every torch)."""
    return device.type in ("cpu", "cuda")


def prepare_networks(model: CycleGAN, speed: SpeedConfig) -> None:
    """Apply the options that change how the networks run, in place (state dict keys stay
    as they are: checkpoints do not depend on these options)."""
    for generator in (model.gen_ab, model.gen_ba):
        generator.checkpoint_blocks = speed.checkpoint_blocks
    if speed.compile:
        for network in (model.gen_ab, model.gen_ba, model.disc_a, model.disc_b):
            network.compile()
