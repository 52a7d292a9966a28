"""Can the generator hold the map at all? Train it on *pairs* (a crop and its map) with an L1
loss, on learn_photos' photos and maps, and score the test crops against their truth.

    python benchmarks/paired_bound.py --maps cartoon --preset fast
    python benchmarks/paired_bound.py --maps cartoon --preset fast --set g_norm=none

Unpaired training (learn_photos.py) must find the map from two unrelated folders; this
benchmark shows it the answer. Where even this stays near the untranslated input, the
generator cannot represent the map and no loss or discriminator will make it learn it; where
this reaches the map and learn_photos does not, the adversarial signal is what is missing.
The A crops of learn_photos' plan are the training inputs and their own maps the targets; the
test crops and the scores (the mean over crops of PSNR and SSIM, outputs rounded to 8 bits)
are learn_photos'. The generator is the config's A->B generator (`--preset`, `--set`), its
global paths left at the identity (they are fitted before unpaired training, not here);
Adam at --lr with the preset's betas, one torch thread, bf16 autocast where the CPU has it.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from learn_photos import load_benchmark_photos, score, translate
from photo_maps import MAPS, Crop, CropPlan, Photo, PhotoMap, plan_crops

from cyclegan.config import PRESETS, Config, ConfigError, parse_assignment
from cyclegan.device import device_precision
from cyclegan.evaluation.metrics import psnr
from cyclegan.models.cyclegan import CycleGAN


def crop_arguments(
    description: str, steps: int, train_crops: int, test_crops: int
) -> argparse.ArgumentParser:
    """The options this script and discriminator_sees.py share: what is trained, on which of
    learn_photos' maps and crops, for how many steps."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="fast")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="a config option by its flat name, e.g. g_norm=none; repeatable",
    )  # fmt: skip
    parser.add_argument("--maps", nargs="+", choices=list(MAPS), default=["cartoon"])
    parser.add_argument("--steps", type=int, default=steps, help="training steps per map")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--train-crops", type=int, default=train_crops)
    parser.add_argument("--test-crops", type=int, default=test_crops)
    parser.add_argument("--curve-points", type=int, default=4)
    return parser


def parsed(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """The arguments, the counts checked and the --set options read (parser.error if not)."""
    args = parser.parse_args(argv)
    for name in ("steps", "batch", "train_crops", "test_crops", "curve_points"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    try:
        args.overrides = dict(parse_assignment(item) for item in args.overrides)
    except ConfigError as error:
        parser.error(str(error))
    return args


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = crop_arguments(__doc__.split("\n\n")[0], steps=800, train_crops=400, test_crops=64)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument(
        "--per-crop", action="store_true",
        help="at the end, each test crop's PSNR untranslated and translated, by the former",
    )  # fmt: skip
    return parsed(parser, argv)


def as_batch(crops: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 (H, W, 3) crops -> (N, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def photos_and_plan(args: argparse.Namespace) -> tuple[list[Photo], CropPlan]:
    """learn_photos' photos and where its crops come from, at the script's sizes and counts."""
    photos = load_benchmark_photos()
    shapes = [photo.pixels.shape[:2] for photo in photos]
    return photos, plan_crops(shapes, args.size, args.train_crops, args.test_crops)


def cut(
    crops: Sequence[Crop], photos: Sequence[Photo], photo_map: PhotoMap | None = None
) -> torch.Tensor:
    """The crops as a batch, through the map if one is given."""
    apply = photo_map.function if photo_map is not None else (lambda pixels: pixels)
    return as_batch([apply(crop.cut(photos)) for crop in crops])


def print_per_crop(output: torch.Tensor, test: torch.Tensor, truth: torch.Tensor) -> None:
    """Each crop's PSNR against its truth, untranslated -> translated, from the flattest (the
    input already close to its truth) down: where a generator loses what it gains."""
    pairs = sorted(((psnr(x, t), psnr(y, t)) for x, y, t in zip(test, output, truth)), reverse=True)
    print("  per crop, input -> ours (dB): " + ", ".join(f"{a:.1f}->{b:.1f}" for a, b in pairs))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    options = {"preset": args.preset, **args.overrides}
    config = Config().with_overrides(options)
    autocast = device_precision(torch.device("cpu"), config.speed.precision) == "bf16"
    photos, plan = photos_and_plan(args)
    print(
        f"{len(photos)} photos, {len(plan.train_a)} training pairs, {len(plan.test)} test crops "
        f"of {args.size} px; {args.steps} steps of {args.batch}, lr {args.lr:g}, "
        f"{'bf16' if autocast else 'fp32'}; options {options}"
    )
    for name in args.maps:
        inputs, targets = cut(plan.train_a, photos), cut(plan.train_a, photos, MAPS[name])
        test, truth = cut(plan.test, photos), cut(plan.test, photos, MAPS[name])
        untouched = score(test, truth)
        torch.manual_seed(args.seed)
        generator = CycleGAN(config.model).gen_ab
        optimizer = torch.optim.Adam(
            generator.parameters(), args.lr, betas=(config.optim.beta1, config.optim.beta2)
        )
        print(f"\n== {name}: input {untouched.psnr:.2f} dB / SSIM {untouched.ssim:.3f}")
        every = max(1, args.steps // args.curve_points)
        started = time.perf_counter()
        for step in range(1, args.steps + 1):
            picks = torch.randint(0, len(inputs), (args.batch,))
            with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
                output = generator(inputs[picks])
            loss = F.l1_loss(output.float(), targets[picks])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step % every == 0 or step == args.steps:
                scored = score(translate(generator, test), truth)
                print(
                    f"  step {step:5d} ({time.perf_counter() - started:5.0f} s): PSNR "
                    f"{scored.psnr:.2f} dB, SSIM {scored.ssim:.3f}",
                    flush=True,
                )
        if args.per_crop:
            print_per_crop(translate(generator, test), test, truth)
    print(f"\nreproduce: {shlex.join(['python', 'benchmarks/paired_bound.py', *sys.argv[1:]])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
