"""Data-parallel scaling: training images/s on 1 process and on N (torchrun, DDP).

    python benchmarks/ddp_scaling.py                                   # CPU, gloo: 1 and 2
    python benchmarks/ddp_scaling.py --device cuda --processes 1 2 4 8 # GPUs, nccl

Each count of processes trains the same small CycleGAN (`--preset fast` at 64 px unless told
otherwise) for `--warmup` + `--steps` steps on the built-in synthetic dataset, through the real
command: `python -m cyclegan train` for one process, `torchrun --standalone --nproc-per-node N
-m cyclegan train` for N. --batch-size is per process, so a step of N processes trains N times
the images (the effective batch). images/s = images per step / seconds per step, the seconds
being rank 0's mean `step_s` over the timed steps (losses.csv, --log-every 1): loading, the
step with its gradient all-reduce and the processes' per-step exchange, without start-up and
the end-of-epoch records. On the CPU every process gets `--threads` threads (1: the CPU
analogue of one GPU per process), so N processes need N free cores to scale; the cores other
processes of the machine used meanwhile are printed beside each figure.
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cpu_load import busy_cpu_seconds, own_cpu_seconds


def train_command(processes: int, flags: list[str]) -> list[str]:
    launcher = [sys.executable, "-m", "cyclegan", "train"]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        launcher += ["--nproc-per-node", str(processes), "-m", "cyclegan", "train"]
    return [*launcher, *flags]


def timed_steps(losses_csv: Path, warmup: int) -> list[float]:
    """Seconds of each step after the first `warmup` (rows of one step each)."""
    with open(losses_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [float(row["step_s"]) for row in rows[warmup:]]


def run(processes: int, args: argparse.Namespace, data: Path, runs: Path) -> dict[str, float]:
    name = f"p{processes}"
    flags = ["--data", str(data), "--runs-dir", str(runs), "--name", name, "--device", args.device]
    flags += ["--preset", args.preset, "--load-size", str(args.crop + args.crop // 8)]
    flags += ["--crop-size", str(args.crop), "--batch-size", str(args.batch_size)]
    flags += ["--workers", str(args.workers), "--epochs", "1", "--epochs-decay", "0"]
    flags += ["--max-steps-per-epoch", str(args.warmup + args.steps), "--log-every", "1"]
    flags += ["--num-samples", "0", *args.set]
    command = train_command(processes, flags)
    environment = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    print(f"OMP_NUM_THREADS={args.threads} {shlex.join(command)}", flush=True)
    busy_before, own_before = busy_cpu_seconds(), own_cpu_seconds()
    started = time.monotonic()
    result = subprocess.run(command, env=environment, capture_output=True, text=True)
    wall = time.monotonic() - started
    busy, own = busy_cpu_seconds(), own_cpu_seconds() - own_before  # own: the finished run
    if result.returncode != 0:
        raise SystemExit(f"training on {processes} process(es) failed:\n{result.stderr[-3000:]}")
    seconds = timed_steps(runs / name / "losses.csv", args.warmup)
    step_s = sum(seconds) / len(seconds)
    images = args.batch_size * processes
    others = float("nan")
    if busy is not None and busy_before is not None:
        others = max(busy - busy_before - own, 0.0) / wall
    return {"images": images, "step_s": step_s, "per_s": images / step_s, "others": others}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--crop", type=int, default=64, help="crop size (px)")
    parser.add_argument("--batch-size", type=int, default=4, help="images per process a step")
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per process")
    parser.add_argument("--workers", type=int, default=0, help="loader workers per process")
    parser.add_argument(
        "--set", nargs="*", default=[], help="more `cyclegan train` flags, e.g. --set --ngf 32"
    )
    args = parser.parse_args()

    from cyclegan.data.synthetic import make_synthetic_dataset

    with tempfile.TemporaryDirectory() as folder:
        # enough images that every process takes all its steps within one epoch
        images = (args.warmup + args.steps) * args.batch_size * max(args.processes)
        data = make_synthetic_dataset(
            Path(folder) / "synth", size=args.crop + args.crop // 8, train=images, test=2, seed=0
        )
        results = {n: run(n, args, data, Path(folder) / "runs") for n in args.processes}

    base = results[min(results)]["per_s"]
    setting = f"{args.preset} preset, {args.crop}px, batch {args.batch_size} per process"
    print(f"\n{args.device}, {setting}")
    print("processes  images/step  s/step  images/s  ratio  cores used by other processes")
    for count, result in results.items():
        print(
            f"{count:9d}  {result['images']:11d}  {result['step_s']:6.3f}  {result['per_s']:8.2f}"
            f"  {result['per_s'] / base:5.2f}  {result['others']:.2f} of {os.cpu_count()}"
        )


if __name__ == "__main__":
    main()
