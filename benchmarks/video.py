"""Video translation: speed at 720p and flicker, per frame and with --steady.

    python benchmarks/video.py                       # a 10 s 720p clip made here
    python benchmarks/video.py --run runs/fast_colour --seconds 4
    python benchmarks/video.py --clip my.mp4 --int8-frames 0

1. The clip: a real photo (the seed's 1067x600 A_type/1.jpg) panned and slowly zoomed, each
   window resized to 1280x720, with light Gaussian noise (sigma `--noise`, as a camera's sensor
   adds) and a 440 Hz tone, `--seconds` long at 25 frames/s, written as H.264 (crf 12).
2. The `fast` preset's generator: a trained run's (`--run`) or, by default, one trained here on
   learn_photos' colour map for `--train-minutes` (a real translation, whose flicker is worth
   measuring). Translated with `cyclegan translate` (the command users run) per frame and with
   --steady, each with --flicker: frames/s, the warping error of the output and of the input.
3. Smearing: PSNR between the per-frame and the steadied output, over the pixels where the
   input's flow is unreliable (there --steady must keep each frame's own translation), and
   over all pixels.
4. The paper generator's int8 export: frames/s on the first `--int8-frames` frames.
5. A strip of 4 consecutive frames (rows: input, per frame, steadied) and a GIF of both.

One process, alone on the machine; torch threads: all cores (the command's default).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
PHOTO = REPO / "tests" / "data" / "seed_photos" / "A_type" / "1.jpg"
DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "video"
FPS, SIDE = 25, (1280, 720)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, help="translate this clip instead of making one")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--noise", type=float, default=2.0, help="sensor noise, 8-bit levels")
    parser.add_argument("--run", type=Path, help="a trained `fast` run (default: train one)")
    parser.add_argument("--train-minutes", type=float, default=3.0)
    parser.add_argument("--int8-frames", type=int, default=50, help="0: skip the int8 export")
    parser.add_argument("--work", type=Path, help="the clip, runs and outputs (default: temp)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def make_clip(path: Path, seconds: float, noise: float) -> Path:
    photo = Image.open(PHOTO).convert("RGB")
    width, height = photo.size
    frames = round(seconds * FPS)
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = *SIDE, "yuv420p"
        stream.options = {"crf": "12"}
        sound = container.add_stream("aac", rate=44100)
        for index in range(frames):
            progress = index / max(frames - 1, 1)
            zoom = 1.0 - 0.2 * progress  # the window shrinks to 80%: a slow zoom in
            box_w, box_h = width * zoom * 0.9, height * zoom * 0.9
            left = (width - box_w) * progress
            top = (height - box_h) * 0.5 * (1 + np.sin(2 * np.pi * progress)) / 2
            window = photo.resize(SIDE, Image.Resampling.BICUBIC,
                                  box=(left, top, left + box_w, top + box_h))  # fmt: skip
            pixels = np.asarray(window, dtype=np.float32) + rng.normal(0, noise, (*SIDE[::-1], 3))
            frame = av.VideoFrame.from_ndarray(pixels.clip(0, 255).astype(np.uint8), "rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        t = np.arange(int(seconds * 44100)) / 44100
        wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        samples = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
        samples.sample_rate, samples.pts = 44100, 0
        container.mux(sound.encode(samples))
        container.mux(sound.encode(None))
    return path


def train_fast(
    work: Path, minutes: float, map_name: str = "colour", extra: tuple[str, ...] = (), tag: str = ""
) -> Path:
    """A `fast` run on one of learn_photos' maps (64 px crops), for `minutes`; `extra` train
    flags change the preset (the run's name ends in `tag`)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from photo_maps import MAPS, load_photos, plan_crops, write_dataset

    photos = load_photos()
    plan = plan_crops([p.pixels.shape[:2] for p in photos], 64, 200, 48)
    data = write_dataset(work / "data" / f"{map_name}_64px", photos, plan, MAPS[map_name])
    command(["train", "--data", str(data), "--runs-dir", str(work / "runs"), "--name",
                   f"fast_{map_name}{tag}", "--preset", "fast", "--crop-size", "64", "--load-size",
                   "64", "--minutes", str(minutes), "--quiet", *extra])  # fmt: skip
    return work / "runs" / f"fast_{map_name}{tag}"


def command(arguments: list[str]) -> str:
    done = subprocess.run([sys.executable, "-m", "cyclegan", *arguments], capture_output=True,
                          text=True, check=False)  # fmt: skip
    if done.returncode:
        raise SystemExit(f"cyclegan {' '.join(arguments)} failed:\n{done.stderr}")
    return done.stdout


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]


