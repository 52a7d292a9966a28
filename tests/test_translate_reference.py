"""Generators of the reference implementation: loaded directly, converted, and bad files explained.

The fixtures in tests/data/reference were checked against the reference's own class; a
faithful load reproduces their recorded outputs to 1e-5.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open

from cyclegan.cli import main
from cyclegan.inference.reference import (
    ReferenceFormatError,
    infer_architecture,
    load_state_file,
    reference_generator,
)
from cyclegan.inference.translator import Translator

REFERENCE = Path(__file__).parent / "data" / "reference"


def fixture(blocks: int, legacy: bool = False) -> Path:
    suffix = "_legacy_keys" if legacy else ""
    return REFERENCE / f"reference_resnet_{blocks}blocks_ngf8{suffix}.pth"


def recorded(blocks: int) -> dict[str, torch.Tensor]:
    return torch.load(REFERENCE / f"reference_resnet_{blocks}blocks_ngf8_io.pt", weights_only=True)


@pytest.mark.parametrize("legacy", [False, True], ids=["plain", "legacy_keys"])
@pytest.mark.parametrize("blocks", [9, 6])
def test_fixtures_reproduce_the_reference_outputs(blocks: int, legacy: bool) -> None:
    translator = Translator.from_file(fixture(blocks, legacy), device="cpu", precision="fp32")
    assert translator.model.generator == f"resnet_{blocks}blocks"
    assert translator.model.ngf == 8 and translator.direction == "AtoB"
    io = recorded(blocks)
    output = translator.translate_tensor(io["input"])
    assert (output - io["output"]).abs().max() < 1e-5


def test_published_layout_is_inferred_as_resnet_9blocks_ngf64() -> None:
    shapes = json.loads((REFERENCE / "reference_resnet_9blocks_ngf64_keys.json").read_text())
    state = {key: torch.zeros(shape) for key, shape in shapes.items()}
    arch = infer_architecture(state, "published.pth")
    assert (arch.generator, arch.ngf, arch.in_channels, arch.out_channels) == (
        "resnet_9blocks",
        64,
        3,
        3,
    )
    generator, _ = reference_generator(state, "published.pth")
    assert sum(p.numel() for p in generator.parameters()) == 11_378_179  # as the README says


def test_data_parallel_prefix_is_accepted() -> None:
    state = {f"module.{key}": value for key, value in load_state_file(fixture(6)).items()}
    generator, _ = reference_generator(state, "wrapped.pth")
    io = recorded(6)
    with torch.no_grad():
        assert (generator(io["input"]) - io["output"]).abs().max() < 1e-5


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("drop", "missing 'model.13.conv_block.5.weight' of shape (32, 32, 3, 3)"),
        ("reshape", "'model.4.weight' has shape (16, 8, 1, 1), expected (16, 8, 3, 3)"),
        ("foreign", "unexpected key 'encoder.1.weight'"),
        ("batch_norm", "'model.2.weight' means the norm layers have weights"),
    ],
)
def test_unknown_layouts_name_the_first_mismatching_key(
    tmp_path: Path, damage: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    state = load_state_file(fixture(6))
    if damage == "drop":
        del state["model.13.conv_block.5.weight"]
    elif damage == "reshape":
        state["model.4.weight"] = torch.zeros(16, 8, 1, 1)
    elif damage == "foreign":
        state["encoder.1.weight"] = torch.zeros(1)
    else:
        state["model.2.weight"] = torch.ones(8)
    path = tmp_path / "net_G_A.pth"
    torch.save(state, path)
    with pytest.raises(ReferenceFormatError, match=r"net_G_A\.pth"):
        Translator.from_file(path)
    Image.new("RGB", (20, 20)).save(tmp_path / "x.png")
    code = main(["translate", "--weights", str(path), str(tmp_path / "x.png"), "--out", "o"])
    error = capsys.readouterr().err
    assert code == 2 and message in error and "Traceback" not in error


def test_files_that_are_no_generator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "x.png"
    Image.new("RGB", (20, 20)).save(image)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a pickle at all")
    other = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(3)}, other)
    for path, message in [(garbage, "(it is a text file)"), (other, "holds ['weight']")]:
        code = main(["translate", "--weights", str(path), str(image), "--out", str(tmp_path / "o")])
        error = capsys.readouterr().err
        assert code == 2 and message in error and str(path) in error


def test_convert_writes_safetensors_with_metadata(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "horse2zebra.safetensors"
    assert main(["convert", str(fixture(9, legacy=True)), "--out", str(out)]) == 0
    assert "resnet_9blocks ngf=8" in capsys.readouterr().out
    with safe_open(str(out), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["direction"] == "AtoB" and json.loads(metadata["load_size"]) == 286
    assert json.loads(metadata["model"])["generator"] == "resnet_9blocks"
    translator = Translator.from_file(out, device="cpu", precision="fp32")
    io = recorded(9)
    assert (translator.translate_tensor(io["input"]) - io["output"]).abs().max() < 1e-5


def test_convert_refuses_what_it_cannot_convert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "net.pth"
    torch.save({"encoder.1.weight": torch.zeros(2)}, source)
    assert main(["convert", str(source)]) == 2
    assert "not a reference generator" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "missing.pth")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_translate_weights_reads_a_reference_file(tmp_path: Path) -> None:
    photo = Path(__file__).parent / "data" / "seed_photos" / "B_type" / "6.jpeg"
    out = tmp_path / "out"
    assert main(["translate", "--weights", str(fixture(6)), str(photo), "--out", str(out)]) == 0
    assert Image.open(out / photo.name).size == Image.open(photo).size
