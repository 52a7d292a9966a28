"""One precision policy for training and translation (cyclegan.precision): what `auto` picks
and what is refused on each device type, with this machine's two answers (does the CPU have
bf16 instructions, does the GPU run bf16) set both ways, and the expected dtype written out for
each case."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from cyclegan import device as device_module
from cyclegan.cli import main
from cyclegan.config import ConfigError, SpeedConfig
from cyclegan.device import cpu_has_amx, cpu_has_bf16, device_precision
from cyclegan.inference.translator import Translator
from cyclegan.precision import resolve_precision
from cyclegan.training.speed import gradient_scaler, mixed_precision
from tests.conftest import TINY
from tests.test_translate_files import SEED_PHOTOS, WEIGHTS

FLAGS = "fpu vme de pse tsc msr avx2 avx512f avx512_vnni"  # AVX-512 without bf16 (Zen 3-like)
CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")
Machine = Callable[..., None]


def cpuinfo(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return path


def test_native_bf16_is_read_from_the_first_flags_line(tmp_path: Path) -> None:
    cases = {
        "amx": (f"{FLAGS} amx_bf16 amx_tile amx_int8", True),  # a Xeon since Sapphire Rapids
        "avx512": (f"{FLAGS} avx512_bf16", True),  # AMD Zen 4, Intel Cooper Lake
        "tiles": (f"{FLAGS} amx_tile", False),  # tiles without bf16: no
        "none": (FLAGS, False),
    }
    for name, (flags, expected) in cases.items():
        (tmp_path / name).mkdir()
        path = cpuinfo(tmp_path / name, f"processor\t: 0\nflags\t\t: {flags}\n\n")
        assert cpu_has_bf16(path) is expected, name
    assert not cpu_has_bf16(cpuinfo(tmp_path, "processor\t: 0\nmodel name\t: some CPU\n"))
    assert not cpu_has_bf16(tmp_path / "missing")


def test_amx_is_told_apart_from_avx512_bf16(tmp_path: Path) -> None:
    # channels-last bf16 is the faster layout only with AMX tiles (translation's default)
    amx = cpuinfo(tmp_path, f"processor\t: 0\nflags\t\t: {FLAGS} amx_bf16 amx_tile\n")
    (tmp_path / "zen4").mkdir()
    zen4 = cpuinfo(tmp_path / "zen4", f"processor\t: 0\nflags\t\t: {FLAGS} avx512_bf16\n")
    assert cpu_has_amx(amx) is True
    assert cpu_has_amx(zen4) is False
    assert cpu_has_bf16(zen4) is True
    assert cpu_has_amx(tmp_path / "missing") is False


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Machine:
    """set(amx=..., cuda_bf16=..., cuda=...): the CPU's /proc/cpuinfo flags as the real probe
    reads them, and the GPU's answers; whatever this machine really has."""

    def set_machine(*, amx: bool, cuda_bf16: bool = True, cuda: bool = False) -> None:
        folder = tmp_path / f"amx_{amx}"
        folder.mkdir(exist_ok=True)
        flags = f"{FLAGS} amx_bf16 amx_tile" if amx else FLAGS  # or avx512_bf16: the same
        path = cpuinfo(folder, f"processor\t: 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr(device_module, "cpu_has_bf16", functools.partial(cpu_has_bf16, path))
        monkeypatch.setattr(device_module, "cpu_has_amx", functools.partial(cpu_has_amx, path))
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *_, **__: cuda_bf16)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)

    return set_machine


def autocast_dtype(context: contextlib.AbstractContextManager[object]) -> torch.dtype:
    """The dtype a training step's autocast context computes in (fp32: no autocast)."""
    if isinstance(context, contextlib.nullcontext):
        return torch.float32
    assert isinstance(context, torch.autocast)
    return context.fast_dtype


NO_CUDA_HERE = "ignore:.*CUDA is not available"  # torch's warning when asked about a CUDA device


@pytest.mark.filterwarnings(NO_CUDA_HERE)
@pytest.mark.parametrize(
    ("device", "amx", "cuda_bf16", "expected"),
    [
        (CPU, True, True, torch.bfloat16),  # AMX: 0.39x the step time, 2x translation speed
        (CPU, False, True, torch.float32),  # bf16 gains nothing without bf16 instructions
        (MPS, True, True, torch.float32),
        (MPS, False, True, torch.float32),
        (CUDA, False, True, torch.bfloat16),
        (CUDA, True, False, torch.float16),  # a GPU without bf16 (e.g. before Ampere)
    ],
)
def test_auto_picks_one_dtype_per_machine_for_training_and_translation(
    machine: Machine, device: torch.device, amx: bool, cuda_bf16: bool, expected: torch.dtype
) -> None:
    machine(amx=amx, cuda_bf16=cuda_bf16)
    assert autocast_dtype(mixed_precision(device, "auto")) == expected  # a training step's
    names = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
    assert device_precision(device, "auto") == names[expected]  # translation's
    # fp16 alone needs a gradient scaler (its exponent range is narrow), whatever picked it
    scaler = gradient_scaler(device, SpeedConfig(precision="auto"))
    assert (scaler is not None) == (expected == torch.float16)


