"""`cyclegan export`: a generator as ONNX, TorchScript or safetensors, for deployment."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cyclegan.commands.common import UserError
from cyclegan.commands.translate import add_generator_arguments, load_translator
from cyclegan.inference.options import EXPORT_SUFFIXES


def add_export_command(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="export a generator as ONNX, TorchScript or safetensors",
        description="Write one generator as a deployable file that carries its config. ONNX "
        "has dynamic batch, height and width, is checked with onnx.checker and against "
        "PyTorch with ONNX Runtime (needs cyclegan[onnx]); `cyclegan translate --weights "
        "FILE` runs any of the three.",
    )
    add_generator_arguments(export, backend=False)
    export.add_argument(
        "--format",
        choices=tuple(EXPORT_SUFFIXES),
        default="onnx",
        help="file format (default: onnx)",
    )
    export.add_argument(
        "--out",
        type=Path,
        help="file to write (default: RUN/exported/DIRECTION.EXT for runs, next to --weights, "
        "NAME.EXT for --pretrained)",
    )
    export.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    from cyclegan.inference.export import export_generator

    args.backend = "torch"
    if args.weights is not None and args.weights.suffix.lower() == ".onnx":
        raise UserError(f"{args.weights} is already ONNX; export from the run or the weights")
    translator = load_translator(args, args.direction)
    out = args.out or _default_out(args, translator.direction, EXPORT_SUFFIXES[args.format])
    if args.weights is not None and out.resolve() == args.weights.resolve():
        raise UserError(f"--out {out} is the input file; give another --out")
    difference = export_generator(
        translator.generator,
        translator.model,
        translator.direction,
        out,
        args.format,
        load_size=translator.load_size,
        source=translator.source,
    )
    model = translator.model
    check = "" if difference is None else f"; ONNX Runtime matches PyTorch to {difference:.1e}"
    print(
        f"wrote {out} ({args.format}, {translator.direction}, {model.generator} "
        f"ngf={model.ngf}{check})"
    )
    return 0


def _default_out(args: argparse.Namespace, direction: str, suffix: str) -> Path:
    if args.run is not None:
        return args.run / "exported" / f"{direction}{suffix}"
    if args.weights is not None:
        return args.weights.with_suffix(suffix)
    return Path(f"{args.pretrained}{suffix}")
