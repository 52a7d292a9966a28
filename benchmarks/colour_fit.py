"""How well do the global fits alone (training/global_fit.py, what `--sharpness` and `--colour`
do before the first step) find each learn_photos map? No network, no training: the A->B
sharpness filter fitted to the training crops' spectra and the colour map to their colours,
applied to the test crops and scored against their truth.

    python benchmarks/colour_fit.py                      # every map, seed 1
    python benchmarks/colour_fit.py --maps hue mix --seeds 1 2 3

For each map: what the sharpness fit did (kept the identity, or its centre tap), the colour
map's start and its sliced Wasserstein distance (next to the untouched colours'; "kept" when
the domains' colours did not differ beyond chance), the seconds the fits of both directions
took, and the PSNR / SSIM of the fitted paths' test translations next to the untranslated
input's. A global colour map (colour, hue, mix) should gain most of its dB here, and so should
a global filter (texture: an unsharp mask); a local stylisation (cartoon) has no global
answer, and the fits should leave the input about where it was (the network then does the
work). `--colour-only` fits the colour map alone (the `--colour` of earlier runs); `--detail`
adds the edge-aware detail path (`--detail`), fitted after the other two, which should find
the cartoon's smoothing and stay off on the other maps.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from photo_maps import MAPS, TRUTH_DIR, load_photos, plan_crops, write_dataset
from PIL import Image

from cyclegan.data.dataset import UnpairedDataset
from cyclegan.evaluation.metrics import psnr, ssim
from cyclegan.models.colour import GlobalColour
from cyclegan.models.detail import EdgeDetail
from cyclegan.models.sharpness import GlobalSharpness
from cyclegan.training.colour_fit import ColourFit
from cyclegan.training.detail_fit import DetailFit
from cyclegan.training.global_fit import GlobalPaths, fit_global_paths
from cyclegan.training.sharpness_fit import SharpnessFit


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--maps", nargs="+", choices=list(MAPS), default=list(MAPS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--size", type=int, default=64, help="crop size (as learn_photos)")
    parser.add_argument("--train-crops", type=int, default=200)
    parser.add_argument("--test-crops", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--colour-only", action="store_true", help="no sharpness filter")
    parser.add_argument(
        "--detail", action="store_true", help="the edge-aware detail path too (--detail)"
    )
    return parser.parse_args(argv)


def load_folder(folder: Path) -> torch.Tensor:
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def mean_scores(images: torch.Tensor, truth: torch.Tensor) -> tuple[float, float]:
    rounded = ((images.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1  # as a saved file
    values = [psnr(a[None], b[None]) for a, b in zip(rounded, truth)]
    similarities = [ssim(a[None], b[None]) for a, b in zip(rounded, truth)]
    return float(np.mean(values)), float(np.mean(similarities))


Fit = SharpnessFit | ColourFit | DetailFit


def describe_sharpness(fits: Sequence[Fit]) -> str:
    fit = next((f for f in fits if isinstance(f, SharpnessFit)), None)
    if fit is None:
        return "-"
    return f"centre {fit.centre:.2f}" if fit.applied else "kept the identity"


def describe_colour(fits: Sequence[Fit]) -> str:
    fit = next(f for f in fits if isinstance(f, ColourFit))
    start = fit.start if fit.applied else "kept the identity"
    return f"{start} | {fit.distance:.4f} ({fit.identity_distance:.4f})"


def describe_detail(fits: Sequence[Fit]) -> str:
    fit = next((f for f in fits if isinstance(f, DetailFit)), None)
    if fit is None:
        return "-"
    if not fit.applied:
        return "kept the identity (" + ("no fit" if not fit.fitted else "no closer") + ")"
    fine = fit.gains[0]
    return (
        f"fine x{fine[0]:.2f} .. x{max(fine):.2f}, {fit.distance:.3f} ({fit.identity_distance:.3f})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    photos = load_photos()
    plan = plan_crops(
        [p.pixels.shape[:2] for p in photos], args.size, args.train_crops, args.test_crops
    )
    print(f"{len(photos)} photos, {args.train_crops} train crops per domain, {args.size} px")
    print(
        "| map | seed | sharpness (AtoB) | colour start (AtoB) | distance (untouched) "
        "| detail (AtoB) | fit s | input PSNR / SSIM | fitted paths PSNR / SSIM |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory(prefix="colour-fit-") as work:
        for name in args.maps:
            root = write_dataset(Path(work) / name, photos, plan, MAPS[name])
            dataset = UnpairedDataset(root, "train", load_size=args.size, crop_size=args.size)
            test_a, truth = load_folder(root / "testA"), load_folder(root / TRUTH_DIR)
            for seed in args.seeds:
                paths = {
                    direction: GlobalPaths(
                        None if args.colour_only else GlobalSharpness(),
                        GlobalColour(3),
                        EdgeDetail() if args.detail else None,
                    )
                    for direction in ("AtoB", "BtoA")
                }
                started = time.perf_counter()
                fits = fit_global_paths(paths, dataset, seed, log=lambda line: None)
                seconds = time.perf_counter() - started
                forward = paths["AtoB"]
                with torch.no_grad():
                    fitted = test_a
                    if forward.sharpness is not None:
                        fitted = forward.sharpness(fitted)
                    fitted = forward.colour.eval()(fitted)  # type: ignore[union-attr]
                    if forward.detail is not None:
                        fitted = forward.detail(fitted)
                before, after = mean_scores(test_a, truth), mean_scores(fitted, truth)
                print(
                    f"| {name} | {seed} | {describe_sharpness(fits)} | {describe_colour(fits)} "
                    f"| {describe_detail(fits)} | {seconds:.1f} | {before[0]:.2f} / "
                    f"{before[1]:.3f} | {after[0]:.2f} / {after[1]:.3f} |",
                    flush=True,
                )
    print(f"\nreproduce: python benchmarks/colour_fit.py {' '.join(sys.argv[1:])}".rstrip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
