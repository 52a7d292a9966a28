"""`--work-size`: video speed at 720p and what the smaller translation costs against the truth.

    python benchmarks/work_size.py                       # the 10 s 720p clip of video.py
    python benchmarks/work_size.py --work /work/lp/video --sizes 360 288 --maps colour texture

1. The clip of benchmarks/video.py (made there, or here into `--work` if missing) and `fast`
   runs trained there on learn_photos' maps (64 px crops, `--train-minutes` each; reused when
   `--work` holds them).
2. Speed: `cyclegan translate CLIP --run RUN` (the command users run, default precision) at
   full size and with each `--work-size`, each alone: frames/s as the command reports it.
3. Quality, in this process, on every `--every`-th frame of the clip: the map applied to the
   720p frame is the truth; PSNR / SSIM of the full-size translation against it, of each
   work size against it, and PSNR of each work size against the full-size translation. The
   maps differ in what the network has to do: the colour grade is mostly the generator's
   colour map (full size either way), the sharpening is all the network's (pixel-scale
   texture, which a smaller translation cannot keep). With `--network-only`, a `fast` run
   on the sharpening without the global paths (--no-colour --no-sharpness --no-detail) as well:
   its network makes the whole change, which is what the work size shrinks.
4. A strip: a 256 px crop of one frame, rows input / truth / full size / each work size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photo_maps import MAPS
from video import DEFAULT_OUT, decoded, make_clip, train_fast, translate


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="clip, runs, outputs (default: temp)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--noise", type=float, default=2.0)
    parser.add_argument("--sizes", type=int, nargs="+", default=[360, 288])
    parser.add_argument("--maps", nargs="+", default=["colour", "texture"], choices=sorted(MAPS))
    parser.add_argument("--train-minutes", type=float, default=3.0)
    parser.add_argument("--every", type=int, default=25, help="quality on every n-th frame")
    parser.add_argument("--speed-map", default="colour", help="whose run the speed runs use")
    parser.add_argument("--network-only", action="store_true",
                        help="also a texture run without global paths")  # fmt: skip
    parser.add_argument("--skip-speed", action="store_true", help="quality only")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=2, data_range=255))


def quality(run: Path, frames: list[np.ndarray], map_name: str, sizes: list[int]) -> dict:
    from cyclegan.inference.translator import Translator

    translator = Translator.from_run(run)
    rows: dict[str, dict[str, list[float]]] = {}
    kept: dict[str, np.ndarray] = {}
    input_psnr = []
    for index, frame in enumerate(frames):
        truth = MAPS[map_name].function(frame)
        input_psnr.append(psnr(frame, truth))
        full = translator(frame)
        outputs = {"full": full}
        for size in sizes:
            outputs[str(size)] = translator(frame, work_size=size)
        for name, output in outputs.items():
            row = rows.setdefault(name, {"psnr": [], "ssim": [], "psnr_vs_full": []})
            row["psnr"].append(psnr(output, truth))
            row["ssim"].append(ssim(output, truth))
            row["psnr_vs_full"].append(psnr(output, full))
        if index == len(frames) // 2:
            kept = {"input": frame, "truth": truth, **outputs}
    summary = {
        name: {key: statistics.mean(values) for key, values in row.items()}
        for name, row in rows.items()
    }
    summary["input"] = {"psnr": statistics.mean(input_psnr)}
    return {"summary": summary, "strip": kept}


def strip(kept: dict[str, dict[str, np.ndarray]], out: Path) -> None:
    import torch

    from cyclegan.training.samples import labelled_grid

    names = list(next(iter(kept.values())))
    rows = []
    for name in names:
        crops = [images[name][232:488, 512:768] for images in kept.values()]
        rows.append(torch.stack([torch.from_numpy(c.copy()).permute(2, 0, 1).float() / 127.5 - 1
                                 for c in crops]))  # fmt: skip
    labels = tuple(f"work size {n}" if n.isdigit() else n for n in names)
    title = "middle frame, 256 px crops; columns: " + ", ".join(kept)
    labelled_grid(rows, labels, title).save(out / "strip_work_size.png")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="work_size."))
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    print("reproduce: python benchmarks/work_size.py "
          + " ".join(sys.argv[1:] if argv is None else argv))  # fmt: skip
    clip = work / f"clip_{args.seconds:g}s.mp4"
    if not clip.exists():
        make_clip(clip, args.seconds, args.noise)
    runs = {}
    for map_name in sorted({*args.maps, args.speed_map}):
        trained = work / "runs" / f"fast_{map_name}"
        runs[map_name] = (
            trained if trained.is_dir() else train_fast(work, args.train_minutes, map_name)
        )
    quality_runs = [(name, name, runs[name]) for name in args.maps]
    if args.network_only:
        trained = work / "runs" / "fast_texture_network_only"
        no_paths = ("--no-colour", "--no-sharpness", "--no-detail")
        network_only = (
            trained
            if trained.is_dir()
            else train_fast(work, args.train_minutes, "texture", no_paths, "_network_only")
        )
        quality_runs.append(("texture_network_only", "texture", network_only))
    results: dict[str, object] = {
        "clip": str(clip),
        "runs": {name: str(run) for name, _, run in quality_runs},
    }
    speed = {}
    for size in [] if args.skip_speed else [None, *args.sizes]:
        flags = [] if size is None else ["--work-size", str(size)]
        started = time.perf_counter()
        speed[str(size or "full")] = translate(
            runs[args.speed_map], clip, work / f"speed_{size or 'full'}.mp4", *flags
        )
        print(f"speed {size or 'full'}: {speed[str(size or 'full')]} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip
    results["speed"] = speed
    frames = decoded(clip)[:: args.every]
    kept = {}
    for name, map_name, run in quality_runs:
        measured = quality(run, frames, map_name, args.sizes)
        results[f"quality_{name}"] = measured["summary"]
        kept[name] = measured["strip"]
        print(f"quality {name}: {json.dumps(measured['summary'])}", flush=True)
    strip(kept, args.out)
    (args.out / "work_size.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