def smearing(source: Path, plain: Path, steady: Path) -> dict[str, float]:
    """PSNR of the steadied against the per-frame output where the input's flow is unreliable
    (it must be the frame's own translation there) and over all pixels."""
    from cyclegan.inference.steady import FlowEstimator

    flows = FlowEstimator()
    inputs, per_frame, steadied = decoded(source), decoded(plain), decoded(steady)
    unreliable_se, unreliable_n, all_se, all_n = 0.0, 0, 0.0, 0
    for index in range(1, len(inputs)):
        _, reliable = flows.backward_flow(inputs[index], inputs[index - 1])
        error = (per_frame[index].astype(np.float64) - steadied[index].astype(np.float64)) ** 2
        error = error.mean(axis=2)
        unreliable_se += float(error[~reliable].sum())
        unreliable_n += int((~reliable).sum())
        all_se += float(error.sum())
        all_n += error.size

    def psnr(se: float, n: int) -> float:
        return float("inf") if se == 0 else 10 * np.log10(255.0**2 / (se / n))

    return {
        "psnr_unreliable": psnr(unreliable_se, unreliable_n),
        "unreliable_share": unreliable_n / max(all_n, 1),
        "psnr_all": psnr(all_se, all_n),
    }


def translate(run: Path, clip: Path, out: Path, *flags: str) -> dict[str, float]:
    started = time.perf_counter()
    said = command(["translate", str(clip), "--run", str(run), "--out", str(out), *flags])
    seconds = time.perf_counter() - started
    summary = {"wall_s": seconds, "said": said.strip()}
    for line in said.splitlines():
        if line.startswith("translated "):
            summary["frames_per_s"] = float(re.search(r"([\d.]+) frames/s", line).group(1))
        if line.startswith("warping error: "):
            summary["warping_error"] = float(line.split()[2])
            summary["input_warping_error"] = float(line.split("own: ")[1].split(";")[0])
    return summary


def strip(source: Path, plain: Path, steady: Path, out: Path, first: int = 40) -> None:
    import torch

    from cyclegan.training.samples import labelled_grid

    rows = []
    for path in (source, plain, steady):
        frames = decoded(path)[first : first + 4]
        crops = [f[200:456, 500:756] for f in frames]  # 256 px of the middle
        rows.append(torch.stack([torch.from_numpy(c).permute(2, 0, 1).float() / 127.5 - 1
                                 for c in crops]))  # fmt: skip
    labelled_grid(rows, ("input", "per frame", "steadied"), "frames 41-44, 256 px crops").save(
        out / "strip_frames.png"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="video."))
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    print(
        "reproduce: python benchmarks/video.py " + " ".join(sys.argv[1:] if argv is None else argv)
    )
    made = work / f"clip_{args.seconds:g}s.mp4"  # made once per --work and length
    clip = args.clip or (made if made.exists() else make_clip(made, args.seconds, args.noise))
    trained = work / "runs" / "fast_colour"  # trained once per --work
    run = args.run or (trained if trained.is_dir() else train_fast(work, args.train_minutes))
    results: dict[str, object] = {"clip": str(clip), "run": str(run)}
    for name, out, flags in (("per_frame", "plain.mp4", ["--flicker"]),
                             ("steady", "steady.mp4", ["--flicker", "--steady"]),
                             ("speed_only", "speed.mp4", [])):  # fmt: skip
        results[name] = translate(run, clip, work / out, *flags)
        print(f"{name}: {results[name]}", flush=True)  # kept if a later step fails
    results["smearing"] = smearing(clip, work / "plain.mp4", work / "steady.mp4")
    if args.int8_frames:
        paper = work / "paper_int8.onnx"
        from cyclegan.config import ModelConfig
        from cyclegan.models.artifact import save_generator
        from cyclegan.models.cyclegan import make_generator

        model = ModelConfig()
        save_generator(work / "paper.safetensors", make_generator(model, "AtoB"), model, "AtoB")
        command(["export", "--weights", str(work / "paper.safetensors"), "--quantize", "int8",
                 "--calibration-images", str(PHOTO.parent), "--out", str(paper), "--min-psnr",
                 "0", "--overwrite"])  # fmt: skip
        short = work / "short.mp4"
        with av.open(str(clip)) as source, av.open(str(short), "w") as target:
            stream = target.add_stream("libx264", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = *SIDE, "yuv420p"
            for index, frame in enumerate(source.decode(video=0)):
                if index == args.int8_frames:
                    break
                target.mux(stream.encode(av.VideoFrame.from_ndarray(
                    frame.to_ndarray(format="rgb24"), "rgb24")))  # fmt: skip
            target.mux(stream.encode(None))
        started = time.perf_counter()
        said = command(["translate", str(short), "--weights", str(paper), "--out",
                        str(work / "int8.mp4")])  # fmt: skip
        seconds = time.perf_counter() - started
        results["paper_int8"] = {"frames": args.int8_frames, "wall_s": seconds,
                                 "said": said.strip()}  # fmt: skip
    strip(clip, work / "plain.mp4", work / "steady.mp4", args.out)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
