"""The global sharpness filter (models/sharpness.py) and its fit before training
(training/sharpness_fit.py): it starts as the identity, is read off the domains' power spectra
when one domain is a sharpened (or softened) version of the other's kind of photo, stays the
identity when the spectra differ only by chance, and goes through training, checkpoints,
translation and the int8 export like the rest of the generator. Also the colour fit's guard,
which keeps the identity where the domains' colours differ only by chance."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cyclegan.checkpoint import load_checkpoint
from cyclegan.cli import main
from cyclegan.config import Config, ConfigError, ModelConfig
from cyclegan.data.images import image_to_tensor, load_image
from cyclegan.inference.translator import Translator
from cyclegan.models import CycleGAN, build_generator
from cyclegan.models.colour import GlobalColour
from cyclegan.models.generator import ResnetGenerator
from cyclegan.models.sharpness import KERNEL_SIZE, GlobalSharpness
from cyclegan.training.colour_fit import fit_colour_map_to_images
from cyclegan.training.loop import train
from cyclegan.training.sharpness_fit import fit_sharpness, kernel_between
from tests.conftest import SEED_PHOTOS, data_of_seed_photos, tiny_config
from tests.test_translate_files import save_run

CROP = 32


def photo_crops(count: int, seed: int) -> torch.Tensor:
    """(count, 3, CROP, CROP) crops in [-1, 1] at random places of the seed's real photos."""
    photos = [image_to_tensor(load_image(p)) for p in sorted(SEED_PHOTOS.rglob("*.jp*g"))]
    rng = np.random.default_rng(seed)
    crops = []
    for k in range(count):
        photo = photos[k % len(photos)]
        top = int(rng.integers(0, photo.shape[1] - CROP + 1))
        left = int(rng.integers(0, photo.shape[2] - CROP + 1))
        crops.append(photo[:, top : top + CROP, left : left + CROP])
    return torch.stack(crops)


def unsharp(images: torch.Tensor, sigma: float = 1.5, amount: float = 2.0) -> torch.Tensor:
    """images + amount * (images - gaussian(images)), clipped: the classic unsharp mask, each
    channel alone, the Gaussian separable and reflecting at the border."""
    radius = int(np.ceil(3 * sigma))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1.0) / sigma) ** 2)
    taps = taps / taps.sum()
    planes = images.reshape(-1, 1, *images.shape[-2:])
    blurred = F.conv2d(
        F.pad(planes, (radius, radius, 0, 0), mode="reflect"), taps.view(1, 1, 1, -1)
    )
    blurred = F.conv2d(
        F.pad(blurred, (0, 0, radius, radius), mode="reflect"), taps.view(1, 1, -1, 1)
    )
    return (images + amount * (images - blurred.view_as(images))).clamp(-1.0, 1.0)


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(10 * torch.log10(4.0 / (x - y).square().mean()))


def test_a_new_filter_is_off_and_an_impulse_is_the_identity_at_any_size_and_layout() -> None:
    sharpness = GlobalSharpness()
    assert sharpness.size == KERNEL_SIZE and not sharpness.on
    assert not sharpness.kernel.requires_grad  # off: nothing to train, nothing for DDP
    images = torch.rand(2, 3, 20, 24) * 2 - 1
    assert sharpness(images) is images
    impulse = torch.zeros(KERNEL_SIZE, KERNEL_SIZE)
    impulse[KERNEL_SIZE // 2, KERNEL_SIZE // 2] = 1.0
    sharpness.load_kernel(impulse)  # on, computing
    assert sharpness.on and sharpness.kernel.requires_grad
    for shape in ((2, 3, 20, 24), (1, 1, 5, 4)):  # a side under the radius: edges repeated
        images = torch.rand(shape) * 2 - 1
        assert torch.allclose(sharpness(images), images, atol=1e-6)
    images = (torch.rand(1, 3, 16, 16) * 2 - 1).contiguous(memory_format=torch.channels_last)
    assert sharpness(images).is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="odd size"):
        GlobalSharpness(12)


def test_the_switch_travels_with_the_weights() -> None:
    fitted = GlobalSharpness()
    fitted.load_kernel(torch.rand(KERNEL_SIZE, KERNEL_SIZE))
    loaded = assert_the_switch_travels(fitted, GlobalSharpness)
    assert loaded.kernel.requires_grad


def assert_the_switch_travels(fitted: torch.nn.Module, new: Callable[[], torch.nn.Module]) -> Any:
    """A fresh global path loaded with a fitted one's weights is on and computes the same; one
    loaded with a new path's weights is off again (the identity). Returns the loaded path."""
    loaded = new()
    loaded.load_state_dict(fitted.state_dict())
    assert loaded.on
    images = torch.rand(1, 3, 16, 16) * 2 - 1
    assert torch.equal(loaded(images), fitted(images))
    loaded.load_state_dict(new().state_dict())  # and off again
    assert not loaded.on and loaded(images) is images
    loaded.load_state_dict(fitted.state_dict())
    return loaded


