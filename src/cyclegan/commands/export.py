"""`cyclegan export`: a generator as ONNX, TorchScript or safetensors, for deployment; ONNX
also quantized to int8, calibrated and checked on photos.

The file is written atomically (a temporary file, then `os.replace`), never into the folders
a run's training writes and resume reads (`checkpoints/`, `generators/` of any run folder),
and never over an existing file without --overwrite; a name whose suffix is not the one
`translate` recognises the format by gets a one-line warning."""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path
from typing import Any

from cyclegan.commands.common import UserError
from cyclegan.commands.translate import add_generator_arguments, load_translator, run_direction
from cyclegan.inference.options import DEFAULT_MIN_PSNR, EXPORT_SUFFIXES, Quantize

# the folders of a run folder that training writes and resume reads: exports never go there
RUN_OWNED_FOLDERS = ("checkpoints", "generators")


def add_export_command(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="export a generator as ONNX, TorchScript or safetensors",
        description="Write one generator as a deployable file that carries its config. ONNX "
        "has dynamic batch, height and width, is checked with onnx.checker and against "
        "PyTorch with ONNX Runtime (needs cyclegan[onnx]); `cyclegan translate --weights "
        "FILE` runs any of the three. --quantize int8 writes an int8 ONNX file calibrated "
        "on the run's test images (or --calibration-images) and checked against the fp32 "
        "generator on photos held out of calibration.",
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
        help="file to write (default: RUN/exported/DIRECTION.EXT for runs, next to --weights "
        "(RUN/exported/NAME_DIRECTION.EXT for a run's checkpoint), NAME.EXT for --pretrained; "
        "EXT is .onnx, .torchscript.pt or .safetensors, and .int8.onnx with --quantize int8); "
        "never inside a run's checkpoints/ or generators/",
    )
    export.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing file at --out (otherwise refused)",
    )
    export.add_argument(
        "--quantize",
        choices=typing.get_args(Quantize),
        help="ONNX only: quantize to int8 with ONNX Runtime, calibrated on the run's test "
        "images of the direction's domain (testA for AtoB); its PSNR against the fp32 output "
        "and its speed against fp32 PyTorch and fp32 ONNX Runtime (medians of 5 runs) are "
        "printed, and below --min-psnr it is refused",
    )
    export.add_argument(
        "--calibration-images",
        type=Path,
        metavar="FOLDER",
        help="photos to calibrate and check the int8 model on (default: the run's test images; "
        "needed with --weights and --pretrained)",
    )
    export.add_argument(
        "--min-psnr",
        type=float,
        default=DEFAULT_MIN_PSNR,
        help="refuse an int8 model whose mean PSNR against the fp32 output is lower, in dB "
        f"(default: {DEFAULT_MIN_PSNR:g})",
    )
    export.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    from cyclegan.inference.export import export_generator

    args.backend = "torch"
    if args.weights is not None and args.weights.suffix.lower() == ".onnx":
        raise UserError(f"{args.weights} is already ONNX; export from the run or the weights")
    if args.quantize is None and args.calibration_images is not None:
        raise UserError("--calibration-images is for --quantize int8; add it or drop the folder")
    if args.quantize is not None and args.format != "onnx":
        raise UserError(f"--quantize int8 writes ONNX; drop --format {args.format}")
    suffix = ".int8.onnx" if args.quantize is not None else EXPORT_SUFFIXES[args.format]
    # a run's generator is AtoB (or its one direction) unless --direction says otherwise; files
    # name it themselves
    own = run_direction(args.run) if args.run is not None else "AtoB"
    out = _output_path(args, args.direction or own, suffix)  # before anything loads
    translator = load_translator(args, args.direction)
    if args.quantize is not None:
        return _export_int8(args, translator, out)
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


