"""Translation's speed options: inference_mode, channels_last and reduced precision give what the
plain path gives (within the tolerances stated here). Which precision each device runs, and
what it refuses, is training's policy too: tests/test_precision_choice.py."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from cyclegan.cli import main
from cyclegan.config import ConfigError, ModelConfig
from cyclegan.data.images import image_to_tensor, load_image
from cyclegan.inference.translator import (
    CPU_BATCH_PIXELS,
    CPU_CHANNELS_LAST,
    Translator,
    default_channels_last,
)
from cyclegan.models.cyclegan import make_generator
from cyclegan.models.generator import translate_any_size
from tests.test_translate_files import SEED_PHOTOS, WEIGHTS

PHOTO = SEED_PHOTOS / "B_type" / "2.jpeg"  # 272x185: odd sides, so padding is exercised


def photo() -> torch.Tensor:
    return image_to_tensor(load_image(PHOTO))[None]


def plain(translator: Translator, images: torch.Tensor) -> torch.Tensor:
    """The path before the speed options: no_grad, fp32, default memory format."""
    generator = copy.deepcopy(translator.generator).to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        return translate_any_size(generator, images, translator.stride)


def test_channels_last_is_the_default_on_cuda_and_where_measured_faster_on_the_cpu() -> None:
    assert default_channels_last(torch.device("cuda"), "fp16") is True
    cpu = torch.device("cpu")
    assert default_channels_last(cpu, "fp32", amx=True) is ("fp32" in CPU_CHANNELS_LAST)
    assert default_channels_last(cpu, "bf16", amx=True) is ("bf16" in CPU_CHANNELS_LAST)
    # without AMX (AVX-512 BF16 alone) every layout measured faster contiguous
    assert default_channels_last(cpu, "bf16", amx=False) is False
    assert default_channels_last(cpu, "fp32", amx=False) is False
    assert default_channels_last(torch.device("mps"), "fp16") is False
    fp32 = Translator.from_file(WEIGHTS, device="cpu", precision="fp32")
    assert fp32.channels_last is False  # as measured


@pytest.mark.parametrize("channels_last", [False, True])
def test_inference_mode_and_channels_last_match_the_plain_path(channels_last: bool) -> None:
    translator = Translator.from_file(WEIGHTS, device="cpu", precision="fp32")
    translator = Translator(
        translator.generator,
        translator.model,
        "AtoB",
        "cpu",
        precision="fp32",
        channels_last=channels_last,
    )
    images = photo()
    translated = translator.translate_tensor(images)
    # measured max 2e-6 (channels_last sums in another order); 1e-4 is far below a grey level
    assert (translated - plain(translator, images)).abs().max() < 1e-4
    assert translated.dtype == torch.float32 and not translated.is_inference()
    translated.add_(1)  # an ordinary tensor: callers may change it in place


# measured on this photo against fp32, on [-1, 1]: bf16 (8 bits of mantissa) mean 0.0035, max
# 0.037 (52.6 dB); fp16 (11 bits) mean 0.00044, max 0.0047 (70.6 dB), 8x closer as its 3 more
# bits say. The bounds leave 4x for other CPUs' kernels (another order of sums)
REDUCED_PRECISION_TOLERANCE = {"bf16": (0.015, 0.15), "fp16": (0.002, 0.02)}


@pytest.mark.parametrize("precision", sorted(REDUCED_PRECISION_TOLERANCE))
def test_reduced_precision_on_the_cpu_matches_fp32_within_its_tolerance(precision: str) -> None:
    fp32 = Translator.from_file(WEIGHTS, device="cpu", precision="fp32")
    reduced = Translator.from_file(WEIGHTS, device="cpu", precision=precision)
    assert reduced.precision == precision
    images = photo()
    expected, translated = fp32.translate_tensor(images), reduced.translate_tensor(images)
    assert translated.dtype == torch.float32
    difference = (translated - expected).abs()
    mean_bound, max_bound = REDUCED_PRECISION_TOLERANCE[precision]
    assert float(difference.mean()) < mean_bound and float(difference.max()) < max_bound
    assert float(difference.mean()) > mean_bound / 100  # it did run in reduced precision


def test_tiles_in_bf16_translate_like_tiles_in_fp32() -> None:
    """The tiles' shared norm statistics work under autocast: bf16 tiles stay as close to fp32
    tiles as whole images do."""
    fp32 = Translator.from_file(WEIGHTS, device="cpu", precision="fp32")
    bf16 = Translator.from_file(WEIGHTS, device="cpu", precision="bf16")
    images = photo()
    tiled = bf16.translate_tensor(images, tile=128, overlap=32)
    assert tiled.shape == images.shape
    expected = fp32.translate_tensor(images, tile=128, overlap=32)
    assert float((tiled - expected).abs().mean()) < REDUCED_PRECISION_TOLERANCE["bf16"][0]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_precision_on_the_command_line(tmp_path: Path, precision: str) -> None:
    argv = ["translate", "--weights", str(WEIGHTS), str(PHOTO), "--out", str(tmp_path)]
    assert main([*argv, "--precision", precision, "--device", "cpu"]) == 0
    assert (tmp_path / PHOTO.name).is_file()


def test_onnx_generators_refuse_a_torch_precision() -> None:
    with pytest.raises(ConfigError, match="--precision bf16 applies to PyTorch generators"):
        Translator.from_file(WEIGHTS, device="cpu", backend="onnxruntime", precision="bf16")


def test_large_images_go_through_the_cpu_generator_one_at_a_time() -> None:
    # a batch of 4 720p frames ran at 0.61x the speed per frame of one at a time on the CPU
    model = ModelConfig(generator="resnet_6blocks", ngf=4)
    torch.manual_seed(0)
    translator = Translator(make_generator(model, "AtoB"), model, "AtoB", "cpu", precision="fp32")
    passes: list[int] = []
    translator.generator.register_forward_pre_hook(lambda _, args: passes.append(len(args[0])))

    large = torch.rand(3, 3, 520, 520) * 2 - 1  # each over CPU_BATCH_PIXELS
    together = translator.translate_tensor(large)
    assert passes == [1, 1, 1]
    alone = torch.cat([translator.translate_tensor(image[None]) for image in large])
    assert torch.equal(together, alone)

    passes.clear()
    translator.translate_tensor(torch.rand(5, 3, 64, 64) * 2 - 1)
    assert passes == [5]  # small ones still share a pass
    passes.clear()
    frames = [np.full((200, 600, 3), level, np.uint8) for level in (0, 90, 180)]
    outputs = translator.translate_images(frames)
    assert passes == [CPU_BATCH_PIXELS // (200 * 600), 1] == [2, 1]
    assert [output.shape for output in outputs] == [(200, 600, 3)] * 3
