"""Peak memory of one training process, alone and as one of N DDP processes, split backward off/on.

    python benchmarks/ddp_memory.py                                  # CPU, gloo: 1 and 2, 256 px
    python benchmarks/ddp_memory.py --device cuda --processes 1 2 4  # GPUs, nccl, one per process

Every (processes, split backward) runs in fresh processes (torch.multiprocessing), each joining
the process group from the variables torchrun sets, so every peak is its own: the process's
peak resident set (VmHWM) on the CPU, torch's peak allocation on CUDA. Each process builds the
networks `cyclegan train` builds (the paper's unless `--set` changes them), wraps them as the
training loop does (DDP replicas on 2 or more processes) and takes `--warmup` + `--steps`
`train_step`s on random images of `--size` px, batch `--batch` per process, with the default
speed options in `--precision` (fp32: the figures of benchmarks/train_speed.py). A row shows
the largest peak among its processes. No timing is taken: the figures hold on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing

from cyclegan.config import Config, parse_assignment
from cyclegan.training.distributed import join_team
from cyclegan.training.speed import gradient_scaler
from cyclegan.training.state import TrainingState
from cyclegan.training.step import train_step


def peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return proc_status_mib("VmHWM")


def proc_status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(rank: int, world_size: int, port: int, split: bool, args: dict[str, Any]) -> None:
    """Process `rank` of `world_size`: its steps, then its peak memory into the output folder."""
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    torch.set_num_threads(args["threads"])
    overrides = dict(parse_assignment(item) for item in args["set"])
    config = Config().with_overrides({**overrides, "device": args["device"]})
    speed = replace(config.speed, split_backward=split, precision=args["precision"])
    with join_team(config.run) as team:
        state = TrainingState.create(config, team.device, rank=team.rank)
        networks = team.wrap(state.model)
        scaler = gradient_scaler(team.device, speed)
        shape = (args["batch"], 3, args["size"], args["size"])
        images = [(torch.rand(shape) * 2 - 1).to(team.device) for _ in range(2)]
        before = proc_status_mib("VmRSS") if team.device.type == "cpu" else float("nan")
        for _ in range(args["warmup"] + args["steps"]):
            train_step(networks, state.optimizers, state.pools, *images, config.loss, speed, scaler)
        result = {"peak_mib": peak_mib(team.device), "before_steps_mib": before}
    Path(args["out"], f"rank{rank}.json").write_text(json.dumps(result))


def run(processes: int, split: bool, args: dict[str, Any]) -> dict[str, float]:
    """The largest peak (and resident set before the steps) among `processes` fresh ones."""
    with tempfile.TemporaryDirectory() as out:
        torch.multiprocessing.spawn(
            measure, args=(processes, free_port(), split, {**args, "out": out}), nprocs=processes
        )
        results = [json.loads(path.read_text()) for path in Path(out).glob("rank*.json")]
    return {key: max(result[key] for result in results) for key in results[0]}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--size", type=int, default=256, help="image size (px)")
    parser.add_argument("--batch", type=int, default=1, help="images per process a step")
    parser.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--steps", type=int, default=1, help="steps after the warm-up")
    parser.add_argument("--warmup", type=int, default=1, help="steps first (Adam's state)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per process")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="a config option, e.g. generator=resnet_6blocks; repeatable",
    )  # fmt: skip
    args = vars(parser.parse_args())
    print(f"command: python benchmarks/ddp_memory.py {' '.join(sys.argv[1:])}")
    setting = f"{args['size']} px, batch {args['batch']} per process, {args['precision']}"
    print(f"torch {torch.__version__}, {args['device']}, {setting}, {args['threads']} thread(s)")
    rows = []
    for processes in args.pop("processes"):
        for split in (False, True):
            row = {"processes": processes, "split": split, **run(processes, split, args)}
            state = "on" if split else "off"
            print(
                f"  {processes} process(es), split backward {state}: {row['peak_mib']:.0f} MiB",
                flush=True,
            )
            rows.append(row)
    print(
        "\n| processes | split backward | peak MiB per process | x split off | before steps MiB |"
    )
    print("| --- | --- | --- | --- | --- |")
    off = {row["processes"]: row["peak_mib"] for row in rows if not row["split"]}
    for row in rows:
        print(
            f"| {row['processes']} | {'on' if row['split'] else 'off'} | {row['peak_mib']:.0f} | "
            f"{row['peak_mib'] / off[row['processes']]:.2f}x | {row['before_steps_mib']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
