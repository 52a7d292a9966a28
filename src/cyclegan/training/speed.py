"""How the networks run during training (`SpeedConfig`): memory format, mixed precision,
compilation, recomputed generator layers. benchmarks/train_speed.py measures each option."""

from __future__ import annotations

import contextlib

import torch

from cyclegan.config import SpeedConfig
from cyclegan.device import autocast, device_precision
from cyclegan.models import Model


def mixed_precision(
    device: torch.device, precision: str
) -> contextlib.AbstractContextManager[object]:
    """The autocast context `precision` (auto or a name) means on `device` (none for fp32);
    cyclegan.precision holds the policy, shared with translation."""
    return autocast(device, device_precision(device, precision))


def gradient_scaler(device: torch.device, speed: SpeedConfig) -> torch.amp.GradScaler | None:
    """fp16 gradients underflow without loss scaling; bf16 and fp32 need none. ConfigError
    for a precision the device does not run, before training starts."""
    if device_precision(device, speed.precision) != "fp16":
        return None
    return torch.amp.GradScaler(device.type)


def fused_adam_available(device: torch.device) -> bool:
    """Adam's fused kernels exist for CPU and CUDA tensors (not MPS in every torch)."""
    return device.type in ("cpu", "cuda")


def prepare_networks(model: Model, speed: SpeedConfig) -> None:
    """Apply the options that change how the networks run, in place (state dict keys stay
    as they are: checkpoints do not depend on these options)."""
    for key in model.generator_keys:
        getattr(model, key).checkpoint_blocks = speed.checkpoint_blocks
    if speed.channels_last:
        # instance norm hands back default-layout activations, and a convolution gives
        # channels-last only when its input or its weights have it: so convert the weights
        model.to(memory_format=torch.channels_last)
    if speed.compile:
        for key in model.network_keys:
            getattr(model, key).compile()
