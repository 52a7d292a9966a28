"""Two trainings on one machine: how much each slows the other, by thread settings.

    python benchmarks/shared_machine.py                   # every variant, 40 steps each
    python benchmarks/shared_machine.py --steps 80 --variants passive-auto active-2

A training alone, then two of the same side by side, for each variant: how OpenMP threads wait
for work (spin on their core, for GOMP_SPINCOUNT rounds or until work comes with ACTIVE, or
sleep at once with PASSIVE) and the training process's intra-op threads (`--threads`, 0:
auto). Each run is `cyclegan train
--preset fast` at 64 px on the built-in dataset, without loader workers, for a fixed number of
steps; the figure is the mean seconds per step from its losses.csv (training steps only, no
start-up), and the ratio is side-by-side over alone: 2.0 means each of two runs gets half the
machine, which is the best two compute-bound runs can do on the same cores.

Run it on an otherwise idle machine (nothing else should run: that is what it measures).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cyclegan.data.synthetic import make_synthetic_dataset  # noqa: E402

# name -> (OpenMP environment, --threads). GNU OpenMP (torch's) spins GOMP_SPINCOUNT times
# (300,000 by default) before a waiting thread sleeps; PASSIVE sleeps at once
VARIANTS: dict[str, tuple[dict[str, str], int]] = {
    "active-2": ({"OMP_WAIT_POLICY": "ACTIVE"}, 2),  # spin until work comes
    "spin300k-2": ({"GOMP_SPINCOUNT": "300000"}, 2),  # torch's own default: nothing set
    "spin10k-2": ({"GOMP_SPINCOUNT": "10000"}, 2),
    "spin1k-2": ({"GOMP_SPINCOUNT": "1000"}, 2),
    "spin100-2": ({"GOMP_SPINCOUNT": "100"}, 2),
    "passive-2": ({"OMP_WAIT_POLICY": "PASSIVE"}, 2),
    "passive-1": ({"OMP_WAIT_POLICY": "PASSIVE"}, 1),
    "cli-auto": ({}, 0),  # what `cyclegan train` runs with when nothing is set
}


@dataclass
class Timing:
    variant: str
    alone_s: float  # mean seconds per step, alone
    shared_s: tuple[float, float]  # the same for each of two side by side

    @property
    def ratio(self) -> float:
        return max(self.shared_s) / self.alone_s


def train_command(data: Path, runs: Path, name: str, threads: int, steps: int) -> list[str]:
    return [
        sys.executable, "-m", "cyclegan", "train", "--data", str(data), "--runs-dir", str(runs),
        "--name", name, "--preset", "fast", "--load-size", "64", "--crop-size", "64",
        "--workers", "0", "--epochs", "1", "--epochs-decay", "0", "--max-steps-per-epoch",
        str(steps), "--log-every", "5", "--num-samples", "1", "--threads", str(threads),
        "--precision", "fp32", "--quiet",
    ]  # fmt: skip


def start(command: list[str], openmp: dict[str, str]) -> subprocess.Popen[bytes]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
    }
    environment |= {**openmp, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL)


def seconds_per_step(run: Path, skip_rows: int = 1) -> float:
    """Mean step_s of losses.csv, leaving out the first rows (warm-up)."""
    with open(run / "losses.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[skip_rows:]
    return sum(float(row["step_s"]) for row in rows) / len(rows)


def measure(variant: str, data: Path, work: Path, steps: int) -> Timing:
    openmp, threads = VARIANTS[variant]
    runs = work / variant
    alone = start(train_command(data, runs, "alone", threads, steps), openmp)
    if alone.wait() != 0:
        raise SystemExit(f"{variant}: the training alone failed")
    pair = [
        start(train_command(data, runs, f"shared{index}", threads, steps), openmp)
        for index in (1, 2)
    ]
    if any(process.wait() != 0 for process in pair):
        raise SystemExit(f"{variant}: a training side by side failed")
    shared = (seconds_per_step(runs / "shared1"), seconds_per_step(runs / "shared2"))
    return Timing(variant, seconds_per_step(runs / "alone"), shared)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps per run")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = parser.parse_args()
    print(f"# {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        data = make_synthetic_dataset(work / "synth", size=64, train=32, test=2, seed=0)
        print(f"{'variant':<14} {'alone s/step':>13} {'side by side s/step':>22} {'ratio':>6}")
        for variant in args.variants:
            started = time.monotonic()
            timing = measure(variant, data, work, args.steps)
            shared = " / ".join(f"{value:.3f}" for value in timing.shared_s)
            print(
                f"{variant:<14} {timing.alone_s:>13.3f} {shared:>22} {timing.ratio:>6.2f}"
                f"   ({time.monotonic() - started:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
