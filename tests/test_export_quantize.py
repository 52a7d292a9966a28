"""`cyclegan export --quantize int8`: an int8 ONNX file calibrated on the run's own test photos,
checked against the fp32 generator on photos held out of calibration, refused below
--min-psnr, and translated like any other exported file (tiles included)."""

from __future__ import annotations

import re
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from cyclegan.cli import main
from cyclegan.config import Config, load_config, save_config
from cyclegan.data.images import image_to_tensor, load_image
from cyclegan.inference.translator import Translator
from cyclegan.models import CycleGAN
from tests.test_translate_files import WEIGHTS, make_run, save_run

onnx = pytest.importorskip("onnx")  # the `onnx` extra (part of `dev`)
pytest.importorskip("onnxruntime")

from cyclegan.inference.quantize import (  # noqa: E402  (needs onnxruntime)
    psnr,
    split_photos,
    time_interleaved,
)

SEED_PHOTOS = Path(__file__).parent / "data" / "seed_photos"
# the floor the tests hold int8 to: what the export itself refuses below (measured on these
# photos with the tiny random generator: 33.8 dB mean)
MIN_PSNR = 30.0


def run_with_photos(root: Path) -> Path:
    """A tiny run whose dataset's testA holds the seed's four real photos (testB none)."""
    run = make_run(root)
    data = root / "data"
    (data / "testA").mkdir(parents=True)
    (data / "testB").mkdir()
    for index, photo in enumerate(sorted(SEED_PHOTOS.rglob("*.jp*g"))):
        shutil.copy(photo, data / "testA" / f"{index}{photo.suffix}")
    config = Config().with_overrides(
        {"generator": "resnet_6blocks", "ngf": 8, "load_size": 36, "crop_size": 32}
    )
    save_config(config.with_overrides({"data": str(data)}), run / "config.yaml")
    return run


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A run and its AtoB generator exported as int8 (quantizing takes seconds: done once)."""
    run = run_with_photos(tmp_path_factory.mktemp("int8"))
    assert main(["export", "--run", str(run), "--quantize", "int8"]) == 0
    return run, run / "exported" / "AtoB.int8.onnx"


def photo(name: str = "A_type/1.jpg") -> torch.Tensor:
    return image_to_tensor(load_image(SEED_PHOTOS / name))[None]


def test_int8_file_is_quantized_and_carries_its_metadata(quantized: tuple[Path, Path]) -> None:
    _, path = quantized
    model = onnx.load(str(path))
    ops = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "QLinearConv", "DequantizeLinear", "InstanceNormalization"} <= ops
    convolutions = [node.op_type for node in model.graph.node if "Conv" in node.op_type]
    # resnet_6blocks: 15 of its 16 convolutions int8; the last and the upsampling ones float
    assert convolutions.count("QLinearConv") == 15 and convolutions[-1] == "Conv"
    assert convolutions.count("ConvTranspose") == 2
    weights = {t.name: t for t in model.graph.initializer}
    assert all(
        weights[node.input[3]].data_type == onnx.TensorProto.INT8
        for node in model.graph.node
        if node.op_type == "QLinearConv"
    )
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    assert metadata["quantized"] == '"int8"' and metadata["direction"] == "AtoB"


def test_int8_translates_a_real_photo_within_the_psnr_floor(quantized: tuple[Path, Path]) -> None:
    run, path = quantized
    int8 = Translator.from_file(path, device="cpu")
    assert int8.backend == "onnxruntime" and int8.direction == "AtoB"
    image = photo()
    expected = Translator.from_run(run, "AtoB", device="cpu").translate_tensor(image)
    assert psnr(int8.translate_tensor(image), expected) >= MIN_PSNR


def test_export_prints_psnr_and_speed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "g.int8.onnx"
    argv = ["export", "--weights", str(WEIGHTS), "--quantize", "int8", "--out", str(out)]
    assert main([*argv, "--calibration-images", str(SEED_PHOTOS / "A_type")]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert f"wrote {out} (ONNX int8" in printed
    assert "on 1 held-out photo(s) (calibrated on 1)" in printed
    # int8 against both fp32 models, each timed as a median after a warm-up
    speeds = re.search(
        r"dB \(worst [\d.]+\) against fp32 PyTorch on .*; ([\d.]+)x the speed of fp32 PyTorch "
        r"and ([\d.]+)x that of fp32 ONNX Runtime \(median of 5 runs after a warm-up\)",
        printed,
    )
    assert speeds is not None and all(float(speed) > 0 for speed in speeds.groups())
    # one calibration photo sees few of the activation ranges: a warning says so, and why
    warning = next(line for line in captured.err.splitlines() if "calibrated on only" in line)
    assert warning.startswith("warning: calibrated on only 1 photo(s): int8 sets each")
    assert "a chance of 1 in k + 1" in warning and "give 12 or more photos" in warning
    assert Translator.from_file(out, device="cpu").translate_tensor(photo()).shape == (
        1,
        3,
        600,
        1067,
    )


def test_tiles_of_an_int8_file_share_the_whole_images_statistics(
    quantized: tuple[Path, Path],
) -> None:
    """The norms stay float in the int8 graph, so tiled ONNX translation still normalizes every
    tile with the whole image's statistics (no warning) and stays near untiled translation."""
    _, path = quantized
    int8 = Translator.from_file(path, device="cpu")
    image = photo()[..., :192, :256]
    untiled = int8.translate_tensor(image)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the each-tile-alone warning would fail here
        tiled = int8.translate_tensor(image, tile=128, overlap=32)
    assert float((tiled - untiled).abs().mean()) < 0.05  # each-tile-alone measured ~0.1


