"""`cyclegan translate`: image files, folders and patterns through a generator."""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path
from typing import Any

from cyclegan.commands.common import UserError, add_option, parse_sha256_option
from cyclegan.config import dataclass_options
from cyclegan.inference.options import Backend, OutputOptions, VideoOptions
from cyclegan.precision import Precision

# the output flags are OutputOptions' fields (VideoOptions' for videos): their types, choices,
# defaults and help
OUTPUT_OPTIONS = dataclass_options(OutputOptions)
VIDEO_OPTIONS = dataclass_options(VideoOptions)
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".gif")  # what --out can be


def add_translate_command(commands: Any) -> None:
    translate = commands.add_parser(
        "translate",
        help="translate images with a trained or pretrained generator",
        description="Translate image files, folders and glob patterns at their own size; "
        "results keep their names, formats and folder structure below --out (one image may "
        "go to --out RESULT.png instead). A folder "
        "holding A_type/ and B_type/ (the seed's layout) is translated A->B and B->A into "
        "OUT/A_type and OUT/B_type. A video (.mp4, .mov, .mkv, .webm, .avi, ..., or an "
        "animated .gif) is translated frame by frame into --out CLIP.mp4 (.mov, .m4v, .mkv: "
        "H.264; .webm: VP9), an animated .gif or a new folder of numbered PNG frames, keeping "
        "its size, frame timing, rotation and sound; a folder of frames becomes a video with "
        "--out CLIP.mp4.",
    )
    translate.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        help="image files, folders or glob patterns ('a/*.jpg'); or one video",
    )
    add_generator_arguments(translate)
    translate.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output folder; for one input image, may name the result file instead "
        "(result.jpg: its suffix sets the format)",
    )
    translate.add_argument(
        "--recursive", action="store_true", help="include images in sub-folders of folders"
    )
    output = translate.add_argument_group("output options")
    for option in OUTPUT_OPTIONS:
        add_option(output, option)
    video = translate.add_argument_group("video options")
    for option in VIDEO_OPTIONS:
        add_option(video, option)
    translate.set_defaults(handler=run_translate)


def add_generator_arguments(parser: argparse.ArgumentParser, backend: bool = True) -> None:
    """Where the generator comes from (and how it runs); shared with `cyclegan export`."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="run folder (runs/NAME)")
    source.add_argument(
        "--weights",
        type=Path,
        help="a checkpoint, an exported generator (.safetensors, .onnx, .torchscript.pt) or a "
        "reference-implementation generator (.pth)",
    )
    source.add_argument(
        "--pretrained", metavar="NAME", help="a published generator (cyclegan pretrained list)"
    )
    parser.add_argument(
        "--direction",
        choices=("AtoB", "BtoA"),
        help="translation direction (default: a file's own; for runs AtoB, or the one "
        "direction a run has)",
    )
    parser.add_argument("--epoch", type=int, help="use the run's checkpoint of this epoch")
    parser.add_argument(
        "--torchscript",
        action="store_true",
        help="load the --weights file as TorchScript whatever its name (NAME.torchscript.pt "
        "loads without this). Loading TorchScript runs the code in the file: only for files "
        "you trust",
    )
    if backend:
        parser.add_argument(
            "--backend",
            choices=typing.get_args(Backend),
            help="run with PyTorch or ONNX Runtime (needs cyclegan[onnx]); default: "
            "onnxruntime for .onnx files, torch otherwise",
        )
        parser.add_argument(
            "--precision",
            choices=typing.get_args(Precision),
            default="auto",
            help="arithmetic of PyTorch generators, the same policy as training's: auto is bf16 "
            "autocast on a CUDA GPU that supports it, else fp16; bf16 on a CPU with AMX or "
            "AVX-512 BF16 (1.8-2x "
            "the speed at 52 dB PSNR against fp32), else fp32; fp32 on MPS. fp32 and fp16 run "
            "everywhere, bf16 on CPUs and GPUs that support it. ONNX files run in their own "
            "precision (default: auto)",
        )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda", "mps"),
        default="auto",
        help="device (default: auto)",
    )
    parser.add_argument("--cache-dir", type=Path, help="pretrained cache (default: user cache)")
    parser.add_argument("--base-url", help="pretrained download address (a mirror)")
    parser.add_argument(
        "--sha256",
        metavar="HEX",
        help="the SHA-256 the --pretrained file must have: for a generator with no published "
        "hash (marked * in `cyclegan pretrained list`), or a mirror's own copy",
    )


def load_translator(args: argparse.Namespace, direction: str | None) -> Any:
    """The Translator the generator arguments name, for `direction` (None: its own)."""
    from cyclegan.inference.translator import Translator

    precision = getattr(args, "precision", "fp32")  # export has no --precision: fp32
    if args.epoch is not None and args.run is None:
        raise UserError("--epoch picks a checkpoint of a run: give it with --run")
    if args.sha256 is not None and args.pretrained is None:
        raise UserError("--sha256 checks the download of a --pretrained generator; drop it")
    if args.torchscript and args.weights is None:
        raise UserError("--torchscript is about a --weights file; runs and pretrained hold none")
    if args.pretrained is not None:
        if direction == "BtoA":
            raise UserError(
                f"--pretrained {args.pretrained} translates one way only; for the other way "
                "pick the opposite name (cyclegan pretrained list)"
            )
        return Translator.from_pretrained(
            args.pretrained,
            args.device,
            args.backend,
            args.cache_dir,
            args.base_url,
            precision=precision,
            sha256=parse_sha256_option(args.sha256),
        )
    if args.run is not None:
        if not args.run.exists():
            raise UserError(f"{args.run} does not exist: give a run folder (runs/NAME)")
        return Translator.from_run(
            args.run, direction or run_direction(args.run), args.device, args.epoch,
            args.backend, precision,
        )  # fmt: skip
    if not args.weights.exists():
        raise UserError(f"{args.weights} does not exist: give a checkpoint or generator file")
    return Translator.from_file(
        args.weights, direction, args.device, args.backend, precision, torchscript=args.torchscript
    )


def run_direction(run: Path) -> str:
    """A run's own direction: AtoB, unless it has only BtoA (a distillation of that one)."""
    from cyclegan.config import ConfigError, load_config

    try:
        return load_config(run / "config.yaml").model.directions[0]
    except (ConfigError, OSError):
        return "AtoB"  # loading the run says what is wrong with it


