"""`cyclegan export`: ONNX (checked, dynamic sizes, run by ONNX Runtime), TorchScript and
safetensors files that translate like the PyTorch generator they came from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.cli import main
from cyclegan.inference.translator import Translator
from tests.test_translate_files import WEIGHTS, make_run

onnx = pytest.importorskip("onnx")  # the `onnx` extra (part of `dev`)
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A run and its BtoA generator exported as ONNX (exporting takes seconds: done once)."""
    run = make_run(tmp_path_factory.mktemp("export"))
    assert main(["export", "--run", str(run), "--direction", "BtoA", "--format", "onnx"]) == 0
    return run, run / "exported" / "BtoA.onnx"


def test_onnx_is_checked_with_dynamic_batch_height_and_width(exported: tuple[Path, Path]) -> None:
    _, path = exported
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        assert [bool(dims[i].dim_param) for i in range(4)] == [True, False, True, True]
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    assert metadata["direction"] == "BtoA" and '"ngf": 8' in metadata["model"]


@pytest.mark.parametrize("shape", [(2, 3, 37, 53), (1, 3, 61, 29), (3, 3, 8, 8)])
def test_onnxruntime_matches_pytorch_on_odd_sizes(
    exported: tuple[Path, Path], shape: tuple[int, ...]
) -> None:
    run, path = exported
    images = torch.rand(*shape) * 2 - 1
    pytorch = Translator.from_run(run, "BtoA", device="cpu", precision="fp32")
    expected = pytorch.translate_tensor(images)
    session = Translator.from_file(path, device="cpu")
    assert session.backend == "onnxruntime" and session.direction == "BtoA"
    assert (session.translate_tensor(images) - expected).abs().max() < 1e-3


def test_translate_with_onnx_files_and_the_onnxruntime_backend(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    run, path = exported
    photo = tmp_path / "odd.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (45, 67, 3), np.uint8)).save(photo)
    results = {}
    for name, source in {
        "torch": ["--run", str(run), "--precision", "fp32"],  # the ONNX file's precision
        "onnx_file": ["--weights", str(path)],
        "backend": ["--run", str(run), "--backend", "onnxruntime"],
    }.items():
        out = tmp_path / name
        argv = ["translate", *source, "--direction", "BtoA", str(photo), "--out", str(out)]
        assert main(argv) == 0
        results[name] = np.asarray(Image.open(out / "odd.png"), np.int16)
    assert results["torch"].shape == (45, 67, 3)
    for name in ("onnx_file", "backend"):
        assert np.abs(results[name] - results["torch"]).max() <= 1  # 1e-3 is < 1 grey level


def test_torchscript_and_safetensors_exports_translate_the_same(tmp_path: Path) -> None:
    images = torch.rand(1, 3, 33, 47) * 2 - 1
    expected = Translator.from_file(WEIGHTS, device="cpu", precision="fp32").translate_tensor(
        images
    )
    for export_format, name in (("torchscript", "g.pt"), ("safetensors", "g.safetensors")):
        out = tmp_path / name
        assert (
            main(
                ["export", "--weights", str(WEIGHTS), "--format", export_format, "--out", str(out)]
            )
            == 0
        )
        translator = Translator.from_file(out, device="cpu", precision="fp32")
        assert translator.load_size == 286  # the reference's training scale travels along
        assert (translator.translate_tensor(images) - expected).abs().max() < 1e-5
        # tiles work with every export (test_translate_tiling checks how close they come)
        assert translator.translate_tensor(images, tile=16, overlap=4).shape == images.shape


def test_export_refusals(
    exported: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, path = exported
    assert main(["export", "--weights", str(path), "--format", "onnx"]) == 2
    assert "is already ONNX" in capsys.readouterr().err
    image = tmp_path / "x.png"
    Image.new("RGB", (20, 20)).save(image)
    code = main(
        [
            "translate",
            "--weights",
            str(path),
            "--backend",
            "torch",
            str(image),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2 and "runs with --backend onnxruntime" in capsys.readouterr().err
    code = main(
        [
            "translate",
            "--weights",
            str(path),
            "--direction",
            "AtoB",
            str(image),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2 and "holds the BtoA generator, not AtoB" in capsys.readouterr().err
