"""`cyclegan demo`: the built-in dataset, a short training, translation and a score."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cyclegan.commands.common import UserError


def add_demo_command(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="make the built-in dataset, train a small CycleGAN on it, translate, score",
        description="A few minutes on a CPU: synthetic data -> training -> translation of the "
        "test images -> PSNR against the ground truth. The run goes to RUNS_DIR/demo, which the "
        "next demo replaces; a RUNS_DIR/demo the demo did not make (no .cyclegan-demo file in "
        "it) is left untouched and the demo runs in demo-2 (or the next free name) instead.",
    )
    demo.add_argument(
        "--root",
        type=Path,
        default=Path("datasets/synth-dusk"),
        help="dataset folder (default: datasets/synth-dusk)",
    )
    demo.add_argument(
        "--runs-dir",
        type=Path,
        default=Path("runs"),
        help="folder for the run folder demo (default: runs)",
    )
    demo.add_argument(
        "--minutes", type=float, default=4.0, help="training time budget (default: 4)"
    )
    demo.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch (default: 1: as fast for this small model, and it does "
        "not collapse when other programs share the cores)",
    )
    demo.set_defaults(handler=run_demo_command)


def run_demo_command(args: argparse.Namespace) -> int:
    from cyclegan.demo import run_demo

    if args.minutes <= 0 or args.threads <= 0:
        raise UserError("--minutes and --threads must be positive")
    try:
        run_demo(args.root, args.runs_dir, args.minutes, args.threads)
    except FileExistsError as error:  # --root names a folder holding something else
        raise UserError(f"--root: {error}") from error
    return 0
