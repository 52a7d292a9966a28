"""`cyclegan export`: ONNX (checked, dynamic sizes, run by ONNX Runtime), TorchScript and
safetensors files that translate like the PyTorch generator they came from."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.checkpoint import load_checkpoint
from cyclegan.cli import main
from cyclegan.config import ConfigError
from cyclegan.inference.options import EXPORT_SUFFIXES
from cyclegan.inference.translator import Translator
from cyclegan.training.loop import train
from tests.conftest import tiny_config
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
    for export_format, name in (
        ("torchscript", "g.torchscript.pt"),
        ("safetensors", "g.safetensors"),
    ):
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


# ---- TorchScript only on purpose -------------------------------------------------------------


class CodeOnLoad(torch.nn.Module):
    """A module whose TorchScript archive prints when it is loaded: TorchScript runs the
    file's own `__setstate__` in torch.jit.load, so the print shows whether a file was loaded."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, bool]:
        return self.weight, self.training

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, bool]) -> None:
        print("the file's code ran")
        self.weight = state[0]
        self.training = state[1]


def test_torchscript_loads_only_when_named_or_asked_for(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    probe = tmp_path / "probe.pth"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notices
        torch.jit.save(torch.jit.script(CodeOnLoad()), str(probe))
        torch.jit.load(str(probe))
    assert "the file's code ran" in capfd.readouterr().out  # the probe shows a load
    photo = tmp_path / "x.png"
    Image.new("RGB", (20, 20)).save(photo)
    translate = ["translate", str(photo), "--out", str(tmp_path / "o"), "--weights"]

    # a .pth (or .pt) that is TorchScript is refused, unloaded, saying how to load it
    for argv in ([*translate, str(probe)], ["export", "--weights", str(probe)]):
        assert main(argv) == 2
        printed = capfd.readouterr()
        assert "the file's code ran" not in printed.out
        assert f"{probe} is TorchScript (it holds compiled code, which loading runs)" in printed.err
        assert "rename it probe.torchscript.pt or pass --torchscript" in printed.err
        assert printed.err.strip().count("\n") == 0
    with pytest.raises(ConfigError, match="is TorchScript"):
        Translator.from_file(probe)
    assert "the file's code ran" not in capfd.readouterr().out

    # --torchscript loads it on purpose (and then finds no cyclegan metadata in it)
    assert main([*translate, str(probe), "--torchscript"]) == 2
    printed = capfd.readouterr()
    assert "the file's code ran" in printed.out and "without cyclegan metadata" in printed.err
    help_text = subprocess.run(
        [sys.executable, "-m", "cyclegan", "translate", "--help"], capture_output=True, text=True
    ).stdout
    assert "Loading TorchScript runs the code in the file" in " ".join(help_text.split())


def test_torchscript_exports_are_named_so_and_load_by_name(
    exported: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = exported
    assert main(["export", "--run", str(run), "--format", "torchscript"]) == 0
    path = run / "exported" / "AtoB.torchscript.pt"
    assert f"wrote {path} (torchscript" in capsys.readouterr().out
    images = torch.rand(1, 3, 21, 30) * 2 - 1
    expected = Translator.from_run(run, "AtoB", device="cpu").translate_tensor(images)
    assert (Translator.from_file(path).translate_tensor(images) - expected).abs().max() < 1e-5
    # the same file under a plain name: only with torchscript=True (--torchscript)
    plain = tmp_path / "AtoB.pt"
    shutil.copy(path, plain)
    with pytest.raises(ConfigError, match=r"rename it AtoB\.torchscript\.pt or pass --torchscript"):
        Translator.from_file(plain)
    loaded = Translator.from_file(plain, torchscript=True)
    assert (loaded.translate_tensor(images) - expected).abs().max() < 1e-5
    # a file named as TorchScript that holds none is said to be no TorchScript
    fake = tmp_path / "fake.torchscript.pt"
    shutil.copy(WEIGHTS, fake)
    with pytest.raises(ConfigError, match="is no TorchScript archive"):
        Translator.from_file(fake)
    assert main(["translate", "--run", str(run), "--torchscript", str(tmp_path), "--out", "o"]) == 2
    assert "--torchscript is about a --weights file" in capsys.readouterr().err


# ---- never lost work -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run the project's training made: config.yaml, checkpoints/, generators/."""
    runs = tmp_path_factory.mktemp("trained")
    config = tiny_config(synth_root, runs, epochs=1, epochs_decay=0, max_steps_per_epoch=1)
    train(config, log=lambda message: None)
    return runs / "tiny"


def test_export_never_writes_into_a_runs_checkpoints_or_generators(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other_run"  # another run folder, recognised by its layout alone
    shutil.copytree(trained, other)
    files = {path: path.read_bytes() for path in (*trained.rglob("*.pt"), *other.rglob("*.*"))}
    latest = trained / "checkpoints" / "latest.pt"
    cases = [
        (["--format", "safetensors", "--out", latest], trained / "checkpoints"),
        (["--format", "onnx", "--out", trained / "checkpoints" / "epoch_001.pt"], None),
        (["--out", trained / "checkpoints" / "new.onnx", "--overwrite"], None),
        (["--format", "safetensors", "--out", other / "generators" / "AtoB.safetensors"], None),
        (["--format", "torchscript", "--out", other / "checkpoints" / "sub" / "g.pt"], None),
    ]
    for flags, folder in cases:
        assert main(["export", "--run", str(trained), *map(str, flags)]) == 2
        error = capsys.readouterr().err.strip()
        assert "which a run's training writes and resume reads" in error, error
        assert error.count("\n") == 0
        if folder is not None:
            assert f"is inside {folder}," in error
    assert {path: path.read_bytes() for path in files} == files
    assert not (trained / "checkpoints" / "new.onnx").exists()
    assert not (other / "checkpoints" / "sub").exists()
    assert load_checkpoint(latest)["epoch"] == 1  # resume still finds its checkpoint

    # a run's checkpoint given with --weights exports into the run's exported/ folder
    argv = ["export", "--weights", str(latest), "--format", "safetensors", "--direction", "BtoA"]
    assert main(argv) == 0
    assert (trained / "exported" / "latest_BtoA.safetensors").is_file()


def test_an_existing_file_is_replaced_only_with_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "g.safetensors"
    out.write_bytes(b"somebody's file")
    argv = ["export", "--weights", str(WEIGHTS), "--format", "safetensors", "--out", str(out)]
    assert main(argv) == 2
    assert "exists; add --overwrite to replace it" in capsys.readouterr().err
    assert out.read_bytes() == b"somebody's file"
    assert main([*argv, "--overwrite"]) == 0
    assert Translator.from_file(out).direction == "AtoB"
    folder = tmp_path / "folder.onnx"
    folder.mkdir()
    assert main(["export", "--weights", str(WEIGHTS), "--out", str(folder), "--overwrite"]) == 2
    assert "is a folder; give the file to write" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("export_format", "name", "unread"),
    [
        ("safetensors", "g.pt", "as safetensors"),
        ("onnx", "g.onnx.bin", "as onnx"),
        ("torchscript", "g.pt", "without --torchscript"),
    ],
)
def test_a_suffix_that_does_not_match_the_format_warns_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], export_format: str, name: str, unread: str
) -> None:
    out = tmp_path / name
    argv = ["export", "--weights", str(WEIGHTS), "--format", export_format, "--out", str(out)]
    assert main(argv) == 0 and out.is_file()
    error = capsys.readouterr().err.strip()
    expected = EXPORT_SUFFIXES[export_format]  # type: ignore[index]
    assert error == (
        f"warning: --out {out} does not end in {expected}, the suffix `translate` tells "
        f"{export_format} files by, so it will not load this one {unread}"
    )


def test_a_failed_export_leaves_the_file_it_would_replace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ONNX file is checked after it is written; a failing check (an exporter bug) must
    leave the earlier good export in place and no partial file behind."""
    from cyclegan.inference import export

    out = tmp_path / "g.onnx"
    assert main(["export", "--weights", str(WEIGHTS), "--out", str(out)]) == 0
    good = out.read_bytes()

    def exporter_bug(*args: object) -> float:
        raise RuntimeError("ONNX Runtime differs from PyTorch")

    monkeypatch.setattr(export, "check_onnx", exporter_bug)
    translator = Translator.from_file(WEIGHTS, device="cpu")
    with pytest.raises(RuntimeError, match="differs"):
        export.export_generator(
            translator.generator, translator.model, "AtoB", out, "onnx", load_size=286
        )
    assert out.read_bytes() == good
    assert [path.name for path in tmp_path.iterdir()] == ["g.onnx"]
