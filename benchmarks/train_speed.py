"""Training step time and peak memory: the plain step against each speed option and all of them.

    python benchmarks/train_speed.py                 # cpu: 64/128/256 px, batch 1 and 4
    python benchmarks/train_speed.py --sizes 256 --batches 1 --modes baseline defaults
    python benchmarks/train_speed.py --device cuda --sizes 256 --batches 1 4
    python benchmarks/train_speed.py --sizes 256 --batches 1 --modes defaults \
        --models cyclegan cut fastcut

Every (mode, crop, batch) runs in a fresh process, so its peak memory is its own: the process's
peak resident set (VmHWM) on the CPU, torch's peak allocation on CUDA. Step time is the median
of `--steps` steps after `--warmup` steps, one step being `cyclegan.training.step.train_step`
on random images with the paper's networks (resnet_9blocks, 70x70 PatchGAN, identity loss 0.5,
pool 50) unless `--set` changes them. Modes: `baseline` is the step done the plain way (fp32,
eager, separate network calls, one backward, default memory format, for-loop Adam); each option
alone, and `bf16_channels_last` (channels-last weights and images in bf16, the layout that
translation measured faster in bf16 only); `defaults` is what `cyclegan train` uses (its
precision `auto` is bf16 on a CPU with AMX); `all` turns every option on that the device
supports, with the auto precision (no torch.compile unless --modes names it). Ratios are to the
baseline of the same crop and batch, measured in this run; the modes of one crop and batch run
one after another. With `--models`, each model family (--model cyclegan, cut, fastcut; their
paper settings, one step being `contrastive_step` for CUT) runs every mode, and a last column
gives its time, peak memory and the memory its steps add (peak minus the resident set before
the first step: the weights, the libraries) as ratios to cyclegan's of the same mode, crop and
batch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from cyclegan.config import Config, SpeedConfig, parse_assignment
from cyclegan.device import device_precision
from cyclegan.models import ContrastiveModel, build_model
from cyclegan.training.contrastive_step import contrastive_step
from cyclegan.training.image_pool import ImagePool
from cyclegan.training.speed import fused_adam_available, gradient_scaler, prepare_networks
from cyclegan.training.state import Optimizers
from cyclegan.training.step import PLAIN, train_step

ALONE = {
    "batched_passes": {"batched_passes": True},
    "split_backward": {"split_backward": True},
    "channels_last": {"channels_last": True},
    "fused_adam": {"fused_adam": True},
    "bf16": {"precision": "bf16"},
    "bf16_channels_last": {"precision": "bf16", "channels_last": True},
    "fp16": {"precision": "fp16"},
    "checkpoint_blocks": {"checkpoint_blocks": True},
    "compile": {"compile": True},
}
CPU_MODES = ["baseline", "batched_passes", "split_backward", "channels_last", "fused_adam",
             "bf16", "bf16_channels_last", "checkpoint_blocks", "defaults",
             "defaults_checkpoint_blocks", "all"]  # fmt: skip
CUDA_MODES = ["baseline", "batched_passes", "split_backward", "channels_last", "fused_adam",
              "bf16", "bf16_channels_last", "fp16", "checkpoint_blocks", "defaults",
              "defaults_checkpoint_blocks", "all"]  # fmt: skip


def speed_for(mode: str, device: torch.device) -> SpeedConfig:
    if mode == "baseline":
        return PLAIN
    if mode == "defaults":
        return SpeedConfig()
    if mode == "defaults_checkpoint_blocks":  # the defaults, recomputing the residual blocks
        return SpeedConfig(checkpoint_blocks=True)
    if mode == "all":  # auto precision: bf16/fp16 on CUDA, bf16 on a CPU with AMX, else fp32
        return SpeedConfig(
            batched_passes=True,
            split_backward=True,
            channels_last=True,
            fused_adam=True,
            precision="auto",
        )
    return replace(PLAIN, **ALONE[mode])


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def current_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One mode, crop and batch, in this process."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    overrides = dict(parse_assignment(item) for item in args.set)
    config = Config().with_overrides({**overrides, "model": args.model})
    # "defaults" is what `cyclegan train` uses for the family (FastCUT recomputes its layers)
    speed = config.speed if args.mode == "defaults" else speed_for(args.mode, device)
    torch.manual_seed(0)
    model = build_model(config.model).to(device)
    prepare_networks(model, speed)
    fused = speed.fused_adam and fused_adam_available(device)
    optimizers = Optimizers.for_model(model, config.optim, fused=fused)
    pools = (ImagePool(config.optim.pool_size, seed=0), ImagePool(config.optim.pool_size, seed=1))
    scaler = gradient_scaler(device, speed)
    shape = (args.batch, 3, args.size, args.size)
    images = [(torch.rand(shape) * 2 - 1).to(device) for _ in range(4)]
    settled = current_rss_mib()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(args.warmup + args.steps):
        real_a, real_b = images[step % 2], images[2 + step % 2]
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        if isinstance(model, ContrastiveModel):
            contrastive_step(model, optimizers, real_a, real_b, config.loss, speed, scaler)
        else:
            train_step(model, optimizers, pools, real_a, real_b, config.loss, speed, scaler)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - started)
    return {
        "model": args.model,
        "mode": args.mode,
        "size": args.size,
        "batch": args.batch,
        "step_s": statistics.median(times),
        "peak_mib": peak_memory_mib(device),
        "before_steps_mib": settled if device.type == "cpu" else float("nan"),
        "precision": device_precision(device, speed.precision),
    }


def run_child(
    args: argparse.Namespace, mode: str, size: int, batch: int, model: str = "cyclegan"
) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", "--mode", mode, "--model", model,
               "--size", str(size), "--batch", str(batch), "--device", args.device,
               "--threads", str(args.threads), "--steps", str(args.steps),
               "--warmup", str(args.warmup)]  # fmt: skip
    for item in args.set:
        command += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"model": model, "mode": mode, "size": size, "batch": batch, "error": tail[0]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        "| model | crop | batch | mode | precision | s/step | x baseline | peak MiB | x baseline "
        "| before steps MiB | x cyclegan (time / peak / peak - before steps) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    baselines = {(r["model"], r["size"], r["batch"]): r for r in rows if r["mode"] == "baseline"}
    cyclegans = {(r["mode"], r["size"], r["batch"]): r for r in rows if r["model"] == "cyclegan"}
    for row in rows:
        if "error" in row:
            print(
                f"| {row['model']} | {row['size']} | {row['batch']} | {row['mode']} | "
                f"failed: {row['error']} |"
            )
            continue
        base = baselines.get((row["model"], row["size"], row["batch"]))
        time_ratio, mem_ratio = ratios(row, base)
        versus = cyclegans.get((row["mode"], row["size"], row["batch"]))
        family_time, family_mem = ratios(row, versus)
        added = float("nan")
        if versus is not None and "peak_mib" in versus:
            added = (row["peak_mib"] - row["before_steps_mib"]) / (
                versus["peak_mib"] - versus["before_steps_mib"]
            )
        print(
            f"| {row['model']} | {row['size']} | {row['batch']} | {row['mode']} | "
            f"{row['precision']} | {row['step_s']:.3f} | "
            f"{time_ratio:.2f}x | {row['peak_mib']:.0f} | {mem_ratio:.2f}x | "
            f"{row['before_steps_mib']:.0f} | {family_time:.2f}x / {family_mem:.2f}x / "
            f"{added:.2f}x |"
        )


def ratios(row: dict[str, Any], reference: dict[str, Any] | None) -> tuple[float, float]:
    """(step time, peak memory) of `row` over `reference`'s (nan without one)."""
    if reference is None or "step_s" not in reference:
        return float("nan"), float("nan")
    return row["step_s"] / reference["step_s"], row["peak_mib"] / reference["peak_mib"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--modes", nargs="+", default=None, help="default: every mode")
    parser.add_argument("--steps", type=int, default=5, help="measured steps (median)")
    parser.add_argument("--warmup", type=int, default=2, help="steps not measured")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (CPU)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config option, e.g. generator=resnet_6blocks; repeatable",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=["cyclegan"],
        choices=["cyclegan", "cut", "fastcut"],
        help="model families to measure (--model of cyclegan train), each with its settings",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="cyclegan", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device here", file=sys.stderr)
        return 2
    modes = args.modes or (CUDA_MODES if args.device == "cuda" else CPU_MODES)
    print(f"command: python benchmarks/train_speed.py {' '.join(sys.argv[1:])}")
    print(f"torch {torch.__version__}, {args.device}, {args.threads} thread(s), "
          f"{os.cpu_count()} CPU(s) visible")  # fmt: skip
    rows = []
    for size in args.sizes:
        for batch in args.batches:
            for model in args.models:
                for mode in modes:
                    row = run_child(args, mode, size, batch, model)
                    rows.append(row)
                    shown = row.get("error") or (
                        f"{row['step_s']:.3f} s/step, {row['peak_mib']:.0f} MiB"
                    )
                    print(f"  {model} {size}px batch {batch} {mode}: {shown}", flush=True)
    print()
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
