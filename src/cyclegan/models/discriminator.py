"""Discriminators: the 70x70 PatchGAN of pix2pix/CycleGAN, the seed's global variant, and a
PatchGAN paired with a per-pixel colour discriminator.

PatchGAN (Isola et al., 2017; CycleGAN appendix 7.2): C64-C128-C256-C512 with 4x4 kernels,
no norm on the first layer, LeakyReLU 0.2, then a 1-channel convolution; each output value
judges one overlapping 70x70 patch (with 3 layers). The seed discriminator normalises every
block, downsamples four times and averages the map to one score per image.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def conv_block(in_channels: int, out_channels: int, stride: int, norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=stride, padding=1)
    ]
    if norm:
        layers.append(nn.InstanceNorm2d(out_channels))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


class PatchDiscriminator(nn.Module):
    """(N, C, H, W) -> (N, 1, h, w) real/fake logits, one per receptive-field patch."""

    def __init__(self, in_channels: int = 3, base_channels: int = 64, num_layers: int = 3) -> None:
        super().__init__()
        layers = conv_block(in_channels, base_channels, stride=2, norm=False)
        channels = base_channels
        for n in range(1, num_layers + 1):
            out = base_channels * min(2**n, 8)
            # the last block keeps the resolution (stride 1), as in pix2pix
            layers += conv_block(channels, out, stride=2 if n < num_layers else 1, norm=True)
            channels = out
        layers.append(nn.Conv2d(channels, 1, kernel_size=4, stride=1, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SeedDiscriminator(nn.Module):
    """(N, C, H, W) -> (N, 1): four normalised stride-2 blocks, a 4x4 conv, global average."""

    def __init__(self, in_channels: int = 3, base_channels: int = 64, num_layers: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for n in range(num_layers):
            out = base_channels * min(2**n, 8)
            layers += conv_block(channels, out, stride=2, norm=True)
            channels = out
        layers.append(nn.Conv2d(channels, 1, kernel_size=4, stride=1, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.body(x)  # (N, 1, h, w)
        return F.adaptive_avg_pool2d(scores, 1).flatten(1)


class PixelDiscriminator(nn.Module):
    """(N, C, H, W) -> (N, 1, H, W): judges each pixel's colour alone (1x1 convolutions).

    No normalisation: an instance norm would subtract each image's mean colour, the very
    thing a colour or hue change moves, so this part sees absolute colours.
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, base_channels, kernel_size=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(base_channels, base_channels, kernel_size=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(base_channels, 1, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class PatchPixelDiscriminator(nn.Module):
    """A PatchGAN (texture and layout) and a PixelDiscriminator (colour distribution).

    Returns both verdicts as a tuple; the adversarial losses average the two parts' losses,
    so the 4096 pixels of a 64 px crop weigh as much as its few patches.
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64, num_layers: int = 3) -> None:
        super().__init__()
        self.patch = PatchDiscriminator(in_channels, base_channels, num_layers)
        self.pixel = PixelDiscriminator(in_channels, base_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.patch(x), self.pixel(x)


DISCRIMINATORS: dict[str, Callable[..., nn.Module]] = {
    "patch": PatchDiscriminator,
    "seed": SeedDiscriminator,
    "patch_pixel": PatchPixelDiscriminator,
}


def smallest_side(discriminator: nn.Module) -> int:
    """The smallest square input side a discriminator can judge in training: every layer
    keeps at least one pixel and every instance norm sees more than one value per channel."""
    side = 1
    while not _fits(discriminator, side):
        side += 1
    return side


def _fits(discriminator: nn.Module, side: int) -> bool:
    for layer in discriminator.modules():
        if isinstance(layer, nn.Conv2d):
            (kernel, _), (stride, _), (padding, _) = layer.kernel_size, layer.stride, layer.padding
            side = (side + 2 * padding - kernel) // stride + 1  # type: ignore[operator]
            if side < 1:
                return False
        elif isinstance(layer, nn.InstanceNorm2d) and side * side < 2:
            return False
    return True


def build_discriminator(
    name: str, in_channels: int = 3, base_channels: int = 64, num_layers: int = 3
) -> nn.Module:
    if name not in DISCRIMINATORS:
        raise ValueError(f"unknown discriminator {name!r}; choose one of {sorted(DISCRIMINATORS)}")
    if name == "seed":
        return SeedDiscriminator(in_channels, base_channels)  # fixed depth, as in the seed
    return DISCRIMINATORS[name](in_channels, base_channels, num_layers)
