"""The `cyclegan` command: training and translation through main(argv), and every bad input."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from cyclegan.cli import main
from cyclegan.config import Config, dataclass_options, load_config
from cyclegan.inference.options import EXPORT_SUFFIXES, OutputOptions
from tests.conftest import TINY

SEED_PHOTOS = Path(__file__).parent / "data" / "seed_photos"


def tiny_flags(data: Path, runs: Path, name: str = "tiny") -> list[str]:
    flags = ["--data", str(data), "--runs-dir", str(runs), "--name", name]
    for key, value in TINY.items():
        flags += [f"--{key.replace('_', '-')}", str(value)]
    return flags


@pytest.fixture(scope="module")
def trained_run(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    assert main(["train", *tiny_flags(synth_root, runs), "--epochs-decay", "0"]) == 0
    return runs / "tiny"


# ---- train ------------------------------------------------------------------------------------


def test_train_writes_the_config_it_was_given(trained_run: Path) -> None:
    config = load_config(trained_run / "config.yaml")
    assert config.model.ngf == 8 and config.model.generator == "resnet_6blocks"
    assert config.optim.epochs_decay == 0
    assert config.loss == Config().loss  # untouched sections keep the paper defaults


def test_help_is_generated_from_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # as read, whatever the wrapping
    assert "--lambda-identity" in text and "identity L1 weight" in text
    assert "--flip, --no-flip" in text
    assert "resnet_9blocks" in text and "(default: 0.0002)" in text


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--generator", "unet"], "invalid choice: 'unet' (choose from 'resnet_9blocks'"),
        (["--device", "tpu"], "invalid choice: 'tpu'"),
        (["--crop-size", "0"], "--crop-size must be positive"),
        (["--dropout", "1.5"], "--dropout must be in [0, 1)"),
    ],
)
def test_bad_option_values_are_explained(
    synth_root: Path,
    tmp_path: Path,
    flags: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    try:
        code = main(["train", "--data", str(synth_root), "--runs-dir", str(tmp_path), *flags])
    except SystemExit as exit_info:  # argparse rejects choices itself
        code = exit_info.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_missing_cuda_is_explained(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code = main(["train", *tiny_flags(synth_root, tmp_path), "--device", "cuda"])
    assert code == 2
    assert "no CUDA device is available" in capsys.readouterr().err


def test_no_data_given(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train"]) == 2
    assert "--data ROOT" in capsys.readouterr().err


@pytest.mark.parametrize("problem", ["missing_root", "missing_trainB", "empty_trainA"])
def test_bad_dataset_layouts(
    synth_root: Path, tmp_path: Path, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    if problem != "missing_root":
        shutil.copytree(synth_root, data)
    if problem == "missing_trainB":
        shutil.rmtree(data / "trainB")
    if problem == "empty_trainA":
        shutil.rmtree(data / "trainA")
        (data / "trainA").mkdir()
    code = main(["train", *tiny_flags(data, tmp_path / "runs")])
    error = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in error
    expected_path = {
        "missing_root": data,
        "missing_trainB": data / "trainB",
        "empty_trainA": data / "trainA",
    }[problem]
    assert str(expected_path) in error
    assert "trainA, trainB, testA, testB" in error
    assert not (tmp_path / "runs").exists()  # a refused start leaves nothing behind


def test_resume_overrides_are_logged(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_copy = tmp_path / "runs" / "tiny"
    shutil.copytree(trained_run, run_copy)
    code = main(["train", "--resume", str(run_copy), "--lr", "1e-4", "--epochs", "1"])
    assert code == 0
    assert "changed on resume: --lr 0.0002 -> 0.0001 (a new lr schedule starts here)" in (
        capsys.readouterr().out
    )
    assert load_config(run_copy / "config.yaml").optim.lr == 1e-4


def test_resume_with_another_architecture(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_copy = tmp_path / "tiny"
    shutil.copytree(trained_run, run_copy)
    assert main(["train", "--resume", str(run_copy), "--generator", "resnet_9blocks"]) == 2
    assert "another architecture (generator: 'resnet_6blocks' -> 'resnet_9blocks')" in (
        capsys.readouterr().err
    )


def test_resume_from_a_file_that_is_no_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("some notes\nmore notes\n")
    assert main(["train", "--resume", str(notes)]) == 2
    error = capsys.readouterr().err
    assert f"{notes} is not a cyclegan checkpoint (it is a text file)" in error
    assert "give a run folder (runs/NAME)" in error
    assert "weights_only" not in error and error.count("\n") == 1
    pickled = tmp_path / "namespace.pt"
    torch.save(argparse.Namespace(lr=1), pickled)  # code a safe load would have to run
    assert main(["train", "--resume", str(pickled)]) == 2
    error = capsys.readouterr().err
    assert "holds Python objects (argparse.Namespace)" in error
    assert "weights_only" not in error and error.count("\n") == 1
    binary = tmp_path / "noise.pt"
    binary.write_bytes(bytes(range(256)) * 4)
    assert main(["train", "--resume", str(binary)]) == 2
    error = capsys.readouterr().err
    assert "(it is not a file written by torch.save, or it is corrupt)" in error
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_checkpoint_of_another_architecture_names_the_difference(
    trained_run: Path, tmp_path: Path
) -> None:
    from cyclegan.checkpoint import CheckpointError, load_checkpoint, load_model_states
    from cyclegan.models import CycleGAN

    checkpoint = load_checkpoint(trained_run / "checkpoints" / "latest.pt")
    wider = CycleGAN(checkpoint["config"].model.__class__(generator="resnet_6blocks", ngf=16))
    with pytest.raises(
        CheckpointError, match=r"gen_ab\.encoder\.1\.weight has shape \(8, 3, 7, 7\)"
    ):
        load_model_states(wider, checkpoint["models"], Path("ckpt.pt"))


# ---- translate --------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["run", "safetensors", "checkpoint"])
def test_translate_keeps_odd_sizes(trained_run: Path, tmp_path: Path, source: str) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.new("RGB", (317, 211), (200, 120, 40)).save(inputs / "odd.png")
    Image.new("L", (33, 7), 90).save(inputs / "tiny_gray.png")
    flag = {
        "run": ["--run", str(trained_run)],
        "safetensors": ["--weights", str(trained_run / "generators" / "AtoB.safetensors")],
        "checkpoint": ["--weights", str(trained_run / "checkpoints" / "latest.pt")],
    }[source]
    assert main(["translate", *flag, str(inputs), "--out", str(tmp_path / "out")]) == 0
    assert Image.open(tmp_path / "out" / "odd.png").size == (317, 211)
    assert Image.open(tmp_path / "out" / "tiny_gray.png").size == (33, 7)


def test_translate_the_seed_layout_at_full_resolution(trained_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    assert main(["translate", "--run", str(trained_run), str(SEED_PHOTOS), "--out", str(out)]) == 0
    for domain in ("A_type", "B_type"):
        for photo in sorted((SEED_PHOTOS / domain).iterdir()):
            result = out / domain / photo.name
            assert Image.open(result).size == Image.open(photo).size  # 1067x600 stays 1067x600


def test_translate_reports_unreadable_inputs(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.new("RGB", (40, 30)).save(inputs / "good.png")
    (inputs / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    code = main(["translate", "--run", str(trained_run), str(inputs), "--out", str(tmp_path / "o")])
    captured = capsys.readouterr()
    assert code == 1
    assert "broken.jpg" in captured.err
    assert "translated 1 image(s)" in captured.out and "1 failed" in captured.out
    assert (tmp_path / "o" / "good.png").is_file()


def test_translate_bad_inputs(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    run = ["translate", "--run", str(trained_run)]
    assert main([*run, str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "no images found" in capsys.readouterr().err
    assert main([*run, str(tmp_path / "missing.png"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([*run, str(empty), "--out", str(empty)]) == 2
    assert "is an input folder" in capsys.readouterr().err
    assert main(["translate", "--run", str(tmp_path / "norun"), str(empty), "--out", "o"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_translate_flags_are_the_output_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["translate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in dataclass_options(OutputOptions):
        assert option.flag in text and option.help in text
    assert "--format {png,jpg,webp}" in text and "(default: 95)" in text
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert "{" + ",".join(EXPORT_SUFFIXES) + "}" in capsys.readouterr().out


def test_data_synth_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "synth"
    assert main(["data", "synth", str(root), "--size", "32", "--train", "3", "--test", "2"]) == 0
    assert len(list((root / "trainA").iterdir())) == 3
    assert len(list((root / "testA_truth").iterdir())) == 2
    assert "ready" in capsys.readouterr().out


def test_installed_command_and_module_entry_point() -> None:
    command = Path(sys.executable).parent / "cyclegan"
    for argv in ([str(command), "--version"], [sys.executable, "-m", "cyclegan", "--version"]):
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0
        assert result.stdout.startswith("cyclegan ")


@pytest.mark.parametrize(
    ("environment", "spins"),
    [({}, "1000"), ({"GOMP_SPINCOUNT": "5"}, "5"), ({"OMP_WAIT_POLICY": "PASSIVE"}, None)],
)
def test_openmp_threads_spin_briefly_unless_the_user_chose(
    environment: dict[str, str], spins: str | None
) -> None:
    """Set before torch loads, or it has no effect (benchmarks/shared_machine.py)."""
    script = (
        "import os, sys\n"
        "from cyclegan.cli import main\n"
        "main(['data', 'list'])\n"
        "import torch\n"  # loaded after the command, as a command loads it
        "print('SPINS', os.environ.get('GOMP_SPINCOUNT'))\n"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**clean, **environment},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert done.stdout.splitlines()[-1] == f"SPINS {spins}"
