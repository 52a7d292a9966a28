"""Which arithmetic `--precision auto` picks for training, and how AMX is detected."""

from __future__ import annotations

from pathlib import Path

import torch

from cyclegan.config import SpeedConfig
from cyclegan.device import cpu_has_amx
from cyclegan.training.speed import gradient_scaler, resolve_precision

FLAGS = "fpu vme de pse tsc msr avx512f avx512_bf16 avx512_vnni"


def cpuinfo(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return path


def test_amx_is_read_from_the_first_flags_line(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    with_amx = f"processor\t: 0\nflags\t\t: {FLAGS} amx_bf16 amx_tile amx_int8\n\n"
    assert cpu_has_amx(cpuinfo(tmp_path / "a", with_amx))
    without = f"processor\t: 0\nflags\t\t: {FLAGS} amx_tile\n"  # tiles without bf16: no
    assert not cpu_has_amx(cpuinfo(tmp_path / "b", without))
    assert not cpu_has_amx(cpuinfo(tmp_path, "processor\t: 0\nmodel name\t: some CPU\n"))
    assert not cpu_has_amx(tmp_path / "missing")


def test_auto_is_bf16_on_cpus_with_amx_and_fp32_on_others() -> None:
    cpu = torch.device("cpu")
    expected = torch.bfloat16 if cpu_has_amx() else torch.float32
    assert resolve_precision(cpu, "auto") == expected
    assert resolve_precision(torch.device("mps"), "auto") == torch.float32
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        assert resolve_precision(cpu, name) == dtype
    # bf16 keeps fp32's exponent range: no gradient scaler on the CPU, whatever auto picks
    assert gradient_scaler(cpu, SpeedConfig()) is None
