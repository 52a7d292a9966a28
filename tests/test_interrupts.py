"""Real processes killed for real: kill -9 and Ctrl-C never cost the last checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cyclegan.checkpoint import load_checkpoint
from cyclegan.training.run_status import run_is_held
from cyclegan.training.state import Progress
from tests.test_cli import tiny_flags

pytestmark = pytest.mark.slow


def start_training(data: Path, runs: Path, *extra: str) -> subprocess.Popen[str]:
    """In a session of its own, as a terminal runs it: Ctrl-C reaches its whole process group."""
    argv = [sys.executable, "-m", "cyclegan", "train", *tiny_flags(data, runs), *extra]
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def wait_for_checkpoint(path: Path, process: subprocess.Popen[str], min_epoch: int = 1) -> int:
    deadline = time.monotonic() + 600  # a guard against hanging, not a speed requirement
    while time.monotonic() < deadline:
        assert process.poll() is None, f"training ended early: {process.stdout.read()}"
        if path.exists():
            try:
                epoch = load_checkpoint(path)["epoch"]
            except Exception:  # being replaced right now; a moment later it is whole again
                epoch = -1
            if epoch >= min_epoch:
                return epoch
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear in time")


def wait_until_held(run_dir: Path, process: subprocess.Popen[str]) -> None:
    """Until `process` holds the run's lock. A fixed head start is no guarantee: on a busy
    machine the second trainer can start faster than the first and claim the run itself."""
    deadline = time.monotonic() + 300  # a guard against hanging, not a speed requirement
    while time.monotonic() < deadline:
        assert process.poll() is None, f"training ended early: {process.stdout.read()}"
        holder = run_is_held(run_dir)
        if holder is not None and holder.pid == process.pid:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {process.pid} did not claim {run_dir} in time")


def test_kill_9_then_resume_continues_from_the_last_checkpoint(
    synth_root: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    latest = runs / "tiny" / "checkpoints" / "latest.pt"
    process = start_training(synth_root, runs, "--epochs", "40", "--epochs-decay", "0")
    wait_for_checkpoint(latest, process, min_epoch=2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    survived = load_checkpoint(latest)  # whole, whatever moment the kill hit
    assert survived["epoch"] >= 2
    leftovers = [p.name for p in latest.parent.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) <= 1  # at most the one write the kill interrupted

    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "cyclegan",
            "train",
            "--resume",
            str(runs / "tiny"),
            "--epochs",
            "1",
            "--epochs-decay",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"after epoch {survived['epoch']} (step {survived['step']})" in resumed.stdout
    final = load_checkpoint(latest)
    assert final["epoch"] == survived["epoch"] + 1
    assert final["step"] == survived["step"] + 6


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(synth_root: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    latest = runs / "tiny" / "checkpoints" / "latest.pt"
    process = start_training(
        synth_root, runs, "--epochs", "40", "--epochs-decay", "0", "--workers", "2"
    )
    wait_for_checkpoint(latest, process, min_epoch=1)
    os.killpg(process.pid, signal.SIGINT)  # the training process and its 2 loader workers
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 130, output  # interrupted: `train && translate` stops here
    assert output.count("stopping after this step") == 1, output
    assert f"cyclegan train --resume {runs / 'tiny'}" in output
    assert "Traceback" not in output
    stopped = load_checkpoint(latest)
    assert stopped["step"] == stopped["epoch"] * 6 + stopped["batch"]
    assert 1 <= stopped["epoch"] < 40
    where = Progress(stopped["epoch"], stopped["batch"], stopped["step"]).where()
    assert f"stopped {where}; checkpoint saved" in output  # what the resume will say too


def test_checkpoint_writes_survive_kill_9_at_any_moment(tmp_path: Path) -> None:
    """A writer replacing the same checkpoint in a loop, killed at several moments."""
    writer = tmp_path / "writer.py"
    writer.write_text(
        textwrap.dedent("""
        import sys, torch
        from pathlib import Path
        from cyclegan.checkpoint import save_checkpoint
        path = Path(sys.argv[1])
        for i in range(10_000):
            save_checkpoint(path, {"i": i, "data": torch.full((2_000_000,), float(i))})
            print(i, flush=True)
    """)
    )
    path = tmp_path / "latest.pt"
    for delay in (0.0, 0.13, 0.37):
        process = subprocess.Popen(
            [sys.executable, str(writer), str(path)], stdout=subprocess.PIPE, text=True
        )
        assert process.stdout is not None
        process.stdout.readline()  # at least one checkpoint is complete
        time.sleep(delay)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        import torch

        checkpoint = torch.load(path, weights_only=True)
        assert checkpoint["data"].eq(float(checkpoint["i"])).all()


def wait_for_output(process: subprocess.Popen[str], text: str, seen: list[str]) -> None:
    """Read the process's output lines into `seen` until one holds `text`."""
    assert process.stdout is not None
    deadline = time.monotonic() + 600  # a guard against hanging, not a speed requirement
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        assert line, f"training ended early: {''.join(seen)}"
        seen.append(line)
        if text in line:
            return
    raise AssertionError(f"{text!r} did not appear: {''.join(seen)}")