def test_the_fit_finds_a_sharpening_from_unpaired_photos() -> None:
    # the target is the sharpening of *other* crops: unpaired, as training data are
    source, target = photo_crops(192, seed=1), unsharp(photo_crops(192, seed=2))
    sharpness = GlobalSharpness()
    fit = fit_sharpness(sharpness, source, target, "AtoB")
    assert fit.applied and fit.centre > 1.5, fit
    assert fit.describe().startswith("sharpness filter AtoB: fitted to the other domain's")
    assert "sharpens" in fit.describe()
    held_out = photo_crops(32, seed=3)
    truth = unsharp(held_out)
    with torch.no_grad():
        filtered = sharpness(held_out).clamp(-1, 1)
    untouched = psnr(held_out, truth)
    assert psnr(filtered, truth) > untouched + 6.0, (psnr(filtered, truth), untouched)
    # the kernel keeps the mean and is symmetric (zero-phase), as a sharpening is
    kernel = sharpness.kernel[0, 0].detach()
    assert float(kernel.sum()) == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(kernel, kernel.flip(0), atol=1e-6)
    assert torch.allclose(kernel, kernel.flip(1), atol=1e-6)

    # and the other way round the fit softens
    backwards = GlobalSharpness()
    fit = fit_sharpness(backwards, target, source, "BtoA")
    assert fit.applied and fit.centre < 1.0 and "softens" in fit.describe(), fit


def test_the_filter_stays_off_when_the_spectra_differ_by_chance() -> None:
    source, target = photo_crops(192, seed=1), photo_crops(192, seed=2)
    sharpness = GlobalSharpness()
    fit = fit_sharpness(sharpness, source, target, "AtoB")
    assert not fit.applied and not sharpness.on, fit
    assert torch.equal(sharpness.kernel, GlobalSharpness().kernel)
    assert fit.describe().startswith("sharpness filter AtoB: kept the identity")
    # too small a sample or crops under the kernel's size are no evidence either
    assert not fit_sharpness(GlobalSharpness(), source[:1], target[:1]).applied
    assert not fit_sharpness(GlobalSharpness(), source[..., :6, :6], target[..., :6, :6]).applied


def test_the_kernel_read_off_the_spectra_is_the_filter_applied() -> None:
    # the same images on both sides, one of them filtered by a known symmetric kernel: the
    # kernel comes back (only the border's reflection differs from a periodic filter)
    images = photo_crops(64, seed=4)
    known = torch.zeros(KERNEL_SIZE, KERNEL_SIZE)
    centre = KERNEL_SIZE // 2
    known[centre, centre] = 1.8
    for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
        known[centre + dy, centre + dx] = -0.2
    filtered = GlobalSharpness()
    filtered.load_kernel(known)
    with torch.no_grad():
        target = filtered(images)
    assert torch.allclose(kernel_between(images, target, KERNEL_SIZE), known, atol=0.03)


def test_the_colour_fit_keeps_the_identity_when_colours_differ_by_chance() -> None:
    source, target = photo_crops(96, seed=1), photo_crops(96, seed=2)
    colour = GlobalColour(3)
    fit = fit_colour_map_to_images(colour, source, target, torch.Generator().manual_seed(0))
    assert not fit.applied, fit
    assert fit.describe().startswith("colour map AtoB: kept the identity")
    assert all(torch.equal(a, b) for a, b in zip(colour.parameters(), GlobalColour(3).parameters()))
    # the same photos with their channels permuted stand out from chance, and are fitted
    permuted = target[:, [2, 0, 1]]
    fit = fit_colour_map_to_images(colour, source, permuted, torch.Generator().manual_seed(0))
    assert fit.applied and fit.distance < fit.identity_distance / 4, fit


