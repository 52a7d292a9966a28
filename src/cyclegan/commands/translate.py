"""`cyclegan translate`: image files and folders through a trained generator."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from cyclegan.commands.common import UserError


def add_translate_command(commands: Any) -> None:
    translate = commands.add_parser(
        "translate",
        help="translate images with a trained generator",
        description="Translate image files and folders at their own size. A folder holding "
        "A_type/ and B_type/ (the seed's layout) is translated A->B and B->A into OUT/A_type "
        "and OUT/B_type.",
    )
    translate.add_argument("inputs", nargs="+", type=Path, help="image files or folders")
    source = translate.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="run folder (runs/NAME)")
    source.add_argument(
        "--weights", type=Path, help="a checkpoint (.pt) or exported generator (.safetensors)"
    )
    translate.add_argument(
        "--direction",
        choices=("AtoB", "BtoA"),
        default="AtoB",
        help="translation direction (default: AtoB)",
    )
    translate.add_argument("--epoch", type=int, help="use the run's checkpoint of this epoch")
    translate.add_argument("--out", type=Path, required=True, help="output folder")
    translate.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda", "mps"),
        default="auto",
        help="device (default: auto)",
    )
    translate.set_defaults(handler=run_translate)


def run_translate(args: argparse.Namespace) -> int:
    from cyclegan.inference.translator import Translator, plan_inputs, translate_files

    model_source = args.run if args.run is not None else args.weights
    if not model_source.exists():
        raise UserError(f"{model_source} does not exist: give a run folder or a weights file")
    for item in args.inputs:
        if item.is_dir() and item.resolve() == args.out.resolve():
            raise UserError(f"--out {args.out} is an input folder; pick another output folder")
    plan = plan_inputs(args.inputs, args.direction, args.out)
    if not plan:
        raise UserError(f"no images found in {', '.join(map(str, args.inputs))}")
    directions = sorted({direction for _, _, direction in plan})

    def load(direction: str) -> Translator:
        if args.run is not None:
            return Translator.from_run(args.run, direction, args.device, args.epoch)
        return Translator.from_file(args.weights, direction, args.device)

    translators = {direction: load(direction) for direction in directions}
    started = time.perf_counter()
    report = translate_files(plan, translators)
    seconds = time.perf_counter() - started
    for _path, reason in report.failed:
        print(f"skipped {reason}", file=sys.stderr)
    rate = len(report.translated) / max(seconds, 1e-9)
    print(
        f"translated {len(report.translated)} image(s) into {args.out} in {seconds:.1f}s "
        f"({rate:.2f} images/s); {len(report.failed)} failed"
    )
    return 1 if report.failed else 0
