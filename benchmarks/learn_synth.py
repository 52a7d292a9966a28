"""Proof that the tool learns: train on the built-in synthetic dataset on the CPU for a fixed
time budget and score the A->B translations of the test images against their ground truth.

    python benchmarks/learn_synth.py                      # the recorded 10-minute figure
    python benchmarks/learn_synth.py --minutes 3 --set ngf=16 --set ndf=16 --threads 2

The dataset (`make_synthetic_dataset`) maps A to B by a fixed channel rotation plus inversion,
and `testA_truth` holds the true B image of every test A image, so a translation can be scored
exactly (PSNR and SSIM, `cyclegan.evaluation.suite.score_against_truth`). The baseline is the
PSNR of the untranslated test images against the same truth. Inverted colours make it a low
bar (about 5.4 dB), so the report also gives what a plain mid-gray image scores (about
10.2 dB): only a result well above that shows that the colour map itself was learned.

Training runs once, through `cyclegan.training.loop.train`, with a numbered checkpoint after
every epoch (`save_every=1`) and a `should_stop` callback that stops only at the deadline. After
training, every `checkpoints/epoch_NNN.pt` is translated and scored for the learning curve, and
the run's exported generator (its last state, also after a deadline stop) gives the final
figure. The default schedule is sized so that the linear lr decay completes within 10 minutes
on two CPU cores; with another `--minutes` it is scaled in proportion (`--set epochs=...` and
`--set epochs_decay=...` replace it). The report says whether the deadline cut the schedule.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from cpu_load import busy_cpu_seconds, own_cpu_seconds
from PIL import Image

from cyclegan.checkpoint import load_checkpoint
from cyclegan.config import Config, ConfigError, parse_assignment
from cyclegan.data.images import list_images
from cyclegan.data.synthetic import TRUTH_DIR, make_synthetic_dataset
from cyclegan.evaluation.suite import score_against_truth
from cyclegan.inference.files import plan_inputs, translate_files
from cyclegan.inference.translator import Translator
from cyclegan.training.loop import train

DEFAULT_MINUTES = 10.0
DEFAULT_SIZE = 64
RUN_NAME = "learn_synth"

# The best setting found for 10 minutes on two CPU cores (see benchmarks/RESULTS.md): a narrow
# generator (ngf=8) trains fastest and reaches the same ~17 dB plateau as wider ones; the identity
# loss must be off (the A->B map inverts colours, so "B->B unchanged" fights it: -7 dB). The
# schedule (24 epochs of 200 steps) takes 5.5-6 minutes on an idle machine and still completes
# at about 8.5 it/s, i.e. with other processes busy on the second core.
# epochs/epochs_decay are for DEFAULT_MINUTES and are scaled for another --minutes.
DEFAULT_OPTIONS: dict[str, Any] = {
    "generator": "resnet_6blocks",
    "ngf": 8,
    "ndf": 8,
    "batch_size": 1,
    "workers": 1,
    "lambda_identity": 0.0,
    "pool_size": 50,
    "epochs": 8,
    "epochs_decay": 16,
    "device": "cpu",
    "log_every": 25,
    "num_samples": 4,
}
# One torch thread: at this model size a second thread gains nothing on an idle 2-core machine
# (14.3 vs 13.3 it/s), and while any other process is busy the two threads' synchronisation
# collapses throughput about tenfold; the data loader worker uses the second core.
DEFAULT_THREADS = 1
SCHEDULE_KEYS = ("epochs", "epochs_decay")


@dataclass
class Load:
    own: float  # CPU cores this run kept busy on average (spin-waiting threads count)
    other: float | None  # cores' worth used by other processes meanwhile (None: unknown)


@dataclass
class CurvePoint:
    epoch: int
    step: int
    seconds: float  # training time elapsed when this state was reached
    psnr: float
    ssim: float
    note: str = ""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--minutes", type=float, default=DEFAULT_MINUTES, help="training time budget (default 10)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="work folder for dataset and run (default: temp)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="training seed (default 0; the data is fixed)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"torch.set_num_threads (default {DEFAULT_THREADS})",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=DEFAULT_SIZE,
        help=f"synthetic image size in pixels; sets load_size and crop_size (default "
        f"{DEFAULT_SIZE})",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config option (flat name, e.g. ngf=16); repeatable. data, runs_dir, "
        "name, seed and save_every are this script's",
    )
    args = parser.parse_args(argv)
    if args.minutes <= 0:
        parser.error("--minutes must be positive")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    try:
        args.overrides = dict(parse_assignment(item) for item in args.overrides)
    except ConfigError as error:
        parser.error(str(error))
    return args


def build_config(
    args: argparse.Namespace, data: Path, runs_dir: Path
) -> tuple[Config, dict[str, Any]]:
    """The run's config and the options this script chose (defaults, scaling, overrides)."""
    chosen = dict(DEFAULT_OPTIONS)
    chosen["load_size"] = chosen["crop_size"] = args.size
    for key in SCHEDULE_KEYS:  # the default schedule fills DEFAULT_MINUTES: scale it
        chosen[key] = max(1, round(DEFAULT_OPTIONS[key] * args.minutes / DEFAULT_MINUTES))
    chosen.update(args.overrides)
    chosen.update(seed=args.seed, save_every=1)  # --seed; a checkpoint per epoch for the curve
    config = Config().with_overrides(
        {**chosen, "data": str(data), "runs_dir": str(runs_dir), "name": RUN_NAME}
    )
    return config, chosen


