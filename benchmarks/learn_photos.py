"""Does it learn on real photographs? Train A->B on crops of real photos, where B is other crops
passed through a known map, within a time budget, and score every test translation against its
truth.

    python benchmarks/learn_photos.py                                # current-small, 10 min/map
    python benchmarks/learn_photos.py --variant paper --minutes 2 --seeds 1
    python benchmarks/learn_photos.py --maps texture --set ngf=16 --set upsample=resize

The photos, maps and crops are in `photo_maps.py`: skimage.data's bundled colour photos and the
seed's photos, cut into 64 (or 128) px crops, test crops from grid cells that no training crop
touches. Maps: `colour` (a global colour grade), `hue` (hue rotated in HSV), `texture` (a
strong unsharp mask), `mix` (a desaturating channel mix) and `cartoon` (a local stylisation:
edge-preserving smoothing and dark outlines). For each map and training seed, one run trains through
`cyclegan.training.loop.train` and stops at every sixth of the budget (`--curve-points`) to
translate the test crops with the A->B generator of its latest checkpoint, then resumes: the
learning curve against training seconds and steps; the last point is the result. Training
seconds leave out the scoring and the checkpoint written at each stop, but count each resume's
start-up (a second or two).

Scores (mean over the test crops, outputs rounded to 8 bits as a saved file would be): PSNR and
SSIM against the truth, next to what the untranslated input and a flat mid-grey image score:
a translation must beat the input to have learned anything. The high-frequency ratio is the
mean |Laplacian| (4-neighbour, per channel) of the outputs over that of the truths: 1 keeps the
truth's detail, below 1 is blurred, above about 1.2 adds detail the truth lacks, which is what
the checkerboard of transposed convolutions and GAN noise look like; the input's ratio is
printed for reference (the texture map sharpens, so there the input's is below 1).

One torch thread by default, and one data loader worker: two cores in all. Two torch threads
collapse as soon as anything else runs on a 2-core machine (30 steps of current-small took 99 s
with 2 threads next to other jobs, 4.6 s with 1; OMP_WAIT_POLICY=PASSIVE gave 6.5 s), as
RESULTS.md also found for learn_synth.py.

Settings: a named variant (`--variant`, the VARIANTS below), then `--preset NAME` (the
config's presets: paper, fast), then `--set KEY=VALUE` options in order. A strip per map
(rows: input, ours for each seed, truth) and a JSON of every figure go into `--out`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
import time
import typing
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from cpu_load import busy_cpu_seconds, own_cpu_seconds
from photo_maps import MAPS, TRUTH_DIR, Photo, load_photos, plan_crops, write_dataset
from PIL import Image, ImageDraw

from cyclegan.checkpoint import AVERAGED_KEY, generator_from_checkpoint, load_checkpoint
from cyclegan.config import PRESETS, Config, ConfigError, parse_assignment
from cyclegan.evaluation.metrics import psnr, ssim
from cyclegan.training.loop import train

DEFAULT_MINUTES = 10.0
DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "learn_photos"
SCHEDULE_KEYS = ("epochs", "epochs_decay")
# the script's own: the dataset, the run folder, the seed, and only latest.pt (paper-sized
# checkpoints are ~250 MB, so no numbered ones)
OWN_KEYS = ("data", "runs_dir", "name", "seed", "save_every")


@dataclass(frozen=True)
class Variant:
    options: dict[str, Any]
    about: str
    scale_schedule: bool = False  # epochs/epochs_decay are for DEFAULT_MINUTES: scale them


VARIANTS: dict[str, Variant] = {
    "paper": Variant(
        {"generator": "resnet_6blocks"},
        "the paper's settings for images of 128 px or less (6 residual blocks, ngf=ndf=64, "
        "identity 0.5, lr 2e-4, batch 1, pool 50, 100+100 epochs: the budget cuts it at the "
        "constant lr)",
    ),
    "current-small": Variant(
        {
            "generator": "resnet_6blocks",
            "ngf": 8,
            "ndf": 8,
            "lambda_identity": 0.0,
            "epochs": 8,
            "epochs_decay": 16,
        },
        "the small setting the project recommended for a CPU (learn_synth.py's): ngf=ndf=8, no "
        "identity loss, 8+16 epochs of 200 steps in 10 minutes, scaled to the budget",
        scale_schedule=True,
    ),
}
DEFAULT_VARIANT = "current-small"

# every run: the crop is the image (no resize jitter), one loader worker (the other core),
# on the CPU, sample grids of 4
RUN_OPTIONS: dict[str, Any] = {
    "workers": 1,
    "device": "cpu",
    "log_every": 25,
    "num_samples": 4,
}


@dataclass
class Score:
    psnr: float
    ssim: float
    hf_ratio: float  # high-frequency energy of the images over the truth's


@dataclass
class CurvePoint:
    seconds: float  # training time when the state was reached (evaluation not counted)
    step: int
    epoch: int  # whole epochs done
    score: Score
    raw: Score | None = None  # the raw weights' of a run with --ema (score: the averaged ones)


@dataclass
class SeedRun:
    seed: int
    final: Score
    steps: int
    train_seconds: float
    schedule_completed: bool
    other_cores: float | None  # CPU cores' worth other processes used meanwhile
    curve: list[CurvePoint] = field(default_factory=list)
    final_raw: Score | None = None  # with --ema: the raw weights' (final: the averaged ones)


# ---- arguments and config ----------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="variants: "
        + "; ".join(f"{name}: {variant.about}" for name, variant in VARIANTS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--variant",
        choices=sorted(VARIANTS),
        default=None,
        help=f"named option set (default {DEFAULT_VARIANT}; none when --preset is given)",
    )
    parser.add_argument(
        "--preset",
        default=None,
        choices=sorted(PRESETS),
        help="a preset of cyclegan's config (cyclegan train --preset)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config option by its flat name, e.g. ngf=16; repeatable, applied last. "
        f"{', '.join(OWN_KEYS)} are this script's",
    )
    parser.add_argument(
        "--minutes", type=float, default=DEFAULT_MINUTES, help="training budget per map and seed"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=0,
        help="a budget in training steps instead of minutes (for a loaded machine: the steps the "
        "minutes give on an idle one); --minutes then only bounds the wall time",
    )
    parser.add_argument(
        "--maps", nargs="+", choices=list(MAPS), default=list(MAPS), help="maps to learn"
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2], help="training seeds")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: see the docstring)"
    )
    parser.add_argument("--size", type=int, default=64, help="crop size in pixels (64 or 128)")
    parser.add_argument("--train-crops", type=int, default=200, help="crops per domain")
    parser.add_argument("--test-crops", type=int, default=48, help="test crops at most")
    parser.add_argument("--curve-points", type=int, default=6, help="evaluations per run")
    parser.add_argument("--strip-crops", type=int, default=8, help="test crops in each strip")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="strips and JSON go to OUT/LABEL_SIZEpx"
    )
    parser.add_argument(
        "--label", default=None, help="name of the result folder (default: variant or preset)"
    )
    parser.add_argument(
        "--work", type=Path, default=None, help="keep datasets and runs here (default: temp)"
    )
    args = parser.parse_args(argv)
    positive = ("minutes", "threads", "train_crops", "test_crops", "curve_points", "strip_crops")
    for name in positive:
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.steps < 0:
        parser.error("--steps must be 0 (use --minutes) or more")
    if args.size < 16 or args.size % 4:
        parser.error("--size must be a multiple of 4 and at least 16 (64 or 128 are measured)")
    if args.variant is None and args.preset is None:
        args.variant = DEFAULT_VARIANT
    try:
        args.overrides = dict(parse_assignment(item) for item in args.overrides)
    except ConfigError as error:
        parser.error(str(error))
    own = sorted(set(args.overrides) & set(OWN_KEYS))
    if own:
        parser.error(f"--set {own[0]} is set by this script; leave it out")
    if args.label is None:
        args.label = (args.preset or args.variant) + ("-custom" if args.overrides else "")
    return args


def chosen_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options this benchmark sets, in the order they apply: run, variant, preset, --set."""
    chosen = {**RUN_OPTIONS, "load_size": args.size, "crop_size": args.size}
    if args.variant is not None:
        variant = VARIANTS[args.variant]
        chosen.update(variant.options)
        if variant.scale_schedule:
            for key in SCHEDULE_KEYS:
                chosen[key] = max(1, round(variant.options[key] * args.minutes / DEFAULT_MINUTES))
    if args.preset is not None:
        chosen["preset"] = args.preset
    chosen.update(args.overrides)
    return chosen


