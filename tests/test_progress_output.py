"""What training prints: a progress bar on a terminal, lines a log file can hold elsewhere."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli import tiny_flags

pytestmark = pytest.mark.slow


def train_output(argv: list[str], terminal: bool) -> str:
    """stdout and stderr of `cyclegan train ARGV`, written to a pseudo-terminal or a pipe."""
    command = [sys.executable, "-m", "cyclegan", "train", *argv]
    if not terminal:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr
    leader, follower = pty.openpty()
    process = subprocess.Popen(command, stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 1 << 16)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=600) == 0
    return b"".join(chunks).decode(errors="replace")


def test_a_log_file_gets_lines_and_a_terminal_gets_the_bar(
    synth_root: Path, tmp_path: Path
) -> None:
    flags = [*tiny_flags(synth_root, tmp_path / "runs"), "--progress-every", "0.000001"]
    logged = train_output([*flags, "--name", "logged"], terminal=False)
    assert "\r" not in logged  # no carriage returns: one line per update, readable with tail
    lines = logged.splitlines()
    progress = [line for line in lines if line.startswith("epoch 1/2 step ")]
    # every step but the epoch's last (its summary line follows at once): 5 of 6
    assert [line.split()[3] for line in progress] == [f"{step}/6" for step in range(1, 6)]
    assert all("it/s, epoch ends in" in line and "D_A" in line for line in progress)
    assert sum(line.startswith(("epoch 1/2 lr", "epoch 2/2 lr")) for line in lines) == 2

    quiet = train_output([*flags, "--name", "quiet", "--quiet"], terminal=False)
    assert " step " not in quiet and "\r" not in quiet
    assert sum(line.startswith("epoch ") and " lr " in line for line in quiet.splitlines()) == 2

    shown = train_output([*flags, "--name", "shown"], terminal=True)
    assert "\r" in shown and "it/s" in shown  # tqdm's bar, redrawn in place
    assert "epoch 1/2 step 1/6" not in shown  # and no progress lines beside it


def test_translating_into_a_log_file_writes_no_bar(tmp_path: Path) -> None:
    from tests.test_translate_files import SEED_PHOTOS, WEIGHTS

    command = [
        sys.executable, "-m", "cyclegan", "translate", str(SEED_PHOTOS / "A_type"),
        "--weights", str(WEIGHTS), "--out", str(tmp_path / "out"), "--size", "32",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stdout + done.stderr and "translating:" not in done.stderr
    assert "translated 2 image(s)" in done.stdout
