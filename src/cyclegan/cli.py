"""The `cyclegan` command: train, translate, data, demo.

The training options are generated from the config dataclasses (`cyclegan.config.options`),
so each flag, its type, choices, default and help are written once. User mistakes end in
one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cyclegan import __version__
from cyclegan.config import Config, ConfigError, Option, options

EXIT_USAGE = 2
METAVARS = {"data": "ROOT", "runs_dir": "DIR"}


class UserError(Exception):
    """Raised by command handlers for a problem the user can fix."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_USAGE
    from cyclegan.data import DatasetLayoutError, UnreadableImageError
    from cyclegan.training.checkpoint import CheckpointError
    from cyclegan.training.loop import TrainingDiverged

    try:
        return args.handler(args)
    except (
        UserError,
        ConfigError,
        CheckpointError,
        DatasetLayoutError,
        UnreadableImageError,
        FileExistsError,
    ) as error:
        print(f"cyclegan: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingDiverged as error:
        print(f"cyclegan: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cyclegan: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cyclegan",
        description="Unpaired image-to-image translation with CycleGAN.",
    )
    parser.add_argument("--version", action="version", version=f"cyclegan {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    add_train_command(commands)
    add_translate_command(commands)
    add_data_command(commands)
    add_demo_command(commands)
    return parser


# ---- train ------------------------------------------------------------------------------------


def add_train_command(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        help="train a CycleGAN (or resume one)",
        description="Train a CycleGAN on ROOT/trainA and ROOT/trainB. With --resume, continue a "
        "run from its checkpoint; options given with --resume override the saved ones (giving "
        "--lr, --epochs or --epochs-decay starts a new schedule there: --epochs more epochs at "
        "--lr, then --epochs-decay decaying to 0).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    train.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_OR_CHECKPOINT",
        help="continue a run: its folder (runs/NAME) or a checkpoint file",
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    for option in options():
        if option.section not in groups:
            groups[option.section] = train.add_argument_group(f"{option.section} options")
        add_option(groups[option.section], option)
    train.set_defaults(handler=run_train)


def add_option(group: argparse._ArgumentGroup, option: Option) -> None:
    """One config field as a flag; the default shown is the config's, nothing is pre-filled."""
    shown = "" if option.default == "" else f" (default: {option.default})"
    help_text = option.help + shown
    if option.type is bool:
        group.add_argument(
            option.flag,
            action=argparse.BooleanOptionalAction,
            default=argparse.SUPPRESS,
            help=help_text,
        )
    elif option.choices is not None:
        group.add_argument(
            option.flag, choices=option.choices, default=argparse.SUPPRESS, help=help_text
        )
    else:
        kind = option.type if option.type in (int, float, str) else _scalar(option.type)
        group.add_argument(
            option.flag,
            type=kind,
            default=argparse.SUPPRESS,
            metavar=METAVARS.get(option.name, option.name.upper()),
            help=help_text,
        )


def _scalar(annotation: Any) -> type:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if args else str


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    names = {option.name for option in options()}
    return {key: value for key, value in vars(args).items() if key in names}


def run_train(args: argparse.Namespace) -> int:
    from cyclegan.training.checkpoint import find_checkpoint, load_checkpoint
    from cyclegan.training.loop import train

    given = given_options(args)
    resume = getattr(args, "resume", None)
    if resume is not None:
        checkpoint_path = find_checkpoint(resume)
        saved: Config = load_checkpoint(checkpoint_path)["config"]
        run_folder = checkpoint_path.parent.parent
        if checkpoint_path.parent.name == "checkpoints" and not {"name", "runs_dir"} & set(given):
            # continue in the folder the checkpoint lives in, even if the run was moved
            saved = saved.with_overrides(
                {"runs_dir": str(run_folder.parent), "name": run_folder.name}
            )
        config = saved.with_overrides(given)
        previous = saved.flat()
        for name, value in given.items():
            if previous[name] != value:
                print(f"overriding {name}: {previous[name]!r} -> {value!r}", file=sys.stderr)
        train(config, resume=checkpoint_path, overridden=tuple(given))
        return 0
    if not given.get("data"):
        raise UserError(
            "give the dataset folder with --data ROOT (holding trainA and trainB), "
            "or continue a run with --resume runs/NAME"
        )
    config = Config().with_overrides(given)
    train(config)
    return 0


# ---- translate --------------------------------------------------------------------------------


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


# ---- data -------------------------------------------------------------------------------------


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


# ---- demo -------------------------------------------------------------------------------------


def add_demo_command(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="make the built-in dataset, train a small CycleGAN on it, translate, score",
        description="A few minutes on a CPU: synthetic data -> training -> translation of the "
        "test images -> PSNR against the ground truth.",
    )
    demo.add_argument(
        "--root",
        type=Path,
        default=Path("datasets/synth"),
        help="dataset folder (default: datasets/synth)",
    )
    demo.add_argument(
        "--runs-dir", type=Path, default=Path("runs"), help="folder for the run (default: runs)"
    )
    demo.add_argument(
        "--minutes", type=float, default=4.0, help="training time budget (default: 4)"
    )
    demo.set_defaults(handler=run_demo_command)


def run_demo_command(args: argparse.Namespace) -> int:
    from cyclegan.demo import run_demo

    run_demo(args.root, args.runs_dir, args.minutes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