def run_config(chosen: dict[str, Any], data: Path, runs_dir: Path, name: str, seed: int) -> Config:
    own = {"data": str(data), "runs_dir": str(runs_dir), "name": name, "seed": seed}
    return Config().with_overrides({**chosen, **own, "save_every": 10_000})


def reproduce_command(args: argparse.Namespace) -> str:
    words = ["python", "benchmarks/learn_photos.py"]
    if args.variant is not None:
        words += ["--variant", args.variant]
    if args.preset is not None:
        words += ["--preset", args.preset]
    for key, value in args.overrides.items():
        words += ["--set", f"{key}={value}"]
    words += ["--minutes", f"{args.minutes:g}", "--size", str(args.size), "--maps", *args.maps]
    words += ["--seeds", *map(str, args.seeds), "--threads", str(args.threads)]
    defaults = parse_args([])
    for name in ("steps", "train_crops", "test_crops", "curve_points", "strip_crops"):
        if getattr(args, name) != getattr(defaults, name):
            words += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return shlex.join(words)


# ---- scoring ---------------------------------------------------------------------------------


def load_folder(folder: Path) -> torch.Tensor:
    """The folder's PNGs, in name order, as (N, 3, H, W) in [-1, 1]."""
    arrays = [np.asarray(Image.open(path).convert("RGB")) for path in sorted(folder.glob("*.png"))]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def as_saved(images: torch.Tensor) -> torch.Tensor:
    """Round [-1, 1] images to the 8-bit values a saved PNG would hold."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1.0


def high_frequency_energy(images: torch.Tensor) -> float:
    """Mean |4-neighbour Laplacian| of (N, C, H, W) images, per channel, valid region."""
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    channels = images.shape[1]
    weight = kernel.to(images).expand(channels, 1, 3, 3)
    return F.conv2d(images, weight, groups=channels).abs().mean().item()


def score(images: torch.Tensor, truth: torch.Tensor) -> Score:
    """Mean per-image PSNR and SSIM against the truth, and the high-frequency ratio."""
    values = [psnr(image, target) for image, target in zip(images, truth)]
    similarities = [ssim(image, target) for image, target in zip(images, truth)]
    ratio = high_frequency_energy(images) / max(high_frequency_energy(truth), 1e-12)
    return Score(float(np.mean(values)), float(np.mean(similarities)), ratio)


@torch.no_grad()
def translate(generator: torch.nn.Module, images: torch.Tensor, batch: int = 16) -> torch.Tensor:
    return as_saved(torch.cat([generator(chunk) for chunk in images.split(batch)]))


# ---- training with a learning curve --------------------------------------------------------


class Deadline:
    """should_stop for train(): True once `trained` seconds plus this segment's reach `target`.

    Remembers the training time at which it stopped, so the checkpoint that train() then
    writes (a cost only the curve's stops add) is not counted as training time.
    """

    def __init__(self, trained: float, target: float) -> None:
        self.started = time.monotonic()
        self.trained, self.target = trained, target
        self.steps = 0  # with a step budget: stop at this step too
        self.stopped_at: float | None = None

    def __call__(self, step: int) -> bool:
        elapsed = self.trained + time.monotonic() - self.started
        if elapsed >= self.target or (self.steps and step >= self.steps):
            self.stopped_at = elapsed
        return self.stopped_at is not None

    def total(self) -> float:
        """Training seconds after this segment."""
        if self.stopped_at is not None:
            return self.stopped_at
        return self.trained + time.monotonic() - self.started


def log_epochs(line: str) -> None:
    if line.startswith("epoch "):  # not the stop / resume notes of every curve point
        print(f"    {line}", flush=True)


def train_with_curve(
    config: Config,
    budget: float,
    points: int,
    test_a: torch.Tensor,
    truth: torch.Tensor,
    steps: int = 0,
) -> SeedRun:
    """Train for `budget` seconds (or `steps` steps, if given, within the time), stopping
    `points` times to score the latest checkpoint."""
    latest = Path(config.run.runs_dir) / config.run.name / "checkpoints" / "latest.pt"
    curve: list[CurvePoint] = []
    trained, resume, completed = 0.0, None, False
    busy_before, own_before = busy_cpu_seconds(), own_cpu_seconds()
    for point in range(1, points + 1):
        stop = Deadline(trained, budget if steps else budget * point / points)
        if steps:
            stop.steps = round(steps * point / points)
        # a resumed run goes on with its saved config (with --minutes: its budget and schedule)
        resumed_config = config if resume is None else load_checkpoint(resume)["config"]
        train(resumed_config, resume=resume, should_stop=stop, log=log_epochs)
        trained = stop.total()
        checkpoint = load_checkpoint(latest)
        generator = generator_from_checkpoint(checkpoint, "AtoB", latest)
        value = score(translate(generator, test_a), truth)
        raw = None
        if AVERAGED_KEY in checkpoint:  # both, from the same run
            generator = generator_from_checkpoint(checkpoint, "AtoB", latest, averaged=False)
            raw = score(translate(generator, test_a), truth)
        curve.append(CurvePoint(trained, checkpoint["step"], checkpoint["epoch"], value, raw))
        print(
            f"    {trained:7.0f} s {checkpoint['step']:>6} steps: PSNR {value.psnr:6.2f} dB, "
            f"SSIM {value.ssim:.3f}, HF ratio {value.hf_ratio:.2f}"
            + (f" (raw weights: {raw.psnr:.2f} dB, SSIM {raw.ssim:.3f})" if raw else ""),
            flush=True,
        )
        completed = stop.stopped_at is None  # train() ended by itself: its schedule is done
        if completed:
            break
        resume = latest
    busy_after, own = busy_cpu_seconds(), own_cpu_seconds() - own_before
    other = (
        None
        if busy_before is None or busy_after is None
        else max(0.0, busy_after - busy_before - own) / trained
    )
    last = curve[-1]
    return SeedRun(
        config.run.seed, last.score, last.step, trained, completed, other, curve, last.raw
    )


# ---- strips and report -----------------------------------------------------------------------


def strip_image(rows: list[tuple[str, torch.Tensor]], count: int) -> Image.Image:
    """Rows of `count` images (the first, last and evenly between), each labelled on the left."""
    total, _, size, _ = rows[0][1].shape
    picks = np.linspace(0, total - 1, min(count, total)).round().astype(int)
    label_width, gap = 64, 2
    width = label_width + len(picks) * (size + gap)
    strip = Image.new("RGB", (width, len(rows) * (size + gap)), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for row, (label, images) in enumerate(rows):
        top = row * (size + gap)
        draw.text((4, top + size // 2 - 6), label, fill=(0, 0, 0))
        for column, index in enumerate(picks):
            pixels = ((images[index] + 1) * 127.5).round().clamp(0, 255).byte()
            tile = Image.fromarray(pixels.permute(1, 2, 0).numpy())
            strip.paste(tile, (label_width + column * (size + gap), top))
    return strip


def print_map_summary(name: str, input_score: Score, grey: Score, runs: list[SeedRun]) -> None:
    print(f"  {'':<22} {'PSNR dB':>8} {'SSIM':>6} {'HF ratio':>9} {'steps':>7} {'train s':>8}")
    print(
        f"  {'untranslated input':<22} {input_score.psnr:>8.2f} {input_score.ssim:>6.3f} "
        f"{input_score.hf_ratio:>9.2f}"
    )
    print(f"  {'flat grey':<22} {grey.psnr:>8.2f} {grey.ssim:>6.3f}")
    for run in runs:
        label = f"ours, seed {run.seed}" + ("" if run.schedule_completed else " (cut)")
        print(
            f"  {label:<22} {run.final.psnr:>8.2f} {run.final.ssim:>6.3f} "
            f"{run.final.hf_ratio:>9.2f} {run.steps:>7} {run.train_seconds:>8.0f}"
        )
        if run.final_raw is not None:
            raw = run.final_raw
            print(f"  {'  raw weights':<22} {raw.psnr:>8.2f} {raw.ssim:>6.3f} {raw.hf_ratio:>9.2f}")


def print_table(results: dict[str, Any]) -> None:
    """All maps in one markdown table, as RESULTS.md records them."""
    print("\n| map | input PSNR / SSIM | grey PSNR | seed | ours PSNR / SSIM | HF ratio | steps |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, entry in results["maps"].items():
        for run in entry["runs"]:
            final = run["final"]
            print(
                f"| {name} | {entry['input']['psnr']:.2f} / {entry['input']['ssim']:.3f} | "
                f"{entry['grey']['psnr']:.2f} | {run['seed']} | "
                f"{final['psnr']:.2f} / {final['ssim']:.3f} | {final['hf_ratio']:.2f} | "
                f"{run['steps']} |"
            )


# ---- main ------------------------------------------------------------------------------------


def fail(message: str) -> typing.NoReturn:
    """A user mistake: one line, exit code 2, as argparse does."""
    print(f"learn_photos.py: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def load_benchmark_photos() -> list[Photo]:
    try:
        return load_photos()
    except ImportError as error:
        fail(f"the photos need scikit-image ({error}): pip install -e '.[bench]'")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = chosen_options(args)
    try:  # a bad --set value or combination: one line, before anything is made
        run_config(chosen, Path("data"), Path("runs"), "check", args.seeds[0])
    except (ConfigError, TypeError, ValueError) as error:
        fail(str(error))
    torch.set_num_threads(args.threads)
    photos = load_benchmark_photos()
    plan = plan_crops(
        [photo.pixels.shape[:2] for photo in photos], args.size, args.train_crops, args.test_crops
    )
    command = reproduce_command(args)
    print(f"reproduce: {command}")
    print(
        f"{len(photos)} photos, {len(plan.train_a)} train crops per domain, {len(plan.test)} "
        f"test crops of {args.size} px; budget {args.minutes:g} min per map and seed"
        + (f", {args.steps} steps" if args.steps else "")
    )
    work = args.work or Path(tempfile.mkdtemp(prefix="learn_photos."))
    out = args.out / f"{args.label}_{args.size}px"
    results: dict[str, Any] = {
        "command": command,
        "label": args.label,
        "variant": args.variant,
        "preset": args.preset,
        "options": chosen,
        "size": args.size,
        "minutes": args.minutes,
        "steps": args.steps,
        "threads": args.threads,
        "torch": torch.__version__,
        "photos": [photo.name for photo in photos],
        "train_crops": len(plan.train_a),
        "test_crops": len(plan.test),
        "maps": {},
    }
    strips = {}
    try:
        for name in args.maps:
            photo_map = MAPS[name]
            print(f"\n== {name}: {photo_map.description}")
            data = write_dataset(work / "data" / f"{name}_{args.size}px", photos, plan, photo_map)
            test_a, truth = load_folder(data / "testA"), load_folder(data / TRUTH_DIR)
            input_score = score(test_a, truth)
            grey = score(torch.full_like(truth, 128 / 127.5 - 1.0), truth)
            runs, rows = [], [("input", test_a)]
            for seed in args.seeds:
                print(f"  seed {seed}:", flush=True)
                config = run_config(chosen, data, work / "runs", f"{name}_seed{seed}", seed)
                shutil.rmtree(work / "runs" / f"{name}_seed{seed}", ignore_errors=True)
                run = train_with_curve(
                    config, args.minutes * 60, args.curve_points, test_a, truth, args.steps
                )
                runs.append(run)
                latest = work / "runs" / f"{name}_seed{seed}" / "checkpoints" / "latest.pt"
                generator = generator_from_checkpoint(load_checkpoint(latest), "AtoB", latest)
                rows.append((f"seed {seed}", translate(generator, test_a)))
                if args.work is None:  # paper-sized checkpoints are large: free the disk
                    shutil.rmtree(work / "runs" / f"{name}_seed{seed}")
            rows.append(("truth", truth))
            strips[name] = strip_image(rows, args.strip_crops)
            print_map_summary(name, input_score, grey, runs)
            results["maps"][name] = {
                "description": photo_map.description,
                "input": asdict(input_score),
                "grey": asdict(grey),
                "runs": [asdict(run) for run in runs],
            }
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    for name, strip in strips.items():
        strip.save(out / f"strip_{name}.png")
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\nstrips and results.json in {out}")
    print(f"reproduce: {command}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
