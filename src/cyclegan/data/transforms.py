"""Per-sample image transforms for training and evaluation. The training transform resizes
(bicubic), takes a random square crop and optionally a random horizontal flip, drawing every random
number from an explicit `torch.Generator`; nothing touches the global RNGs, so a sample is fully
determined by its seed no matter which DataLoader worker builds it. The test transform is
deterministic: short side to `size`, then a centre crop.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from PIL import Image

from .images import center_square, image_to_tensor, short_side_size

__all__ = ["ResizeMode", "test_transform", "train_transform"]

ResizeMode = Literal["short_side", "square"]


def train_transform(
    image: Image.Image,
    *,
    load_size: int,
    crop_size: int,
    flip: bool,
    resize_mode: ResizeMode,
    generator: torch.Generator,
) -> torch.Tensor:
    """Resize, random-crop to `crop_size` and maybe flip; returns (C, crop, crop) in [-1, 1].

    The resize target is max(load_size, crop_size), so images smaller than the crop are upscaled.
    """
    _check_positive(load_size=load_size, crop_size=crop_size)
    if resize_mode not in get_args(ResizeMode):
        raise ValueError(f"resize_mode must be one of {get_args(ResizeMode)}, got {resize_mode!r}")
    target = max(load_size, crop_size)
    square = resize_mode == "square"
    image = _resize(image, (target, target) if square else short_side_size(image.size, target))

    width, height = image.size
    # Both offsets are always drawn so the generator advances the same way for every image.
    top = int(torch.randint(0, height - crop_size + 1, (1,), generator=generator))
    left = int(torch.randint(0, width - crop_size + 1, (1,), generator=generator))
    image = image.crop((left, top, left + crop_size, top + crop_size))
    if flip and float(torch.rand((1,), generator=generator)) < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image_to_tensor(image)


def test_transform(image: Image.Image, *, size: int) -> torch.Tensor:
    """Short side to `size`, centre crop `size` x `size`; returns (C, size, size) in [-1, 1]."""
    _check_positive(size=size)
    return image_to_tensor(center_square(image, size))


# The name starts with "test_": stop pytest from collecting it wherever a test module imports it.
test_transform.__test__ = False  # type: ignore[attr-defined]


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image
    return image.resize(size, Image.Resampling.BICUBIC)


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name} must be a positive number of pixels, got {value}")