@pytest.mark.parametrize("moment", ["first step", "mid-epoch", "epoch end"])
def test_sigterm_to_the_process_group_stops_cleanly_with_a_checkpoint(
    synth_root: Path, tmp_path: Path, moment: str
) -> None:
    """What `timeout`, `kill -- -PGID`, SLURM and systemd send: to the trainer and its loader
    workers alike. The trainer stops after its step, saves a checkpoint, says so in one line."""
    runs = tmp_path / "runs"
    latest = runs / "tiny" / "checkpoints" / "latest.pt"
    process = start_training(
        synth_root, runs, "--epochs", "40", "--epochs-decay", "0", "--workers", "2"
    )
    seen: list[str] = []
    if moment == "first step":
        wait_for_output(process, "training ", seen)  # the loader's workers are starting
    else:
        wait_for_checkpoint(latest, process, min_epoch=1)
        time.sleep(0.4 if moment == "mid-epoch" else 0.0)
    os.killpg(process.pid, signal.SIGTERM)
    output, _ = process.communicate(timeout=300)
    output = "".join(seen) + output
    assert process.returncode == 143, output
    assert "Traceback" not in output and "Error" not in output, output
    assert output.count("checkpoint saved") == 1, output
    stopped = load_checkpoint(latest)
    where = Progress(stopped["epoch"], stopped["batch"], stopped["step"]).where()
    assert f"stopped {where}; checkpoint saved" in output
    status = json.loads((runs / "tiny" / "status.json").read_text())
    assert status["state"] == "stopped" and status["message"] == "stopped by SIGTERM"
    assert status["step"] == stopped["step"] and status["where"] == where


def test_a_second_trainer_of_the_same_run_is_refused_naming_the_first(
    synth_root: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    latest = runs / "tiny" / "checkpoints" / "latest.pt"
    first = start_training(synth_root, runs, "--epochs", "40", "--epochs-decay", "0")
    wait_until_held(runs / "tiny", first)  # two new runs of one name; the first one claimed it
    second = subprocess.run(
        [sys.executable, "-m", "cyclegan", "train", *tiny_flags(synth_root, runs)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    wait_for_checkpoint(latest, first, min_epoch=1)
    resumed = subprocess.run(
        [sys.executable, "-m", "cyclegan", "train", "--resume", str(runs / "tiny")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    status = json.loads((runs / "tiny" / "status.json").read_text())
    assert status["state"] == "running" and status["pid"] == first.pid
    for refused in (second, resumed):
        assert refused.returncode == 2, refused.stderr
        assert f"is being trained by process {first.pid} on " in refused.stderr
        assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    rows = (runs / "tiny" / "losses.csv").read_text().splitlines()
    steps = [row.split(",")[1] for row in rows[1:]]
    assert len(steps) == len(set(steps))  # no step logged twice

    first.send_signal(signal.SIGKILL)  # a lock left behind by a killed process is taken over
    first.wait(timeout=30)
    assert json.loads((runs / "tiny" / "status.json").read_text())["state"] == "running"
    again = subprocess.run(
        [
            sys.executable, "-m", "cyclegan", "train", "--resume", str(runs / "tiny"),
            "--epochs", "1", "--epochs-decay", "0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert f"process {first.pid} on " in again.stdout and "is gone" in again.stdout
    assert json.loads((runs / "tiny" / "status.json").read_text())["state"] == "finished"
