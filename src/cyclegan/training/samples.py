"""Sample grids: a fixed set of test images translated after every epoch.

Rows: real A, fake B, reconstructed A, then real B, fake A, reconstructed B; one column per
image. The same images every epoch, so the files show progress at a glance.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import save_image

from cyclegan.models import CycleGAN


@torch.no_grad()
def save_sample_grid(
    model: CycleGAN, real_a: torch.Tensor, real_b: torch.Tensor, path: Path
) -> None:
    """Translate both fixed batches and write the 6-row grid to `path` (PNG)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    real_a, real_b = real_a.to(device), real_b.to(device)
    fake_b = model.gen_ab(real_a)
    fake_a = model.gen_ba(real_b)
    rows = [real_a, fake_b, model.gen_ba(fake_b), real_b, fake_a, model.gen_ab(fake_a)]
    columns = max(len(real_a), len(real_b))
    padded = [_pad_row(_as_rgb(row), columns) for row in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    # images are in [-1, 1]; save_image expects [0, 1]
    save_image(torch.cat(padded) * 0.5 + 0.5, path, nrow=columns, padding=2, pad_value=1.0)
    model.train(was_training)


def _as_rgb(images: torch.Tensor) -> torch.Tensor:
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def _pad_row(images: torch.Tensor, columns: int) -> torch.Tensor:
    # domains may have different numbers of test images; blank cells keep the grid aligned
    if len(images) == columns:
        return images
    blank = torch.ones(columns - len(images), *images.shape[1:], device=images.device)
    return torch.cat([images, blank])
