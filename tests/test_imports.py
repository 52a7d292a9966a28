"""What each entry point imports: the command line starts without torch, translation without
training code, and the error names the command line catches exist."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from cyclegan.cli import RUN_FAILURES, USAGE_ERRORS


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code` (which may print)."""
    script = f"{code}\nimport sys\nprint('MODULES', *sorted(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    line = next(line for line in result.stdout.splitlines() if line.startswith("MODULES"))
    return set(line.split()[1:])


def test_building_the_command_line_imports_no_torch() -> None:
    loaded = modules_after("from cyclegan.cli import build_parser\nbuild_parser()")
    assert "torch" not in loaded
    assert "cyclegan.config" in loaded  # the parser was really built from the config


def test_data_list_runs_without_torch(tmp_path: Path) -> None:
    # a complete dataset, so that listing looks into its folders
    for folder in ("trainA", "trainB", "testA", "testB"):
        (tmp_path / "horse2zebra" / folder).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "horse2zebra" / folder / "1.png")
    argv = ["data", "list", "--root", str(tmp_path)]
    code = f"from cyclegan.cli import main\nassert main({argv!r}) == 0"
    assert "torch" not in modules_after(code)


def test_listing_pretrained_generators_imports_no_torch(tmp_path: Path) -> None:
    argv = ["pretrained", "list", "--cache-dir", str(tmp_path)]
    code = f"from cyclegan.cli import main\nassert main({argv!r}) == 0"
    assert "torch" not in modules_after(code)


def test_translation_imports_no_training_code() -> None:
    loaded = modules_after("import cyclegan.inference.translator")
    assert "torch" in loaded
    assert not {name for name in loaded if name.startswith("cyclegan.training")}
    assert "cyclegan.inference.files" not in loaded  # the translator does not need the files


@pytest.mark.parametrize("name", [*USAGE_ERRORS, *RUN_FAILURES])
def test_the_errors_the_command_line_catches_exist(name: str) -> None:
    module, _, attribute = name.rpartition(".")
    error = getattr(importlib.import_module(module), attribute)
    assert issubclass(error, Exception)