def write_crops(folder: Path, images: torch.Tensor) -> None:
    folder.mkdir(parents=True)
    for number, image in enumerate(images):
        array = ((image.permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
        Image.fromarray(array).save(folder / f"{number:03d}.png")


def unpaired_root(
    root: Path, change: Callable[[torch.Tensor], torch.Tensor], count: int = 96
) -> Path:
    """trainA: `count` crops of the seed's photos; trainB: as many other crops through
    `change`; testA and testB alike, 4 each."""
    write_crops(root / "trainA", photo_crops(count, seed=1))
    write_crops(root / "trainB", change(photo_crops(count, seed=2)))
    write_crops(root / "testA", photo_crops(4, seed=3))
    write_crops(root / "testB", change(photo_crops(4, seed=4)))
    return root


def assert_translation_is_the_generators(run_dir: Path, config: Config, image_file: Path) -> None:
    """The run's translation of the image is the same as its A->B generator's own forward
    (so it goes through the generator's global paths)."""
    translator = Translator.from_run(run_dir, "AtoB", device="cpu", precision="fp32")
    image = image_to_tensor(load_image(image_file))[None]
    generator = CycleGAN(config.model).gen_ab
    generator.load_state_dict(
        load_checkpoint(run_dir / "checkpoints" / "latest.pt")["models"]["gen_ab"]
    )
    with torch.no_grad():
        assert torch.allclose(
            translator.translate_tensor(image), generator.eval()(image), atol=1e-5
        )


@pytest.fixture(scope="module")
def sharpened_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """trainA: crops of the seed's photos; trainB: other crops, sharpened; test sets alike."""
    return unpaired_root(tmp_path_factory.mktemp("sharpened"), unsharp)


def test_training_fits_the_filters_once_and_translation_applies_them(
    sharpened_root: Path, tmp_path: Path
) -> None:
    options = {"preset": "fast", "ngf": 8, "batch_size": 2, "load_size": 32, "seed": 3}
    config = tiny_config(sharpened_root, tmp_path, **options)
    assert config.model.sharpness  # the fast preset has it
    lines: list[str] = []
    run_dir = train(config, should_stop=lambda step: step == 2, log=lines.append)
    fitted = [line for line in lines if line.startswith("sharpness filter ")]
    assert len(fitted) == 2 and "AtoB: fitted" in fitted[0] and "sharpens" in fitted[0], fitted
    assert "BtoA: fitted" in fitted[1] and "softens" in fitted[1], fitted
    models = load_checkpoint(run_dir / "checkpoints" / "latest.pt")["models"]
    assert models["gen_ab"]["sharpness.kernel"][0, 0, 6, 6] > 1.5
    assert models["gen_ba"]["sharpness.kernel"][0, 0, 6, 6] < 1.0

    lines.clear()  # a resumed run has its filters in the checkpoint: no second fit
    checkpoint = run_dir / "checkpoints" / "latest.pt"
    train(config, resume=checkpoint, should_stop=lambda step: step == 4, log=lines.append)
    assert not any(line.startswith("sharpness filter ") for line in lines)

    # the run's translation goes through the filter
    assert_translation_is_the_generators(run_dir, config, sharpened_root / "testA" / "000.png")


def test_a_sharpness_filter_needs_as_many_channels_in_both_domains() -> None:
    with pytest.raises(ConfigError, match="--sharpness needs as many channels in both domains"):
        ModelConfig(sharpness=True, channels_b=1)
    with pytest.raises(ValueError, match="as many output as input channels"):
        build_generator("resnet_3blocks", 3, 1, sharpness=True)


def run_with_a_global_path(
    tmp_path: Path, options: dict[str, object], set_path: Callable[[ResnetGenerator], None]
) -> tuple[Path, torch.Tensor, torch.Tensor]:
    """A saved `fast` run (ngf 8, 32 px, the seed's photos as its data, on which an int8
    export calibrates) whose generators' global path `set_path` sets, their last convolution
    random so the network adds to it; with one of the seed's photos and its translation."""
    data = data_of_seed_photos(tmp_path)
    base = {"preset": "fast", "ngf": 8, "load_size": 36, "crop_size": 32, "data": str(data)}
    config = Config().with_overrides({**base, **options})
    torch.manual_seed(0)
    model = CycleGAN(config.model)
    for generator in (model.gen_ab, model.gen_ba):
        set_path(generator)
        with torch.no_grad():
            generator.decoder[-1].weight.normal_(0.0, 0.02)
    run = save_run(tmp_path / "run", config, model)
    image = image_to_tensor(load_image(SEED_PHOTOS / "A_type" / "1.jpg"))[None]
    translator = Translator.from_run(run, "AtoB", device="cpu", precision="fp32")
    return run, image, translator.translate_tensor(image)


def test_the_int8_export_keeps_the_filter_in_float(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from cyclegan.inference.quantize import psnr as export_psnr

    kernel = torch.zeros(KERNEL_SIZE, KERNEL_SIZE)
    kernel[5:8, 5:8] = -0.25
    kernel[6, 6] = 3.0
    run, image, expected = run_with_a_global_path(
        tmp_path, {}, lambda generator: generator.sharpness.load_kernel(kernel)
    )
    assert (expected - image).abs().mean() > 0.02  # the filter is at work

    assert main(["export", "--run", str(run), "--quantize", "int8"]) == 0
    path = run / "exported" / "AtoB.int8.onnx"
    graph = onnx.load(str(path)).graph
    weights = {tensor.name: list(tensor.dims) for tensor in graph.initializer}
    filters = [
        n for n in graph.node if n.op_type == "Conv" and weights.get(n.input[1], [])[:2] == [1, 1]
    ]
    assert len(filters) == 1  # in float, beside the quantized network
    assert any(
        n.op_type in ("QLinearConv", "ConvInteger") or "Quantize" in n.op_type for n in graph.node
    )
    int8 = Translator.from_file(path, device="cpu")
    assert export_psnr(int8.translate_tensor(image), expected) >= 30.0