def gray_reference(data: Path, work: Path) -> float:
    """PSNR of a mid-gray image in place of every translation: what 'output nothing' scores."""
    folder = work / "gray_reference"
    folder.mkdir(exist_ok=True)
    for path in list_images(data / "testA"):
        with Image.open(path) as image:
            Image.new("RGB", image.size, (128, 128, 128)).save(folder / path.name)
    return score_against_truth(folder, data / TRUTH_DIR)[0]


def score(translator: Translator, data: Path, out: Path) -> tuple[float, float]:
    """Translate testA into `out`; its mean PSNR and SSIM against the ground truth."""
    shutil.rmtree(out, ignore_errors=True)
    report = translate_files(plan_inputs([data / "testA"], "AtoB", out), {"AtoB": translator})
    if report.failed:
        raise RuntimeError(f"could not translate {report.failed}")
    return score_against_truth(out, data / TRUTH_DIR)


def learning_curve(run_dir: Path, data: Path, step_times: list[float]) -> list[CurvePoint]:
    """Score every numbered checkpoint of the run, in epoch order."""
    points = []
    for path in sorted((run_dir / "checkpoints").glob("epoch_*.pt")):
        step = int(load_checkpoint(path)["step"])
        translator = Translator.from_file(path, "AtoB", "cpu")
        value, similarity = score(translator, data, run_dir / "eval" / path.stem)
        epoch = int(path.stem.removeprefix("epoch_"))
        seconds = step_times[step - 1] if step else 0.0
        points.append(CurvePoint(epoch, step, seconds, value, similarity))
    return points


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    work = args.out or Path(tempfile.mkdtemp(prefix="learn_synth."))
    data = make_synthetic_dataset(work / f"synth_{args.size}", size=args.size)
    runs_dir = work / "runs"
    try:
        config, chosen = build_config(args, data, runs_dir)
    except (ConfigError, TypeError) as error:
        raise SystemExit(f"learn_synth.py: error: {error}") from error
    run_dir = runs_dir / RUN_NAME
    shutil.rmtree(run_dir, ignore_errors=True)  # always a fresh run

    # ---- train until the schedule ends or the deadline passes
    step_times: list[float] = []
    busy_before, own_before = busy_cpu_seconds(), own_cpu_seconds()
    started = time.monotonic()
    deadline = started + args.minutes * 60

    def should_stop(step: int) -> bool:
        now = time.monotonic()
        step_times.append(now - started)
        return now > deadline

    train(config, should_stop=should_stop)
    wall = time.monotonic() - started
    busy_after, own = busy_cpu_seconds(), own_cpu_seconds() - own_before
    # cores' worth of CPU that other processes used while this one trained
    other = (
        None
        if busy_before is None or busy_after is None
        else max(0.0, busy_after - busy_before - own) / wall
    )
    steps = len(step_times)
    latest = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    epochs_done, batch = int(latest["epoch"]), int(latest["batch"])
    completed = epochs_done >= config.total_epochs

    # ---- score
    eval_started = time.monotonic()
    baseline, baseline_ssim = score_against_truth(data / "testA", data / TRUTH_DIR)
    gray = gray_reference(data, work)
    curve = learning_curve(run_dir, data, step_times)
    if not completed:  # the deadline stopped a partial epoch: add the final state
        final_translator = Translator.from_run(run_dir, "AtoB", "cpu")
        final, final_ssim = score(final_translator, data, run_dir / "eval" / "final")
        curve.append(
            CurvePoint(
                epochs_done,
                steps,
                wall,
                final,
                final_ssim,
                f"deadline, {batch} steps into epoch {epochs_done + 1}",
            )
        )
    final = curve[-1].psnr if curve else float("nan")
    eval_seconds = time.monotonic() - eval_started

    load = Load(own / wall, other)
    report(
        args,
        config,
        chosen,
        work,
        run_dir,
        curve,
        (baseline, gray, final),
        wall,
        steps,
        load,
        completed,
    )
    print(f"(scoring the {len(curve)} states took {eval_seconds:.0f}s, not counted above)")
    summary = {
        "final_psnr": final,
        "baseline_psnr": baseline,
        "final_ssim": curve[-1].ssim if curve else float("nan"),
        "baseline_ssim": baseline_ssim,
        "gray_psnr": gray,
        "gain": final - baseline,
        "train_seconds": wall,
        "steps": steps,
        "it_per_s": steps / wall,
        "own_cores": load.own,
        "other_cores": load.other,
        "schedule_completed": completed,
        "epochs_done": epochs_done,
        "total_epochs": config.total_epochs,
        "minutes": args.minutes,
        "threads": args.threads,
        "size": args.size,
        "torch": torch.__version__,
        "options": chosen,
        "curve": [vars(point) for point in curve],
    }
    (work / "learn_synth.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def report(
    args: argparse.Namespace,
    config: Config,
    chosen: dict[str, Any],
    work: Path,
    run_dir: Path,
    curve: list[CurvePoint],
    scores: tuple[float, float, float],
    wall: float,
    steps: int,
    load: Load,
    completed: bool,
) -> None:
    baseline, gray, final = scores
    print()
    print("learning curve (A->B PSNR of the 20 test images against their true B):")
    print(f"  {'epoch':>5} {'step':>6} {'train s':>8} {'PSNR dB':>8} {'gain dB':>8} {'SSIM':>6}")
    for point in curve:
        note = f"  ({point.note})" if point.note else ""
        print(
            f"  {point.epoch:>5} {point.step:>6} {point.seconds:>8.0f} {point.psnr:>8.2f} "
            f"{point.psnr - baseline:>+8.2f} {point.ssim:>6.3f}{note}"
        )
    done = curve[-1].epoch if curve else 0
    schedule = (
        f"completed all {config.total_epochs} epochs"
        if completed
        else f"cut by the deadline after {done} of {config.total_epochs} epochs"
    )
    other = "unknown" if load.other is None else f"{load.other:.2f} cores"
    options_text = " ".join(f"{key}={value}" for key, value in sorted(chosen.items()))
    rows = [
        ("translated A->B PSNR", f"{final:.2f} dB"),
        ("untranslated baseline PSNR", f"{baseline:.2f} dB"),
        ("gain over the baseline", f"{final - baseline:+.2f} dB"),
        ("(mid-gray image scores)", f"{gray:.2f} dB, {gray - baseline:+.2f} dB over the baseline"),
        ("training wall time", f"{wall:.1f} s (budget {args.minutes * 60:.0f} s)"),
        ("steps", f"{steps} ({steps / wall:.2f} it/s, epoch-end saving included)"),
        ("schedule", f"{schedule} ({config.optim.epochs} + {config.optim.epochs_decay} decay)"),
        ("CPU use", f"this run {load.own:.2f} cores, other processes {other}"),
        ("threads / image size", f"{args.threads} / {args.size}px"),
        ("torch", torch.__version__),
        ("options", options_text),
        ("work folder", str(work)),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    print("result:")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


if __name__ == "__main__":
    raise SystemExit(main())
