"""`cyclegan data`: make and prepare datasets."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cyclegan.commands.common import UserError


def add_data_command(commands: Any) -> None:
    data = commands.add_parser("data", help="make and prepare datasets")
    actions = data.add_subparsers(title="data commands", metavar="ACTION")
    synth = actions.add_parser(
        "synth",
        help="generate the built-in synthetic dataset (no download)",
        description="Write a small two-domain dataset: A = bright warm drawings, B = a fixed "
        "invertible colour transform of other such drawings, plus testA_truth/ holding the true "
        "B image of every testA image.",
    )
    synth.add_argument("root", type=Path, help="folder to create (e.g. datasets/synth)")
    synth.add_argument("--size", type=int, default=64, help="image side in pixels (default: 64)")
    synth.add_argument(
        "--train", type=int, default=200, help="train images per domain (default: 200)"
    )
    synth.add_argument("--test", type=int, default=20, help="test images per domain (default: 20)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    synth.set_defaults(handler=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    from cyclegan.data.synthetic import make_synthetic_dataset

    for name in ("size", "train", "test"):
        if getattr(args, name) <= 0:
            raise UserError(f"--{name} must be positive")
    root = make_synthetic_dataset(
        args.root, size=args.size, train=args.train, test=args.test, seed=args.seed
    )
    print(f"synthetic dataset ready in {root}")
    return 0
