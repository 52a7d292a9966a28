"""Images too small for the generator: the smallest side every generator of the registry takes
(run at that side and one pixel less), and translation that skips smaller images with the
reason, on every path: the command (PyTorch, fp32 and int8 ONNX), the Python API, uploads."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.cli import main
from cyclegan.config import ConfigError, ModelConfig
from cyclegan.inference.options import OutputOptions
from cyclegan.inference.translator import Translator
from cyclegan.models import GENERATORS, build_generator
from cyclegan.models.generator import generator_min_side, translate_any_size
from cyclegan.ui.uploads import Limits, translate_uploads
from tests.test_translate_files import SEED_PHOTOS, WEIGHTS

# (width, height) of images too small for a stride-4 generator (smallest side 5)
TINY_SIZES = [(1, 1), (2, 2), (3, 3), (4, 4), (7, 3), (3, 40)]


def shapes(side: int, other: int) -> list[tuple[int, int]]:
    """(height, width) pairs with `side` as the short side, in both orientations."""
    return [(side, side), (side, other), (other, side)]


@pytest.mark.parametrize("upsample", ["transpose", "resize"])
@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_every_generator_takes_its_smallest_side_and_not_one_pixel_less(
    name: str, upsample: str
) -> None:
    generator = build_generator(name, base_channels=2, upsample=upsample, skip=True).eval()
    smallest = generator_min_side(name)
    with torch.no_grad():
        for height, width in shapes(smallest, 3 * smallest + 1):
            images = torch.rand(1, 3, height, width) * 2 - 1
            assert translate_any_size(generator, images).shape == images.shape
        for height, width in shapes(smallest - 1, 3 * smallest + 1):
            # a 1-pixel bottleneck: one value per channel for instance norm (square) or a
            # reflection pad as large as the side (thin)
            with pytest.raises((RuntimeError, ValueError), match=r"adding size|1 spatial element"):
                translate_any_size(generator, torch.rand(1, 3, height, width))
    # the Translator draws the line where the network does
    translator = Translator(generator, ModelConfig(generator=name, ngf=2), "AtoB", "cpu")
    assert translator.min_side == smallest
    assert translator.too_small((smallest, 3 * smallest)) is None
    assert translator.too_small((smallest - 1, 3 * smallest)) == (
        f"too small ({smallest - 1}x{3 * smallest}; at least {smallest} px on each side)"
    )


def folder_with_tiny_images(root: Path) -> Path:
    photos = root / "photos"
    photos.mkdir()
    for width, height in TINY_SIZES:
        Image.new("RGB", (width, height), "red").save(photos / f"tiny_{width}x{height}.png")
    Image.new("RGB", (5, 5), "blue").save(photos / "just_5x5.png")
    shutil.copy(SEED_PHOTOS / "B_type" / "6.jpeg", photos / "photo.jpeg")
    return photos


def tiny_lines(err: str) -> list[str]:
    return sorted(line for line in err.splitlines() if "too small" in line)


@pytest.mark.parametrize("backend", ["torch", "onnx", "int8"])
def test_translate_skips_tiny_images_with_the_reason_and_translates_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    weights = WEIGHTS
    if backend != "torch":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")
        weights = tmp_path / ("g.int8.onnx" if backend == "int8" else "g.onnx")
        argv = ["export", "--weights", str(WEIGHTS), "--out", str(weights)]
        if backend == "int8":
            argv += ["--quantize", "int8", "--calibration-images", str(SEED_PHOTOS / "A_type")]
        assert main(argv) == 0
    photos = folder_with_tiny_images(tmp_path)
    out = tmp_path / "out"
    capsys.readouterr()

    code = main(["translate", "--weights", str(weights), str(photos), "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 1  # some inputs failed, as with unreadable files
    assert sorted(p.name for p in out.iterdir()) == ["just_5x5.png", "photo.jpeg"]
    assert Image.open(out / "photo.jpeg").size == Image.open(photos / "photo.jpeg").size
    assert tiny_lines(printed.err) == sorted(
        f"skipped {photos / f'tiny_{w}x{h}.png'}: too small ({w}x{h}; at least 5 px on each side)"
        for w, h in TINY_SIZES
    )
    assert "Traceback" not in printed.err
    assert f"translated 2 image(s) into {out}" in printed.out and "6 failed" in printed.out


def test_resizing_decides_what_is_too_small(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = folder_with_tiny_images(tmp_path)
    # --size: the size after resizing counts, so a 2x2 image upscaled to 16 px is translated
    out = tmp_path / "sized"
    argv = ["translate", "--weights", str(WEIGHTS), str(photos), "--out", str(out)]
    assert main([*argv, "--size", "16"]) == 0
    assert Image.open(out / "tiny_2x2.png").size == (16, 16)
    assert Image.open(out / "tiny_7x3.png").size == (37, 16)
    # ... and a --size below the generator's smallest side is refused before any work
    capsys.readouterr()
    assert main([*argv, "--size", "4", "--out", str(tmp_path / "none")]) == 2
    error = capsys.readouterr().err
    assert "--size 4: the resnet_6blocks generator needs at least 5 px on each side" in error
    assert not (tmp_path / "none").exists()
    # --scale train translates at the load size (286 for reference files): all fit
    out = tmp_path / "train"
    assert main([*argv, "--scale", "train", "--out", str(out)]) == 0
    assert Image.open(out / "tiny_1x1.png").size == (1, 1)


def test_the_python_api_raises_a_clear_value_error() -> None:
    translator = Translator.from_file(WEIGHTS, device="cpu")
    with pytest.raises(ValueError, match=r"^the image is too small \(3x3; at least 5 px"):
        translator(Image.new("RGB", (3, 3)))
    with pytest.raises(ValueError, match=r"the image is too small \(4x9;"):
        translator(np.zeros((9, 4, 3), np.uint8))
    # a batch: nothing is translated, and the message names the image that is too small
    batch = [Image.new("RGB", (20, 20)), Image.new("RGB", (7, 3)), Image.new("RGB", (8, 8))]
    with pytest.raises(ValueError, match=r"^image 1 of 3 is too small \(7x3; at least 5 px"):
        translator.translate_images(batch)
    assert [image.size for image in translator.translate_images(batch[::2])] == [(20, 20), (8, 8)]
    with pytest.raises(ValueError, match="images of 4x6 are too small"):
        translator.translate_tensor(torch.zeros(1, 3, 6, 4))
    # with size=..., the resized image counts
    assert translator(Image.new("RGB", (3, 3)), size=5).size == (5, 5)


def test_tiles_no_smaller_than_the_generator_takes(tmp_path: Path) -> None:
    translator = Translator.from_file(WEIGHTS, device="cpu")
    with pytest.raises(ConfigError, match="stride 4 and at least 8"):
        translator.translate_tensor(torch.zeros(1, 3, 40, 40), tile=4, overlap=0)
    # a long thin image: the whole-image statistics pass shrinks it, but keeps its short side
    thin = torch.rand(1, 3, 5, 600) * 2 - 1
    assert translator.translate_tensor(thin, tile=8, overlap=2).shape == thin.shape


def test_uploads_say_which_image_is_too_small(tmp_path: Path) -> None:
    photos = folder_with_tiny_images(tmp_path)
    translator = Translator.from_file(WEIGHTS, device="cpu")
    out = tmp_path / "out"
    out.mkdir()
    uploads = [photos / "tiny_7x3.png", photos / "photo.jpeg"]
    limits = Limits(max_upload_bytes=20_000_000, max_pixels=40_000_000)
    outcome = translate_uploads(uploads, translator, OutputOptions(), limits, out)
    assert outcome.refused == ["tiny_7x3.png is too small (7x3; at least 5 px on each side)"]
    assert [result.name for _, result in outcome.pairs] == ["photo_AtoB.jpeg"]
