"""`cyclegan convert`: a reference-implementation generator into our safetensors format."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cyclegan.commands.common import UserError


def add_convert_command(commands: Any) -> None:
    convert = commands.add_parser(
        "convert",
        help="convert a pytorch-CycleGAN-and-pix2pix generator to safetensors",
        description="Convert a generator saved by the reference implementation "
        "(junyanz/pytorch-CycleGAN-and-pix2pix, e.g. latest_net_G_A.pth or a published "
        "NAME.pth) into a cyclegan safetensors file with its config; the architecture is read "
        "off the weights. `cyclegan translate --weights` also reads the .pth directly.",
    )
    convert.add_argument("weights", type=Path, help="the reference generator (.pth)")
    convert.add_argument(
        "--out", type=Path, help="file to write (default: the input's name with .safetensors)"
    )
    convert.add_argument(
        "--direction",
        choices=("AtoB", "BtoA"),
        default="AtoB",
        help="the direction to record: net_G_A files are AtoB, net_G_B files BtoA (default: AtoB)",
    )
    convert.set_defaults(handler=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    from cyclegan.inference.export import export_generator
    from cyclegan.inference.reference import (
        REFERENCE_LOAD_SIZE,
        is_reference_state,
        load_state_file,
        reference_generator,
    )

    if not args.weights.is_file():
        raise UserError(f"{args.weights} does not exist or is not a file")
    state = load_state_file(args.weights)
    if not is_reference_state(state):
        raise UserError(
            f"{args.weights} is not a reference generator (its keys start {list(state)[:2]}, "
            "expected 'model.N...'); for cyclegan runs and checkpoints use `cyclegan export`"
        )
    generator, model = reference_generator(state, args.weights, args.direction)
    out = args.out or args.weights.with_suffix(".safetensors")
    if out.resolve() == args.weights.resolve():
        raise UserError(f"--out {out} is the input file; give another --out")
    export_generator(
        generator,
        model,
        args.direction,
        out,
        "safetensors",
        load_size=REFERENCE_LOAD_SIZE,
        source=f"reference: {args.weights.name}",
    )
    print(f"wrote {out} ({args.direction}, {model.generator} ngf={model.ngf})")
    return 0
