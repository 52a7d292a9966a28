"""--work-size: translate at a smaller short side, carry the change to the full-size image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cyclegan.cli import main
from cyclegan.config import ConfigError, ModelConfig
from cyclegan.inference.translator import Translator
from cyclegan.models.cyclegan import make_generator
from cyclegan.models.generator import ResnetGenerator

MODEL = ModelConfig(generator="resnet_3blocks", ngf=8, residual=True, colour=True)


def swapping_generator(network_changes: bool) -> ResnetGenerator:
    """A residual generator whose colour map swaps red and blue; its network adds a change of
    its own (random weights) or none (its identity start)."""
    torch.manual_seed(0)
    generator = make_generator(MODEL, "AtoB")
    if not network_changes:
        generator.start_as_identity()
    with torch.no_grad():
        generator.colour.matrix.copy_(torch.eye(3)[[2, 1, 0]])
    return generator


def fine_pattern(height: int = 96, width: int = 160, checker: bool = True) -> torch.Tensor:
    """(1, 3, H, W) in [-1, 1]: smooth colour gradients under a one-pixel checkerboard (or
    none), of opposite sign in red and blue (so that swapping them changes every pixel
    differently)."""
    rows = torch.linspace(-0.6, 0.6, height)[:, None].expand(height, width)
    cols = torch.linspace(-0.6, 0.6, width)[None, :].expand(height, width)
    squares = (torch.arange(height)[:, None] + torch.arange(width)[None, :]) % 2
    checker = (squares * 0.3 - 0.15) * float(checker)
    return torch.stack([rows + checker, cols - checker, rows * cols - checker])[None]


def translator(generator: ResnetGenerator) -> Translator:
    return Translator(generator, MODEL, "AtoB", "cpu", precision="fp32")


def test_the_change_made_at_the_work_size_is_added_to_the_full_size_paths() -> None:
    """What --work-size computes, written out: the global paths at full size plus the
    network's change at the work size (its output minus the paths there), upscaled."""
    generator = swapping_generator(network_changes=True)
    images = fine_pattern()
    got = translator(generator).translate_tensor(images, work_size=48)
    with torch.no_grad():
        small = F.interpolate(images, size=(48, 80), mode="bilinear", antialias=True)
        change = generator(small) - generator.global_paths(small)
        upscaled = F.interpolate(change, size=(96, 160), mode="bilinear")
        expected = (generator.global_paths(images) + upscaled).clamp(-1, 1)
    assert got.shape == images.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    # the network did change the image: the test would not notice a missing change otherwise
    assert (upscaled.abs() > 0.01).float().mean() > 0.5


def test_a_colour_map_applies_exactly_and_the_inputs_detail_is_kept() -> None:
    """With no change of the network's own, the work size changes nothing: the colour map
    runs at full size, and the one-pixel checkerboard survives; translating small and
    resizing the output back (what --scale train does) blurs it away."""
    generator = swapping_generator(network_changes=False)
    images = fine_pattern()
    gen = translator(generator)
    full = gen.translate_tensor(images)
    small = gen.translate_tensor(images, work_size=48)
    torch.testing.assert_close(small, full, rtol=0, atol=1e-5)
    resized_back = F.interpolate(
        gen.translate_tensor(F.interpolate(images, size=(48, 80), mode="bilinear")),
        size=(96, 160),
        mode="bilinear",
    )
    assert (resized_back - full).abs().mean() > 0.1  # the checkerboard's 0.15 mostly gone


def test_the_network_sees_the_work_size_and_smaller_images_pass_as_they_are() -> None:
    generator = swapping_generator(network_changes=True)
    seen: list[tuple[int, ...]] = []
    generator.blocks[0].register_forward_hook(lambda _m, args, _o: seen.append(args[0].shape))
    gen = translator(generator)
    out = gen.translate_tensor(fine_pattern(96, 160), work_size=48)
    assert out.shape == (1, 3, 96, 160)
    assert seen == [(1, 32, 12, 20)]  # 48x80 after two stride-2 downsamplings
    # an image no larger than the work size is translated as it is, exactly
    images = fine_pattern(40, 56)
    torch.testing.assert_close(
        gen.translate_tensor(images, work_size=48), gen.translate_tensor(images), rtol=0, atol=0
    )


