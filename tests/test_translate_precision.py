"""Translation's speed options: inference_mode, channels_last and reduced precision give what the
plain path gives (within the tolerances stated here), and each device gets the precision it
runs; the CUDA choices are checked as far as a machine without a GPU can."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from cyclegan.cli import main
from cyclegan.config import ConfigError
from cyclegan.data.images import image_to_tensor, load_image
from cyclegan.inference.options import resolve_precision
from cyclegan.inference.translator import (
    CPU_CHANNELS_LAST,
    Translator,
    default_channels_last,
)
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


@pytest.mark.parametrize(
    ("precision", "device", "bf16_supported", "expected"),
    [
        ("auto", "cpu", True, "fp32"),
        ("auto", "mps", True, "fp32"),
        ("auto", "cuda", True, "bf16"),
        ("auto", "cuda", False, "fp16"),
        ("fp16", "cuda", True, "fp16"),
        ("bf16", "cpu", True, "bf16"),
        ("fp16", "mps", True, "fp16"),
        ("fp32", "cuda", False, "fp32"),
    ],
)
def test_each_device_gets_the_precision_it_runs(
    precision: str, device: str, bf16_supported: bool, expected: str
) -> None:
    assert resolve_precision(precision, device, bf16_supported) == expected


@pytest.mark.parametrize(
    ("precision", "device", "bf16_supported", "message"),
    [
        ("fp16", "cpu", True, "--precision fp16 does not run on cpu; choose one of"),
        ("bf16", "cuda", False, "this GPU does not support bf16; use fp16 or auto"),
        ("bf16", "mps", True, "--precision bf16 does not run on mps"),
        ("int4", "cpu", True, "unknown precision 'int4'"),
    ],
)
def test_precisions_a_device_does_not_run_are_refused(
    precision: str, device: str, bf16_supported: bool, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_precision(precision, device, bf16_supported)


def test_channels_last_is_the_default_on_cuda_and_where_measured_faster_on_the_cpu() -> None:
    assert default_channels_last(torch.device("cuda"), "fp16") is True
    assert default_channels_last(torch.device("cpu"), "fp32") is ("fp32" in CPU_CHANNELS_LAST)
    assert default_channels_last(torch.device("cpu"), "bf16") is ("bf16" in CPU_CHANNELS_LAST)
    assert default_channels_last(torch.device("mps"), "fp16") is False
    assert Translator.from_file(WEIGHTS, device="cpu").channels_last is False  # as measured


@pytest.mark.parametrize("channels_last", [False, True])
def test_inference_mode_and_channels_last_match_the_plain_path(channels_last: bool) -> None:
    translator = Translator.from_file(WEIGHTS, device="cpu")
    translator = Translator(
        translator.generator, translator.model, "AtoB", "cpu", channels_last=channels_last
    )
    images = photo()
    translated = translator.translate_tensor(images)
    # measured max 2e-6 (channels_last sums in another order); 1e-4 is far below a grey level
    assert (translated - plain(translator, images)).abs().max() < 1e-4
    assert translated.dtype == torch.float32 and not translated.is_inference()
    translated.add_(1)  # an ordinary tensor: callers may change it in place


def test_bf16_on_the_cpu_matches_fp32_within_its_tolerance() -> None:
    fp32 = Translator.from_file(WEIGHTS, device="cpu")
    bf16 = Translator.from_file(WEIGHTS, device="cpu", precision="bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    images = photo()
    expected, translated = fp32.translate_tensor(images), bf16.translate_tensor(images)
    assert translated.dtype == torch.float32
    difference = (translated - expected).abs()
    # bf16 keeps 8 bits of mantissa: measured mean 0.004, max 0.05 on [-1, 1] here
    assert float(difference.mean()) < 0.015 and float(difference.max()) < 0.15
    assert float(difference.mean()) > 0  # it did run in bf16


def test_tiles_in_bf16_translate_like_tiles_in_fp32() -> None:
    """The tiles' shared norm statistics work under autocast: bf16 tiles stay as close to fp32
    tiles as whole images do."""
    fp32 = Translator.from_file(WEIGHTS, device="cpu")
    bf16 = Translator.from_file(WEIGHTS, device="cpu", precision="bf16")
    images = photo()
    tiled = bf16.translate_tensor(images, tile=128, overlap=32)
    assert tiled.shape == images.shape
    expected = fp32.translate_tensor(images, tile=128, overlap=32)
    assert float((tiled - expected).abs().mean()) < 0.015


def test_precision_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["translate", "--weights", str(WEIGHTS), str(PHOTO), "--out"]
    assert main([*argv, str(tmp_path / "bf16"), "--precision", "bf16"]) == 0
    assert (tmp_path / "bf16" / PHOTO.name).is_file()
    capsys.readouterr()  # the progress bar
    assert main([*argv, str(tmp_path / "fp16"), "--precision", "fp16", "--device", "cpu"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "--precision fp16 does not run on cpu" in error
    assert not (tmp_path / "fp16").exists()


def test_onnx_generators_refuse_a_torch_precision() -> None:
    with pytest.raises(ConfigError, match="--precision bf16 applies to PyTorch generators"):
        Translator.from_file(WEIGHTS, device="cpu", backend="onnxruntime", precision="bf16")