def test_training_steps_run_in_the_dtype_auto_picks_on_the_cpu(machine: Machine) -> None:
    convolution = torch.nn.Conv2d(3, 4, 3)
    for amx, expected in ((True, torch.bfloat16), (False, torch.float32)):
        machine(amx=amx)
        with mixed_precision(CPU, "auto"):
            assert convolution(torch.zeros(1, 3, 8, 8)).dtype == expected


@pytest.mark.parametrize("amx", [True, False])
def test_translation_on_the_cpu_runs_in_the_dtype_auto_picks(machine: Machine, amx: bool) -> None:
    machine(amx=amx)
    translator = Translator.from_file(WEIGHTS, device="cpu")
    assert translator.precision == ("bf16" if amx else "fp32")
    assert translator.channels_last is amx  # measured faster for bf16 only on the CPU
    images = torch.rand(1, 3, 32, 32) * 2 - 1
    fp32 = Translator.from_file(WEIGHTS, device="cpu", precision="fp32")
    difference = (translator.translate_tensor(images) - fp32.translate_tensor(images)).abs()
    assert (float(difference.max()) > 0) is amx  # it really ran in bf16, or really not


@pytest.mark.filterwarnings(NO_CUDA_HERE)
@pytest.mark.parametrize(
    ("precision", "device", "expected"),
    [
        ("fp32", CUDA, "fp32"),
        ("bf16", CUDA, "bf16"),
        ("fp16", CUDA, "fp16"),
        ("fp32", CPU, "fp32"),
        ("bf16", CPU, "bf16"),  # without bf16 instructions too: asked for, not picked
        ("fp16", CPU, "fp16"),  # GradScaler("cpu") works: tests/test_train_step.py
        ("fp32", MPS, "fp32"),
        ("fp16", MPS, "fp16"),
    ],
)
def test_each_device_runs_the_precisions_it_offers(
    machine: Machine, precision: str, device: torch.device, expected: str
) -> None:
    machine(amx=False)
    assert device_precision(device, precision) == expected
    scaler = gradient_scaler(device, SpeedConfig(precision=precision))  # type: ignore[arg-type]
    assert (scaler is not None) == (expected == "fp16")


@pytest.mark.parametrize(
    ("precision", "device", "message"),
    [
        ("bf16", CUDA, "--precision bf16: this GPU does not support bf16; use fp16 or auto"),
        ("bf16", MPS, "--precision bf16 does not run on mps; choose one of ['auto', 'fp32', "),
        ("int4", CPU, "unknown precision 'int4'; choose one of ['auto', 'fp32', 'bf16', 'fp16']"),
    ],
)
def test_training_and_translation_refuse_alike(
    machine: Machine, precision: str, device: torch.device, message: str
) -> None:
    machine(amx=True, cuda_bf16=False)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        device_precision(device, precision)  # translation
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        gradient_scaler(device, replace(SpeedConfig(), precision=precision))  # type: ignore[arg-type]


def test_the_policy_needs_no_torch_and_asks_the_machine_only_what_it_says() -> None:
    # the same answers whatever this machine has: the policy is a function of its arguments
    assert resolve_precision("auto", "cpu", cuda_bf16=False, cpu_bf16=True) == "bf16"
    assert resolve_precision("auto", "xpu", cuda_bf16=True, cpu_bf16=True) == "fp32"
    with pytest.raises(ConfigError, match="does not run on xpu; choose one of"):
        resolve_precision("fp16", "xpu", cuda_bf16=True, cpu_bf16=True)


def test_both_commands_refuse_bf16_on_a_gpu_without_it_before_any_work(
    machine: Machine,
    synth_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One line, exit 2, nothing written: the refusal comes before the networks move to the
    GPU (so a machine without one can check it)."""
    machine(amx=False, cuda_bf16=False, cuda=True)
    photo = SEED_PHOTOS / "B_type" / "2.jpeg"
    translate = ["translate", "--weights", str(WEIGHTS), str(photo), "--device", "cuda"]
    train = ["train", "--data", str(synth_root), "--runs-dir", str(tmp_path / "runs")]
    train += ["--device", "cuda", "--generator", TINY["generator"], "--ngf", "8", "--ndf", "8"]
    for argv in ([*translate, "--out", str(tmp_path / "out")], train):
        assert main([*argv, "--precision", "bf16"]) == 2
        error = capsys.readouterr().err.strip()
        assert error.count("\n") == 0, error
        assert "--precision bf16: this GPU does not support bf16; use fp16 or auto" in error
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()
