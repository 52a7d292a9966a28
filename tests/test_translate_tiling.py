"""Tiled translation: tiles cover the image, blend without seams, and stay close to untiled
translation where both fit (the tolerance below is measured, not hoped for)."""

from __future__ import annotations

import itertools
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.cli import main
from cyclegan.config import ModelConfig
from cyclegan.data.images import image_to_tensor, load_image
from cyclegan.inference.export import TORCHSCRIPT_EXTRA
from cyclegan.inference.options import EXPORT_SUFFIXES
from cyclegan.inference.tiling import ramp, tile_starts, translate_tiled
from cyclegan.inference.translator import Translator
from cyclegan.models.artifact import describe

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


@pytest.mark.parametrize("export_format", ["onnx", "torchscript"])
def test_exported_generators_tile_with_whole_image_statistics(
    tmp_path: Path, export_format: str
) -> None:
    """The same generator and crop as above, exported: tiles normalize with the whole image's
    statistics too, so ONNX Runtime and TorchScript tile as PyTorch does (before, each tile
    normalized itself: 18-34 grey levels off, blotches)."""
    if export_format == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")
    path = tmp_path / f"g{EXPORT_SUFFIXES[export_format]}"
    argv = ["export", "--weights", str(WEIGHTS), "--format", export_format, "--out", str(path)]
    assert main(argv) == 0
    exported = Translator.from_file(path, device="cpu", precision="fp32")
    pytorch = Translator.from_file(WEIGHTS, device="cpu", precision="fp32")
    crop = image_to_tensor(load_image(PHOTO))[None, :, 100:292, 300:556]
    untiled = exported.translate_tensor(crop)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "tiles use their own statistics" warning
        tiled = exported.translate_tensor(crop, tile=128, overlap=32)
    difference = (tiled - untiled).abs().flatten()
    assert difference.mean() < 0.01 and difference.quantile(0.99) < 0.1
    # the very tiling PyTorch does, up to the backends' float rounding
    same_tiles = pytorch.translate_tensor(crop, tile=128, overlap=32)
    assert (tiled - same_tiles).abs().max() < 2e-3


def test_a_graph_that_cannot_share_statistics_says_so_once(tmp_path: Path) -> None:
    """A TorchScript file with cyclegan metadata whose weights fit no cyclegan generator runs
    as it is; its tiles normalize themselves, and the translator warns, once."""
    model = ModelConfig(generator="resnet_6blocks", ngf=4)
    foreign = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.InstanceNorm2d(3))
    metadata = json.dumps(describe(model, "AtoB", load_size=None, source="foreign"))
    path = tmp_path / "foreign.torchscript.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation and tracer notices
        traced = torch.jit.trace(foreign, torch.zeros(1, 3, 8, 8))
        torch.jit.save(traced, str(path), _extra_files={TORCHSCRIPT_EXTRA: metadata})
    translator = Translator.from_file(path, device="cpu")
    images = torch.rand(1, 3, 40, 40) * 2 - 1
    with pytest.warns(UserWarning, match="each tile normalizes itself") as caught:
        translator.translate_tensor(images, tile=16, overlap=4)
        translator.translate_tensor(images, tile=16, overlap=4)
    assert len(caught) == 1
    assert "translate without --tile, with larger tiles, or with the safetensors" in str(
        caught[0].message
    )