def test_a_model_below_min_psnr_is_refused_and_not_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_with_photos(tmp_path)
    assert main(["export", "--run", str(run), "--quantize", "int8", "--min-psnr", "99"]) == 1
    warning, message = capsys.readouterr().err.strip().splitlines()  # the run has 4 photos
    assert warning.startswith("warning: calibrated on only 2 photo(s)")
    assert message.startswith("int8 refused, nothing written: PSNR ")
    assert "below --min-psnr 99" in message and "--format onnx without --quantize" in message
    exported = run / "exported"
    assert not exported.exists() or list(exported.iterdir()) == []


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ([], "holds no images"),  # the run's testB has none: BtoA cannot calibrate
        (["--calibration-images", "missing"], "--calibration-images"),
        (["--format", "torchscript"], "--quantize int8 writes ONNX"),
    ],
)
def test_calibration_photos_missing_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], expected: str
) -> None:
    run = run_with_photos(tmp_path)
    argv = ["export", "--run", str(run), "--direction", "BtoA", "--quantize", "int8", *extra]
    assert main([str(a) if a != "missing" else str(tmp_path / "missing") for a in argv]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and expected in error
    assert "Traceback" not in error and not (run / "exported").exists()


def test_weights_without_calibration_photos_say_what_to_give(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["export", "--weights", str(WEIGHTS), "--quantize", "int8"]) == 2
    assert "give a folder of them with --calibration-images" in capsys.readouterr().err


def test_calibration_images_without_quantize_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["export", "--weights", str(WEIGHTS), "--calibration-images", str(SEED_PHOTOS)]
    assert main(argv) == 2
    assert "--calibration-images is for --quantize int8" in capsys.readouterr().err


def test_enough_calibration_photos_give_no_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for index, source in enumerate(sorted(SEED_PHOTOS.rglob("*.jp*g")) * 3):  # 12 crops
        image = load_image(source)
        image.crop((index * 16, 0, index * 16 + 64, 48)).save(photos / f"{index:02d}.png")
    out = tmp_path / "g.int8.onnx"
    argv = ["export", "--weights", str(WEIGHTS), "--quantize", "int8", "--out", str(out)]
    assert main([*argv, "--calibration-images", str(photos), "--min-psnr", "0"]) == 0
    captured = capsys.readouterr()
    assert "on 4 held-out photo(s) (calibrated on 8)" in captured.out
    assert "calibrated on only" not in captured.err


def test_speed_is_the_median_of_runs_after_a_warm_up() -> None:
    """A slow first call (allocations, kernel choice) and one slow timed run (the machine
    busy for a moment) do not move the figure: one timed call each used to be the figure."""
    calls = {"steady": 0, "bumpy": 0}
    slow = {"steady": {0}, "bumpy": {0, 3}}  # call 0 is the warm-up

    def run(name: str) -> None:
        time.sleep(0.2 if calls[name] in slow[name] else 0.01)
        calls[name] += 1

    seconds = time_interleaved({name: lambda name=name: run(name) for name in calls}, 5)
    assert calls == {"steady": 6, "bumpy": 6}
    assert all(0.01 <= value < 0.1 for value in seconds.values()), seconds


def test_check_photos_are_held_out_of_calibration() -> None:
    paths = [Path(f"{index}.png") for index in range(11)]
    calibration, check, held_out = split_photos(paths)
    assert held_out and len(check) == 4 and not set(check) & set(calibration)
    assert split_photos(paths[:1]) == (paths[:1], paths[:1], False)


def test_equalizing_the_norm_inputs_changes_no_output_and_evens_their_spreads() -> None:
    """The per-channel rescaling before quantization is undone by each instance norm."""
    from cyclegan.inference.export import onnx_model, onnx_session
    from cyclegan.inference.onnx_statistics import equalized_graph
    from cyclegan.inference.quantize import norm_input_spreads, padded_to_stride
    from cyclegan.inference.translator import Translator

    translator = Translator.from_file(WEIGHTS, device="cpu")
    proto = onnx_model(translator.generator, translator.model, {"direction": "AtoB"})
    images = [padded_to_stride(photo("B_type/2.jpeg"), translator.stride)]
    spreads = norm_input_spreads(proto, images)
    assert max(float(s.max() / s.min()) for s in spreads) > 2  # uneven before (random weights)
    equalized = equalized_graph(proto, spreads)
    after = norm_input_spreads(equalized, images)
    evened = [float(s.max() / s.min()) for s in after]
    assert max(evened[:-1]) < 1.01  # every norm fed by a convolution (the last: an Add)

    def run(model: object) -> np.ndarray:
        return onnx_session(model.SerializeToString(), "cpu").run(None, {"images": images[0]})[0]  # type: ignore[attr-defined]

    # only the norm's epsilon (1e-5, against channel variances of ~1e-2 in this random
    # generator) weighs less after the rescaling: measured max 1.3e-3 on [-1, 1]
    assert np.abs(run(equalized) - run(proto)).max() < 5e-3


def test_a_generator_without_instance_norm_exports_to_int8_within_the_floor(
    tmp_path: Path,
) -> None:
    """--g-norm none: no norms to equalize or keep in float; the int8 file still translates
    within the floor, and its tiles need no shared statistics."""
    with_photos = run_with_photos(tmp_path)
    config = load_config(with_photos / "config.yaml").with_overrides({"g_norm": "none"})
    torch.manual_seed(0)
    run = save_run(tmp_path / "no_norm", config, CycleGAN(config.model))
    assert main(["export", "--run", str(run), "--quantize", "int8"]) == 0
    path = run / "exported" / "AtoB.int8.onnx"
    graph = onnx.load(str(path)).graph
    assert not any(node.op_type == "InstanceNormalization" for node in graph.node)
    int8 = Translator.from_file(path, device="cpu")
    image = photo()
    expected = Translator.from_run(run, "AtoB", device="cpu").translate_tensor(image)
    assert psnr(int8.translate_tensor(image), expected) >= MIN_PSNR
