"""Tiled translation: tiles cover the image, blend without seams, and stay close to untiled
translation where both fit (the tolerance below is measured, not hoped for)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.cli import main
from cyclegan.data.images import image_to_tensor, load_image
from cyclegan.inference.tiling import ramp, tile_starts, translate_tiled
from cyclegan.inference.translator import Translator

REFERENCE = Path(__file__).parent / "data" / "reference"
WEIGHTS = REFERENCE / "reference_resnet_6blocks_ngf8.pth"
PHOTO = Path(__file__).parent / "data" / "seed_photos" / "A_type" / "1.jpg"


@pytest.mark.parametrize(("length", "tile", "overlap"), [(100, 32, 8), (32, 32, 8), (20, 32, 8)])
def test_tiles_cover_every_pixel_and_end_flush(length: int, tile: int, overlap: int) -> None:
    starts = tile_starts(length, tile, overlap)
    covered = torch.zeros(length)
    for start in starts:
        covered[start : start + tile] += 1
    assert covered.min() >= 1 and starts[0] == 0
    assert starts[-1] + min(tile, length) == length
    assert all(b - a <= tile - overlap for a, b in itertools.pairwise(starts))


def test_feathered_windows_never_vanish() -> None:
    window = ramp(32, 8, rise=True, fall=True)
    assert window.min() > 0 and window.max() == 1
    assert torch.all(window[:8].diff() > 0) and torch.all(window[-8:].diff() < 0)
    # neighbours' ramps over the same overlap sum to one: no seam in the weights
    falling, rising = ramp(16, 8, False, True)[-8:], ramp(16, 8, True, False)[:8]
    assert torch.allclose(falling + rising, torch.ones(8))


def test_an_identity_generator_is_reproduced_exactly() -> None:
    images = torch.rand(2, 3, 70, 90)
    assert torch.allclose(translate_tiled(lambda x: x, images, 32, 8, 3), images, atol=1e-6)


def test_tiled_translation_is_close_to_untiled() -> None:
    """A 256x192 crop of a real photo through a random resnet_6blocks generator, tiles of 128
    overlapping by 32. Measured: mean |difference| 0.006, 99th percentile 0.06, max 0.2 on
    [-1, 1] (0.8, 7.5, 25 grey levels) with shared norm statistics; each tile normalizing
    itself instead gives a mean of 0.08. Random generators are a hard case; the max sits
    where a tile's reflected border stands in for context it cannot see."""
    translator = Translator.from_file(WEIGHTS, device="cpu")
    crop = image_to_tensor(load_image(PHOTO))[None, :, 100:292, 300:556]
    untiled = translator.translate_tensor(crop)
    tiled = translator.translate_tensor(crop, tile=128, overlap=32)
    difference = (tiled - untiled).abs().flatten()
    assert difference.mean() < 0.01
    assert difference.quantile(0.99) < 0.1
    assert difference.max() < 0.3
    with torch.no_grad():  # the same tiles, each with its own instance-norm statistics
        own = translate_tiled(translator._forward, crop, 128, 32, 3)
    assert (own - untiled).abs().mean() > 5 * difference.mean()


def test_tile_from_the_command_line_keeps_the_size(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    array = np.random.default_rng(0).integers(0, 255, (150, 230, 3), np.uint8)
    Image.fromarray(array).save(big)
    out = tmp_path / "out"
    assert (
        main(
            [
                "translate",
                "--weights",
                str(WEIGHTS),
                str(big),
                "--out",
                str(out),
                "--tile",
                "64",
                "--overlap",
                "16",
            ]
        )
        == 0
    )
    assert Image.open(out / "big.png").size == (230, 150)
