"""`cyclegan train`: options generated from the config dataclasses, resume with overrides."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cyclegan.commands.common import UserError, add_option
from cyclegan.config import Config, Role, options

METAVARS = {"data": "ROOT", "runs_dir": "DIR"}


def add_train_command(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        help="train a CycleGAN (or resume one)",
        description=description(),
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
        add_option(groups[option.section], option, METAVARS.get(option.name))
    train.set_defaults(handler=run_train)


def description() -> str:
    """The command's description; what --resume may change comes from the options' roles."""
    schedule = [spec.flag for spec in options() if spec.role is Role.SCHEDULE]
    return (
        "Train a CycleGAN on ROOT/trainA and ROOT/trainB. With --resume, continue a run from "
        "its checkpoint; options given with --resume replace the saved ones from the next "
        "step, except those marked fixed (architecture, and what is used when a run starts), "
        f"which a resumed run refuses. Giving {', '.join(schedule[:-1])} or {schedule[-1]} "
        "starts a new schedule there: --epochs more epochs at --lr, then --epochs-decay "
        "decaying to 0. Under torchrun (torchrun --nproc-per-node N -m cyclegan train ...) it "
        "trains on N processes; --batch-size is per process."
    )


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    names = {option.name for option in options()}
    return {key: value for key, value in vars(args).items() if key in names}


def run_train(args: argparse.Namespace) -> int:
    from cyclegan.training.distributed import ReportedElsewhere
    from cyclegan.training.interrupt import TrainingInterrupted
    from cyclegan.training.loop import train

    given = given_options(args)
    resume = getattr(args, "resume", None)
    try:
        if resume is not None:
            config, checkpoint_path = resumed_config(resume, given)
            train(config, resume=checkpoint_path, given=tuple(given))
            return 0
        if not given.get("data"):
            raise UserError(
                "give the dataset folder with --data ROOT (holding trainA and trainB), "
                "or continue a run with --resume runs/NAME"
            )
        train(Config().with_overrides(given), given=tuple(given))
        return 0
    except TrainingInterrupted as stopped:  # stopped cleanly, checkpoint saved
        return stopped.exit_code
    except ReportedElsewhere as stopped:  # under torchrun: another process says why
        return stopped.exit_code


def resumed_config(resume: Path, given: dict[str, Any]) -> tuple[Config, Path]:
    """The saved config with the given options put in, and the checkpoint file."""
    from cyclegan.checkpoint import find_checkpoint, load_checkpoint
    from cyclegan.training.run_folder import run_dir_of_checkpoint

    checkpoint_path = find_checkpoint(resume)
    saved: Config = load_checkpoint(checkpoint_path)["config"]
    run_folder = run_dir_of_checkpoint(checkpoint_path)
    if run_folder is not None and not {"name", "runs_dir"} & set(given):
        # continue in the folder the checkpoint lives in, even if the run was moved
        saved = saved.with_overrides({"runs_dir": str(run_folder.parent), "name": run_folder.name})
    # a combination that cannot work is refused here; train() refuses what a resumed run cannot
    # change (a preset among them: it is not expanded, since it only picks a new run's options)
    return saved.with_overrides(given, expand_preset=False), checkpoint_path