def _export_int8(args: argparse.Namespace, translator: Any, out: Path) -> int:
    from cyclegan.inference.quantize import (
        CHECK_PHOTOS,
        MIN_CALIBRATION_PHOTOS,
        SPEED_RUNS,
        export_int8,
        find_photos,
    )

    photos = find_photos(*_calibration_folder(args, translator.direction))
    report = export_int8(
        translator.generator,
        translator.model,
        translator.direction,
        out,
        photos,
        min_psnr=args.min_psnr,
        load_size=translator.load_size,
        source=translator.source,
    )
    photos_used = (
        f"{report.check_photos} held-out photo(s) (calibrated on {report.calibration_photos})"
        if report.held_out
        else f"the {report.check_photos} calibration photo(s) (too few to hold any out)"
    )
    if report.few_calibration_photos:
        print(
            f"warning: calibrated on only {report.calibration_photos} photo(s): int8 sets each "
            "activation's range to the extremes the calibration photos reach, and a new photo "
            "goes beyond those of k photos with a chance of 1 in k + 1 (and clips there); give "
            f"{MIN_CALIBRATION_PHOTOS + CHECK_PHOTOS} or more photos with --calibration-images "
            f"({MIN_CALIBRATION_PHOTOS} calibrate, up to {CHECK_PHOTOS} are held out for the "
            "check)",
            file=sys.stderr,
        )
    measured = (
        f"PSNR {report.psnr:.1f} dB (worst {report.worst_psnr:.1f}) against fp32 PyTorch on "
        f"{photos_used}; {report.speedup:.2f}x the speed of fp32 PyTorch and "
        f"{report.speedup_onnx:.2f}x that of fp32 ONNX Runtime (median of {SPEED_RUNS} runs "
        "after a warm-up)"
    )
    if not report.written:
        print(
            f"int8 refused, nothing written: {measured}, below --min-psnr {args.min_psnr:g}; "
            "use the fp32 export (--format onnx without --quantize)",
            file=sys.stderr,
        )
        return 1
    model = translator.model
    print(
        f"wrote {out} (ONNX int8, {translator.direction}, {model.generator} ngf={model.ngf}): "
        f"{measured}"
    )
    if report.speedup_onnx < 1:
        print(
            f"warning: int8 ran slower than fp32 ONNX Runtime here ({report.speedup_onnx:.2f}x); "
            "on this machine the fp32 export (--format onnx without --quantize) is faster",
            file=sys.stderr,
        )
    return 0


def _calibration_folder(args: argparse.Namespace, direction: str) -> tuple[Path, str]:
    """The folder of calibration photos and where it came from (for messages)."""
    if args.calibration_images is not None:
        return args.calibration_images, "--calibration-images"
    if args.run is None:
        raise UserError(
            "--quantize int8 calibrates on photos: give a folder of them with "
            "--calibration-images (only --run has test images of its own)"
        )
    from cyclegan.config import ConfigError, load_config

    domain = "testA" if direction == "AtoB" else "testB"
    try:
        root = load_config(args.run / "config.yaml").data.data
    except ConfigError as error:
        raise UserError(
            f"{error}; give the calibration photos with --calibration-images"
        ) from error
    return Path(root) / domain, f"the run's {domain} folder"


def _output_path(args: argparse.Namespace, direction: str, suffix: str) -> Path:
    """--out, or the default name, checked by `_check_out`."""
    out = args.out or _default_out(args, direction, suffix)
    _check_out(args, out)
    return out


def _check_out(args: argparse.Namespace, out: Path) -> None:
    """Refuse an --out that would destroy something: the input file, a file of a run's
    checkpoints/ or generators/, an existing file without --overwrite; warn (one line) about a
    suffix that `translate` would not recognise the format by."""
    if args.weights is not None and out.resolve() == args.weights.resolve():
        raise UserError(f"--out {out} is the input file; give another --out")
    owned = _run_owned_folder(out)
    if owned is not None:
        raise UserError(
            f"--out {out} is inside {owned}, which a run's training writes and resume reads; "
            "export somewhere else (by default RUN/exported/)"
        )
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give the file to write")
    if out.exists() and not args.overwrite:
        raise UserError(f"--out {out} exists; add --overwrite to replace it, or give another --out")
    expected = ".onnx" if args.quantize is not None else EXPORT_SUFFIXES[args.format]
    if not out.name.lower().endswith(expected):
        unread = "without --torchscript" if args.format == "torchscript" else "as " + args.format
        print(
            f"warning: --out {out} does not end in {expected}, the suffix `translate` tells "
            f"{args.format} files by, so it will not load this one {unread}",
            file=sys.stderr,
        )


def _run_owned_folder(out: Path) -> Path | None:
    """The checkpoints/ or generators/ folder of a run folder that `out` lies in, told by the
    layout (its config.yaml beside the folder, or checkpoints in it), whichever run it is."""
    for folder in out.resolve().parents:
        if folder.name in RUN_OWNED_FOLDERS and (
            (folder.parent / "config.yaml").is_file() or any(folder.glob("*.pt"))
        ):
            return folder
    return None


def _default_out(args: argparse.Namespace, direction: str, suffix: str) -> Path:
    if args.run is not None:
        return args.run / "exported" / f"{direction}{suffix}"
    if args.weights is not None:
        owned = _run_owned_folder(args.weights)
        if owned is not None:  # a run's checkpoint: into the run's exported/, not beside it
            return owned.parent / "exported" / f"{args.weights.stem}_{direction}{suffix}"
        return args.weights.with_suffix(suffix)
    return Path(f"{args.pretrained}{suffix}")
