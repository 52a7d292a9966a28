"""Before a new run's first step: fit each generator's global paths to the data, the sharpness
filter (--sharpness, training/sharpness_fit.py), the colour map (--colour,
training/colour_fit.py) and then the edge-aware detail path (--detail,
training/detail_fit.py), on one sample of each domain's training images.

The filter goes first: a sharpening widens the colour histogram as a contrast curve would, so
the colour map is fitted to the filtered source images, left with only what the filter cannot
explain; the detail path last, on the source through both, left with the changes of texture
that depend on the local edges. The fits are deterministic for a seed (under torchrun every
process computes the same, and DDP hands every process rank 0's weights in any case).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from cyclegan.data.dataset import UnpairedDataset
from cyclegan.models.colour import GlobalColour
from cyclegan.models.detail import EdgeDetail
from cyclegan.models.sharpness import GlobalSharpness
from cyclegan.training.colour_fit import ColourFit, fit_colour_map_to_images
from cyclegan.training.detail_fit import DetailFit, fit_detail
from cyclegan.training.sharpness_fit import SharpnessFit, fit_sharpness

SAMPLE_IMAGES = 256  # training crops of each domain, at most (the filter's spectra need many)
SAMPLE_PIXELS = 2**24  # ... and at most this many pixels a domain (256 crops of 256 px)
# crops of each domain, spread over the sample, whose pixels the colour fit draws from: on
# learn_photos' channel mix a fit on all 200 crops ended 2.4-2.9 dB lower after training than
# one on 64 (benchmarks/RESULTS.md, "A global sharpness filter")
COLOUR_IMAGES = 64


@dataclass
class GlobalPaths:
    """One generator's global paths, either of them may be missing."""

    sharpness: GlobalSharpness | None = None
    colour: GlobalColour | None = None
    detail: EdgeDetail | None = None


def fit_global_paths(
    paths: dict[str, GlobalPaths],
    dataset: UnpairedDataset,
    seed: int,
    log: Callable[[str], None] = print,
) -> list[SharpnessFit | ColourFit | DetailFit]:
    """Fit the paths of every direction in `paths` ("AtoB" and/or "BtoA") in place."""
    generator = torch.Generator().manual_seed(seed)
    # the detail fit draws from a stream of its own: with it or without, the other fits (and
    # so a run whose detail path stays off) are the same
    own_stream = torch.Generator().manual_seed(seed)
    images_a, images_b = domain_images(dataset, generator)
    fits: list[SharpnessFit | ColourFit | DetailFit] = []
    for direction, path in paths.items():
        source, target = (images_a, images_b) if direction == "AtoB" else (images_b, images_a)
        if path.sharpness is not None:
            fits.append(fit_sharpness(path.sharpness, source, target, direction))
            log(fits[-1].describe())
            with torch.no_grad():
                device = path.sharpness.kernel.device
                source = path.sharpness(source.to(device)).clamp(-1.0, 1.0).cpu()
        if path.colour is not None:
            device = path.colour.matrix.device
            colour_source = spread(source, COLOUR_IMAGES).to(device)
            colour_target = spread(target, COLOUR_IMAGES).to(device)
            fits.append(
                fit_colour_map_to_images(
                    path.colour, colour_source, colour_target, generator, direction
                )
            )
            log(fits[-1].describe())
            if path.detail is not None:
                with torch.no_grad():
                    source = path.colour(source.to(device)).cpu()
        if path.detail is not None:
            device = path.detail.gains.device
            fits.append(
                fit_detail(path.detail, source.to(device), target.to(device), own_stream, direction)
            )
            log(fits[-1].describe())
    return fits


def domain_images(
    dataset: UnpairedDataset, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, H, W) training crops of each domain, as the training augmentation makes them,
    spread over the folder: SAMPLE_IMAGES of them, fewer for a smaller folder or large crops."""
    count_a, count_b = len(dataset.paths_a), len(dataset.paths_b)
    if dataset.augment:  # training crops are crop_size squares
        height = width = dataset.crop_size
    else:
        height, width = dataset[(0, 0, 0)]["a"].shape[-2:]
    images = min(SAMPLE_IMAGES, max(count_a, count_b), max(2, SAMPLE_PIXELS // (height * width)))
    a, b = [], []
    for k in range(images):
        sample_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        item = dataset[(k * count_a // images, k * count_b // images, sample_seed)]
        a.append(item["a"])
        b.append(item["b"])
    return torch.stack(a), torch.stack(b)


def spread(images: torch.Tensor, count: int) -> torch.Tensor:
    """`count` of the (N, ...) images (all of them if fewer), evenly spread over the N."""
    if len(images) <= count:
        return images
    return images[torch.linspace(0, len(images) - 1, count).round().long()]