def run_translate(args: argparse.Namespace) -> int:
    from cyclegan.inference.files import (
        check_options,
        output_is_file,
        plan_inputs,
        translate_files,
    )

    given = {o.name: getattr(args, o.name) for o in OUTPUT_OPTIONS if hasattr(args, o.name)}
    options = OutputOptions(**given)  # the flags not given are absent: the defaults apply
    if video_job(args.inputs, args.out):
        return run_translate_video(args, options)
    for name in (o.name for o in VIDEO_OPTIONS if hasattr(args, o.name)):
        raise UserError(f"--{name} is for videos; {args.inputs[0]} is no video")
    output_is_file(args.inputs, args.out, options.format)  # a wrong --out: refused before work
    first = load_translator(args, args.direction)
    plan = plan_inputs(args.inputs, first.direction, args.out, args.recursive, options.format)
    if not plan:
        raise UserError(f"no images found in {', '.join(map(str, args.inputs))}")
    translators = {first.direction: first}
    for direction in sorted({job.direction for job in plan} - set(translators)):
        if args.run is None and not _holds_both(args):
            raise UserError(
                f"{args.weights or args.pretrained} holds one generator ({first.direction}); "
                f"the A_type/B_type layout also needs {direction}: give the run with --run"
            )
        translators[direction] = load_translator(args, direction)
    for translator in translators.values():
        check_options(options, translator)

    report = translate_files(plan, translators, options)
    for path, reason in report.failed:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    print(
        f"translated {len(report.translated)} image(s) into {args.out} in "
        f"{report.seconds:.1f}s ({report.rate:.2f} images/s); {len(report.failed)} failed"
    )
    return 1 if report.failed else 0


def video_job(inputs: list[Path], out: Path) -> bool:
    """Whether the command translates a video: one video input (or an animated GIF), or one
    folder of frames going to a video file; UserError for a video among several inputs."""
    from cyclegan.inference.video import is_video

    videos = [path for path in inputs if is_video(path)]
    if videos and len(inputs) > 1:
        raise UserError(f"translate one video at a time ({videos[0]} came with other inputs)")
    if videos:
        return True
    return len(inputs) == 1 and inputs[0].is_dir() and out.suffix.lower() in VIDEO_SUFFIXES


def run_translate_video(args: argparse.Namespace, options: OutputOptions) -> int:
    from cyclegan.inference.video import output_kind, translate_video

    given = {o.name: getattr(args, o.name) for o in VIDEO_OPTIONS if hasattr(args, o.name)}
    video = VideoOptions(**given)
    shaping = [f"--{n.replace('_', '-')}" for n in ("strength", "steady_blend") if n in given]
    if shaping and not video.steady:  # said, not silently ignored
        raise UserError(f"--steady is off, so {' and '.join(shaping)} would change nothing: "
                        "add --steady")  # fmt: skip
    if options.format is not None:
        raise UserError("--format is for images; a video's --out suffix sets its format")
    source = args.inputs[0]
    out = args.out
    if out.is_dir() and not source.is_dir():  # an existing folder: the video goes inside it
        out = out / (
            source.name if source.suffix.lower() in VIDEO_SUFFIXES else f"{source.stem}.mp4"
        )
    output_kind(out)  # a suffix no encoder writes: refused before the generator loads
    translator = load_translator(args, args.direction)
    report = translate_video(translator, source, out, options, video, progress=True)
    size = f"{report.size[0]}x{report.size[1]}"
    line = (
        f"translated {report.frames} frame(s) of {size} into {report.out} in "
        f"{report.seconds:.1f}s ({report.rate:.2f} frames/s); audio: {report.audio}"
    )
    if report.steady:
        line += f"; steadied (strength {video.strength:g})"
    print(line)
    if video.flicker:
        print(
            f"warping error: {report.warping_error:.2f} (the input's own: "
            f"{report.input_warping_error:.2f}; 8-bit levels where the motion is tracked)"
        )
    return 0


def _holds_both(args: argparse.Namespace) -> bool:
    # a training checkpoint holds both generators; exports and reference files hold one
    from cyclegan.inference.translator import holds_both_directions

    return args.weights is not None and holds_both_directions(args.weights)
