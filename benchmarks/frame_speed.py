"""Where a video frame's time goes: one generator at video sizes, batch by batch, layout by
layout, and the work around it (decoding, the array conversions, encoding).

    python benchmarks/frame_speed.py                          # the fast preset's generator
    python benchmarks/frame_speed.py --preset paper --sizes 256 512
    python benchmarks/frame_speed.py --run runs/fast_colour   # a trained one (same speed)

1. The generator (untrained: speed does not depend on the weights) through
   `Translator.translate_tensor` at each `--sizes` (the short side; 16:9 frames, so 720 is
   1280x720) in fp32 and bf16 (where the CPU has bf16 instructions), contiguous and
   channels_last, with batches of 1, 2 and 4: seconds per frame, medians of interleaved
   runs. The Translator splits batches by its CPU pixel budget (CPU_BATCH_PIXELS): here that
   is lifted, so the batches are what they say.
2. The same frames through `translate_images` (uint8 arrays in and out, as videos use it),
   and the global paths alone (the fast preset has both): the colour map, and the sharpness
   filter switched on (an untrained generator's is off, which costs nothing; a run whose fit
   switched it on pays this on top of the translation above), in fp32 and bf16.
3. H.264 encoding at crf 18 (libx264's default preset) and decoding, per frame.

One process, alone on the machine, `--threads` torch threads.
"""

from __future__ import annotations

import argparse
import io
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from cyclegan.config import ModelConfig, preset_options
from cyclegan.device import cpu_has_bf16
from cyclegan.inference import translator as translator_module
from cyclegan.inference.quantize import time_interleaved
from cyclegan.inference.translator import Translator
from cyclegan.models.cyclegan import make_generator
from cyclegan.models.sharpness import GlobalSharpness

BATCH_PIXELS = translator_module.CPU_BATCH_PIXELS  # the Translator's own budget


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=("fast", "paper"), default="fast")
    parser.add_argument("--run", type=Path, help="a trained run's generator instead")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 720])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_args(argv)


def generator_translator(
    args: argparse.Namespace, precision: str, channels_last: bool
) -> Translator:
    if args.run is not None:
        loaded = Translator.from_run(args.run, device="cpu", precision=precision)
        generator, model = loaded.generator, loaded.model
    else:
        fields = {k: v for k, v in preset_options(args.preset).items() if hasattr(ModelConfig, k)}
        model = ModelConfig(**fields)
        generator = make_generator(model, "AtoB")
    return Translator(generator, model, "AtoB", "cpu", precision=precision,
                      channels_last=channels_last)  # fmt: skip


def frame_side(short: int) -> tuple[int, int]:
    """(height, width) of a 16:9 frame with this short side, a multiple of 4."""
    return short, round(short * 16 / 9 / 4) * 4


def per_frame(seconds: dict[str, float], frames: dict[str, int]) -> dict[str, float]:
    return {name: value / frames[name] for name, value in seconds.items()}


def generator_table(args: argparse.Namespace) -> None:
    precisions = ["fp32", "bf16"] if cpu_has_bf16() else ["fp32"]
    translator_module.CPU_BATCH_PIXELS = 1 << 40  # the batches as given
    print("| frame | precision | layout | batch | s per frame | x one contiguous frame |")
    print("| --- | --- | --- | --- | --- | --- |")
    for short in args.sizes:
        height, width = frame_side(short)
        for precision in precisions:
            runs: dict[str, Callable[[], object]] = {}
            frames: dict[str, int] = {}
            for channels_last in (False, True):
                translator = generator_translator(args, precision, channels_last)
                for batch in args.batches:
                    images = torch.rand(batch, 3, height, width) * 2 - 1
                    name = f"{'channels_last' if channels_last else 'contiguous'}|{batch}"
                    runs[name] = lambda t=translator, x=images: t.translate_tensor(x)
                    frames[name] = batch
            seconds = per_frame(time_interleaved(runs, args.repeats), frames)
            base = seconds["contiguous|1"]
            for name, value in seconds.items():
                layout, batch = name.split("|")
                print(f"| {width}x{height} | {precision} | {layout} | {batch} | {value:.3f} "
                      f"| {base / value:.2f}x |")  # fmt: skip
        sys.stdout.flush()


def around_the_generator(args: argparse.Namespace) -> None:
    import av

    translator_module.CPU_BATCH_PIXELS = BATCH_PIXELS  # as users run it
    height, width = frame_side(max(args.sizes))
    translator = generator_translator(args, "auto", channels_last=False)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(4)]
    tensor = torch.rand(1, 3, height, width) * 2 - 1
    runs: dict[str, Callable[[], object]] = {
        "translate_tensor, one frame": lambda: translator.translate_tensor(tensor),
        "translate_images, one uint8 frame": lambda: translator.translate_images(frames[:1]),
    }
    colour = getattr(translator.generator, "colour", None)
    if colour is not None:
        runs["the global colour map alone"] = lambda: colour(tensor)
    if getattr(translator.generator, "sharpness", None) is not None:
        sharpness = GlobalSharpness()
        sharpness.load_kernel(torch.rand(sharpness.size, sharpness.size))  # switched on

        def filtered(x: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():  # as translation runs it
                return sharpness(x)

        runs["the sharpness filter alone, switched on, fp32"] = lambda: filtered(tensor)
        if cpu_has_bf16():
            halved = tensor.bfloat16()
            runs["the sharpness filter alone, switched on, bf16"] = lambda: filtered(halved)
    seconds = time_interleaved(runs, args.repeats)

    encoded = io.BytesIO()
    started = time.perf_counter()
    count = 20
    with av.open(encoded, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18"}
        for index in range(count):
            frame = av.VideoFrame.from_ndarray(frames[index % 4], format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    seconds["H.264 encoding (crf 18, random pixels: its worst case)"] = (
        time.perf_counter() - started
    ) / count
    encoded.seek(0)
    started = time.perf_counter()
    with av.open(encoded) as container:
        decoded = sum(1 for f in container.decode(video=0) if f.to_ndarray(format="rgb24").size)
    seconds["decoding to uint8 RGB"] = (time.perf_counter() - started) / decoded
    print(f"\nat {width}x{height}, precision {translator.precision}, contiguous:")
    print("| step | s per frame |\n| --- | --- |")
    for name, value in seconds.items():
        print(f"| {name} | {value:.3f} |")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print("reproduce: python benchmarks/frame_speed.py "
          + shlex.join(sys.argv[1:] if argv is None else argv))  # fmt: skip
    what = args.run or f"the {args.preset} preset's generator (untrained)"
    print(f"{what}, {args.threads} threads, medians of {args.repeats} interleaved runs\n")
    generator_table(args)
    around_the_generator(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
