"""`cyclegan distill`: train small student generators to reproduce a trained run's.

The student run is an ordinary run folder (checkpoints, exact resume, sample grids of input /
teacher / student, losses.csv), whose generators translate, export, evaluate and serve like
any other. Its training options are generated from the config dataclasses, as `cyclegan
train`'s are; the architecture options the student takes from its teacher are not offered.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from cyclegan.commands.common import UserError, add_option
from cyclegan.config import (
    FAMILY_SETTINGS,
    ONLY_ADVERSARIAL,
    ONLY_CUT,
    ONLY_CYCLEGAN,
    ONLY_DISTRIBUTED,
    Config,
    Option,
    options,
)

# options a distillation takes from its teacher, or sets itself: not offered as flags
NOT_OFFERED = {
    "model", "preset", "generator", "upsample", "residual", "skip", "colour", "sharpness",
    "detail", "g_norm", "channels_a", "channels_b", "d_layers", "teacher", "direction", "block",
}  # fmt: skip
# narrow is the default: on a CPU its int8 export is the fastest translation of all (ONNX
# Runtime's int8 kernels speed up standard convolutions, not depthwise ones); mobile has 2.7x
# fewer multiply-adds and is faster in fp32 (benchmarks/RESULTS.md, "Distillation students")
STUDENTS = {
    "narrow": "the teacher's layout at a quarter of its width (at least 8 channels), with "
    "standard residual blocks (the fastest int8 export on a CPU)",
    "mobile": "the same with depthwise-separable residual blocks (2.7x fewer multiply-adds, "
    "faster in fp32, no faster in int8)",
}
DEFAULT_STUDENT = "narrow"
# the teacher run's data options a distillation keeps unless given
DATA_OPTIONS = ("data", "load_size", "crop_size", "resize_mode", "flip")
MIN_STUDENT_WIDTH = 8
METAVARS = {"data": "ROOT", "runs_dir": "DIR", "images": "DIR"}


def offered(option: Option) -> bool:
    """The training options that mean something to a distillation (which runs in one
    process: its students are small)."""
    not_here = (ONLY_CYCLEGAN, ONLY_CUT, ONLY_ADVERSARIAL, ONLY_DISTRIBUTED)
    return option.name not in NOT_OFFERED and option.applies not in not_here


def as_distilled(option: Option) -> Option:
    """The option with the default a distillation gives it, as its help shows it."""
    if option.name in FAMILY_SETTINGS["distill"]:
        return replace(option, default=FAMILY_SETTINGS["distill"][option.name])
    if option.name == "ngf":
        return replace(option, default=f"a quarter of the teacher's, at least {MIN_STUDENT_WIDTH}")
    if option.name in DATA_OPTIONS:
        return replace(option, default="the teacher run's")
    if option.name == "name":
        return replace(
            option,
            help="run name, a plain folder name: the run folder is RUNS_DIR/NAME",
            default="TEACHER-student, TEACHER the teacher run's or file's name",
        )
    if option.name == "runs_dir":
        return replace(option, default="beside the teacher run (with --run), else runs")
    return option


def add_distill_command(commands: Any) -> None:
    distill = commands.add_parser(
        "distill",
        help="train a small, fast generator to reproduce a trained one",
        description=(
            "Distil a trained run's generators into small students: each student learns to "
            "give its teacher's translation of the teacher's training images (L1 and SSIM to "
            "the teacher's output, and its features through learned 1x1 convolutions). The "
            "student run (default RUNS_DIR/TEACHER-student beside the teacher) translates, "
            "exports, evaluates and serves like any run; `cyclegan evaluate` on it compares "
            "student and teacher (size, speed, agreement)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    source = distill.add_argument_group("teacher")
    source.add_argument(
        "--run", type=Path, metavar="RUN", help="the teacher: a run folder or a checkpoint file"
    )
    source.add_argument(
        "--weights",
        type=Path,
        metavar="FILE",
        help="the teacher: a generator file (.safetensors, e.g. from `cyclegan convert` or "
        "`cyclegan pretrained`, or a reference .pth); needs --data",
    )
    source.add_argument(
        "--resume",
        type=Path,
        metavar="STUDENT_RUN",
        help="continue a distillation: its run folder or a checkpoint file",
    )
    source.add_argument(
        "--direction",
        choices=("both", "AtoB", "BtoA"),
        help="what to distil, a student for each direction (default: every direction the "
        "teacher has)",
    )
    source.add_argument(
        "--student",
        choices=sorted(STUDENTS),
        help="the student's make: "
        + "; ".join(f"{name}: {about}" for name, about in STUDENTS.items())
        + f" (default: {DEFAULT_STUDENT}; --ngf sets another width)",
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    for option in options():
        if not offered(option):
            continue
        if option.section not in groups:
            groups[option.section] = distill.add_argument_group(f"{option.section} options")
        add_option(groups[option.section], as_distilled(option), METAVARS.get(option.name))
    distill.set_defaults(handler=run_distill)


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    names = {option.name for option in options() if offered(option)}
    return {key: value for key, value in vars(args).items() if key in names}


def run_distill(args: argparse.Namespace) -> int:
    from cyclegan.commands.train import resumed_config
    from cyclegan.training.interrupt import TrainingInterrupted
    from cyclegan.training.loop import train

    given = given_options(args)
    run, weights, resume = (getattr(args, name, None) for name in ("run", "weights", "resume"))
    try:
        if resume is not None:
            if run is not None or weights is not None:
                raise UserError(
                    "--resume continues a distillation with the teacher it started with; "
                    "leave --run and --weights out"
                )
            config, checkpoint = resumed_config(resume, given)
            if config.model.model != "distill":
                raise UserError(
                    f"{resume} is not a distillation (it is a --model {config.model.model} "
                    "run); continue it with `cyclegan train --resume`"
                )
            run_dir = train(config, resume=checkpoint, given=tuple(given))
        else:
            config = student_config(args, given)
            run_dir = train(config, given=tuple(given))
        report_student(run_dir)
        return 0
    except TrainingInterrupted as stopped:
        return stopped.exit_code


REPORT_IMAGES = 50  # held-out test images per domain in the closing report


def report_student(run_dir: Path) -> None:
    """The closing report: student against teacher (size, speed at 512 px, agreement on the
    held-out test images), printed and written to RUN/distillation.json."""
    import json

    from cyclegan.checkpoint import load_checkpoint
    from cyclegan.commands.evaluate import compare_with_teacher
    from cyclegan.evaluation.suite import load_test_set

    path = run_dir / "checkpoints" / "latest.pt"
    checkpoint = load_checkpoint(path)
    config = checkpoint["config"]
    root = Path(config.data.data)
    if not all((root / folder).is_dir() for folder in ("testA", "testB")):
        print(f"no {root}/testA and testB to compare student and teacher on; see "
              f"cyclegan evaluate --run {run_dir} --data ROOT")  # fmt: skip
        return
    model = config.model
    test_set = load_test_set(root, config.data.crop_size, model.channels_a, model.channels_b,
                             REPORT_IMAGES)  # fmt: skip
    results = compare_with_teacher(checkpoint, path, root, test_set, latency=True)
    (run_dir / "distillation.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {run_dir / 'distillation.json'}; more with: cyclegan evaluate --run {run_dir}")


def student_config(args: argparse.Namespace, given: dict[str, Any]) -> Config:
    """A new distillation's config: the teacher's architecture and data, the student's
    width and blocks, the family's schedule, then what the user gave."""
    from cyclegan.checkpoint import find_checkpoint, load_checkpoint
    from cyclegan.training.teachers import (
        INHERITED,
        read_teacher,
        teacher_directions,
        teacher_record,
    )

    run, weights = getattr(args, "run", None), getattr(args, "weights", None)
    if (run is None) == (weights is None):
        raise UserError(
            "give the teacher: --run RUN (a run folder or checkpoint) or --weights FILE (a "
            "generator file), one of them; or continue a distillation with --resume"
        )
    source: Path = run if run is not None else weights
    if not source.exists():
        raise UserError(f"{source} does not exist: give a run folder, a checkpoint or a file")
    saved: Config | None = None  # a run's config, read once: its directions and its data
    if run is not None:
        saved = load_checkpoint(find_checkpoint(run))["config"]
    has = saved.model.directions if saved is not None else teacher_directions(source)
    direction = getattr(args, "direction", None) or ("both" if len(has) == 2 else has[0])
    wanted = ("AtoB", "BtoA") if direction == "both" else (direction,)
    missing = [d for d in wanted if d not in has]
    if missing:
        raise UserError(
            f"{source} has no {missing[0]} generator to distil (it has {', '.join(has)}); "
            f"give --direction {has[0]}"
        )
    _, teacher = read_teacher(source, wanted[0])
    student = getattr(args, "student", None) or DEFAULT_STUDENT
    width = given.get("ngf", max(teacher.ngf // 4, MIN_STUDENT_WIDTH))
    if width > teacher.ngf:
        raise UserError(
            f"--ngf {width} is wider than the teacher's {teacher.ngf}: a student must be "
            f"smaller; give --ngf {teacher.ngf // 4 or 1} or so"
        )
    trained_on: dict[str, Any] = {}
    if run is not None and saved is not None:
        trained_on = {name: getattr(saved.data, name) for name in DATA_OPTIONS}
        run_dir = run if run.is_dir() else run.parent.parent
        place = {"runs_dir": str(run_dir.parent), "name": f"{run_dir.name}-student"}
    else:
        if "data" not in given:
            raise UserError(
                f"{weights} does not say which images its generator learned from: give the "
                "dataset with --data ROOT (holding trainA and trainB)"
            )
        place = {"name": f"{weights.stem}-student"}
    overrides = {
        **{name: getattr(teacher, name) for name in INHERITED},
        **trained_on,
        **place,
        **FAMILY_SETTINGS["distill"],
        "model": "distill",
        "direction": direction,
        "teacher": str(source),
        "ngf": width,
        "block": "mobile" if student == "mobile" else "standard",
        **given,
    }
    config = Config().with_overrides(overrides)
    return replace(config, distill=replace(config.distill, teacher_model=teacher_record(teacher)))