def test_pil_images_and_arrays_keep_their_size() -> None:
    gen = translator(swapping_generator(network_changes=True))
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 131, 3), np.uint8))
    assert gen(picture, work_size=40).size == (131, 90)
    assert gen(np.asarray(picture), work_size=40).shape == (90, 131, 3)


def test_what_cannot_be_done_is_said() -> None:
    gen = translator(swapping_generator(network_changes=True))
    picture = Image.new("RGB", (64, 64))
    with pytest.raises(ConfigError, match="--work-size or --scale train"):
        gen(picture, work_size=32, scale="train")
    with pytest.raises(ConfigError, match="--work-size must be positive"):
        gen(picture, work_size=0)
    with pytest.raises(ValueError, match=r"too small \(64x64, 4x4 resized; at least 5 px"):
        gen(picture, work_size=4)  # the generator needs 5 px a side
    to_rgb = ModelConfig(generator="resnet_3blocks", ngf=8, channels_a=1)
    gray_to_rgb = Translator(make_generator(to_rgb, "AtoB"), to_rgb, "AtoB", "cpu")
    with pytest.raises(ConfigError, match="as many output as input channels"):
        gray_to_rgb(Image.new("L", (64, 64)), work_size=32)


def test_the_command_line_translates_a_folder_at_a_work_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cyclegan.models.artifact import save_generator

    weights = tmp_path / "AtoB.safetensors"
    save_generator(weights, swapping_generator(network_changes=False), MODEL, "AtoB")
    photos = tmp_path / "photos"
    photos.mkdir()
    rgb = np.random.default_rng(1).integers(0, 256, (72, 100, 3), np.uint8)
    Image.fromarray(rgb).save(photos / "one.png")
    out = tmp_path / "out"
    code = main(["translate", str(photos), "--weights", str(weights), "--out", str(out),
                 "--work-size", "36", "--precision", "fp32"])  # fmt: skip
    assert code == 0, capsys.readouterr()
    result = np.asarray(Image.open(out / "one.png"))
    assert result.shape == (72, 100, 3)
    # the colour map swapped red and blue at full size, pixel noise and all
    assert np.abs(result.astype(int) - rgb[..., ::-1].astype(int)).max() <= 1
    code = main(["translate", str(photos), "--weights", str(weights), "--out", str(out),
                 "--work-size", "-3"])  # fmt: skip
    assert code == 2 and "--work-size must be positive" in capsys.readouterr().err


def test_an_onnx_generator_upscales_its_colour_maps_change_too(tmp_path: Path) -> None:
    """ONNX files hold the global paths inside the graph, out of reach: at a work size their
    colour map's change is upscaled with the network's. Close to the full-size translation on
    smooth content; one-pixel detail loses its swapped colours (PyTorch keeps it: above)."""
    pytest.importorskip("onnxruntime")
    from cyclegan.models.artifact import save_generator

    weights = tmp_path / "AtoB.safetensors"
    save_generator(weights, swapping_generator(network_changes=False), MODEL, "AtoB")
    onnx = Translator.from_file(weights, backend="onnxruntime")
    plain = Translator.from_file(weights, device="cpu", precision="fp32")
    smooth = fine_pattern(checker=False)
    got = onnx.translate_tensor(smooth, work_size=48)
    assert got.shape == smooth.shape
    assert (got - plain.translate_tensor(smooth)).abs().mean() < 0.01
    fine = fine_pattern()
    exact = plain.translate_tensor(fine)
    torch.testing.assert_close(plain.translate_tensor(fine, work_size=48), exact, rtol=0, atol=1e-5)
    assert (onnx.translate_tensor(fine, work_size=48) - exact).abs().mean() > 0.05
