"""Translation speed: every way cyclegan runs a generator, side by side at 512x512 on real photos.

    python benchmarks/infer_speed.py --weights GENERATOR        # the figures in RESULTS.md
    python benchmarks/infer_speed.py --weights GENERATOR --int8-variants all
    python benchmarks/infer_speed.py --weights GENERATOR --device cuda

The photos are the seed's four (tests/data/seed_photos/: two horses, two zebras), each resized
to a short side of 512 and centre-cropped to 512x512. Every other one (1.jpg, 2.jpeg)
calibrates the int8 models (downscaled to 256x256, as `cyclegan export` calibrates); the other
two (7.jpg, 6.jpeg) are translated one at a time and timed. `--weights` is a generator (a
checkpoint, a .safetensors export, a reference .pth or a run folder): PSNR figures mean little
for random weights, which are used without it.

Variants on the CPU: "fp32 eager" (torch.no_grad, default memory format: the plain path, the
base of every ratio), inference_mode, inference_mode + channels_last, bf16 autocast (both
memory formats), ONNX Runtime fp32 (what `cyclegan export --format onnx` writes) and ONNX
Runtime int8 (what `cyclegan export --quantize int8` writes; `--int8-variants all` adds the
other quantization settings tried). On CUDA: the PyTorch variants with fp16 besides bf16.

Timing: `--rounds` rounds after one warm-up pass of every variant; in each round every variant
translates each timed photo once, so load changes hit all variants alike. Per variant: the
median over rounds of the seconds per image, by the wall clock and by this process's CPU time
(on a shared machine the wall clock also measures what else runs; CPU time much less), and
its ratio to fp32 eager's in the same run. PSNR: each variant's output against fp32 eager's,
the mean over the timed photos and the worst of them. Other processes' CPU use during the
run is printed: the machine this was written on is shared.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from cpu_load import busy_cpu_seconds, own_cpu_seconds
from PIL import Image

from cyclegan.config import ModelConfig
from cyclegan.data.images import image_to_tensor, load_image
from cyclegan.inference.export import OnnxGenerator, model_stride, onnx_model, onnx_session
from cyclegan.inference.quantize import Int8Settings, padded_to_stride, psnr, quantize_int8
from cyclegan.inference.translator import Translator
from cyclegan.models import init_weights, make_generator
from cyclegan.models.artifact import describe
from cyclegan.models.generator import translate_any_size

SEED_PHOTOS = Path(__file__).resolve().parents[1] / "tests" / "data" / "seed_photos"
SIZE = 512
CALIBRATION_SIZE = 256

INT8_VARIANTS = {  # label -> settings; the first is the export's default
    "int8 QOperator per-channel MinMax equalized, last conv float": Int8Settings(),
    "int8 ... every conv int8": Int8Settings(float_ends=()),
    "int8 ... first and last conv float": Int8Settings(float_ends=("first", "last")),
    "int8 ... not equalized": Int8Settings(equalize=False),
    "int8 ... per-tensor weights": Int8Settings(per_channel=False),
    "int8 ... Percentile calibration": Int8Settings(calibration="percentile"),
    "int8 ... Entropy calibration": Int8Settings(calibration="entropy"),
    "int8 QDQ (ConvTranspose int8 too)": Int8Settings(format="qdq"),
    "int8 QDQ, ConvTranspose float": Int8Settings(format="qdq", float_ops=("ConvTranspose",)),
}


@dataclass
class Variant:
    label: str
    translate: Callable[[torch.Tensor], torch.Tensor]  # (1, 3, H, W) -> (1, 3, H, W) float32
    wall: list[float] = field(default_factory=list)  # seconds per image, one per round
    cpu: list[float] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)


def photos_512() -> tuple[list[torch.Tensor], list[torch.Tensor], list[str]]:
    """(calibration, timed, timed names): the seed photos as (1, 3, 512, 512) in [-1, 1]."""
    paths = sorted(SEED_PHOTOS.rglob("*.jp*g"))
    squares = []
    for path in paths:
        image = load_image(path)
        scale = SIZE / min(image.size)
        size = (max(SIZE, round(image.width * scale)), max(SIZE, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BICUBIC)
        left, top = (image.width - SIZE) // 2, (image.height - SIZE) // 2
        squares.append(image_to_tensor(image.crop((left, top, left + SIZE, top + SIZE)))[None])
    names = [f"{path.parent.name}/{path.name}" for path in paths]
    return squares[0::2], squares[1::2], names[1::2]


def load_generator(weights: Path | None) -> tuple[torch.nn.Module, ModelConfig, str]:
    """The fp32 generator to measure, its config and a description."""
    if weights is None:
        torch.manual_seed(0)
        model = ModelConfig(generator="resnet_9blocks", ngf=64)
        generator = make_generator(model, "AtoB")
        init_weights(generator)
        return generator.eval(), model, "random weights (PSNR figures mean little)"
    if weights.is_dir():
        translator = Translator.from_run(weights, "AtoB", device="cpu", precision="fp32")
    else:
        translator = Translator.from_file(weights, "AtoB", device="cpu", precision="fp32")
    if not isinstance(translator.generator, torch.nn.Module):
        sys.exit(f"infer_speed.py: error: {weights} is no PyTorch generator")
    return translator.generator, translator.model, str(weights)


def torch_variants(
    generator: torch.nn.Module, model: ModelConfig, device: str
) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    plain_generator = copy.deepcopy(generator).to(device)

    def plain(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            translated = translate_any_size(plain_generator, images.to(device), model_stride(model))
        return translated.float().cpu()

    def translator(**options: object) -> Callable[[torch.Tensor], torch.Tensor]:
        # a copy each: a Translator moves its module to its own memory format
        built = Translator(copy.deepcopy(generator), model, "AtoB", device, **options)  # type: ignore[arg-type]
        return built.translate_tensor

    precisions = ("bf16", "fp16") if device == "cuda" else ("bf16",)
    variants = {
        "fp32 eager": plain,
        "fp32 inference_mode": translator(precision="fp32", channels_last=False),
        "fp32 inference_mode + channels_last": translator(precision="fp32", channels_last=True),
    }
    for precision in precisions:
        variants[f"{precision} autocast"] = translator(precision=precision, channels_last=False)
        variants[f"{precision} autocast + channels_last"] = translator(
            precision=precision, channels_last=True
        )
    return variants


def onnx_variants(
    generator: torch.nn.Module,
    model: ModelConfig,
    calibration: list[torch.Tensor],
    int8: dict[str, Int8Settings],
) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    proto = onnx_model(generator, model, describe(model, "AtoB"))
    arrays = [
        padded_to_stride(
            torch.nn.functional.interpolate(
                photo, size=CALIBRATION_SIZE, antialias=True, mode="bilinear"
            ),
            4,
        )
        for photo in calibration
    ]
    graphs = {"ONNX Runtime fp32": proto}
    for label, settings in int8.items():
        started = time.perf_counter()
        graphs[label] = quantize_int8(proto, arrays, settings)
        print(f"  quantized {label} in {time.perf_counter() - started:.0f}s", flush=True)
    return {
        label: Translator(
            OnnxGenerator(onnx_session(graph.SerializeToString(), "cpu"), 3, graph), model, "AtoB"
        ).translate_tensor
        for label, graph in graphs.items()
    }


def time_rounds(
    variants: list[Variant], photos: list[torch.Tensor], rounds: int, device: str
) -> None:
    def synchronize() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    for variant in variants:  # warm-up: kernels chosen, memory pools grown; outputs kept
        variant.outputs = [variant.translate(photo) for photo in photos]
    for number in range(rounds):
        for variant in variants:
            synchronize()
            wall, cpu = time.perf_counter(), own_cpu_seconds()
            for photo in photos:
                variant.translate(photo)
            synchronize()
            variant.wall.append((time.perf_counter() - wall) / len(photos))
            variant.cpu.append((own_cpu_seconds() - cpu) / len(photos))
        print(f"  round {number + 1}/{rounds} done", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, help="generator file or run folder (AtoB)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds")
    parser.add_argument(
        "--int8-variants",
        choices=("default", "all"),
        default="default",
        help="quantization settings to measure: the export's default, or all tried",
    )
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("infer_speed.py: error: --device cuda: no CUDA device here; use --device cpu")
    torch.set_num_threads(args.threads)  # onnx_session takes its thread count from here too
    generator, model, described = load_generator(args.weights)
    calibration, timed, names = photos_512()

    import onnxruntime

    print(
        f"{platform.processor() or platform.machine()} ({_cpu_name()}), {args.threads} "
        f"thread(s), device {args.device}; torch {torch.__version__}, onnxruntime "
        f"{onnxruntime.__version__}; {model.generator} ngf={model.ngf}, {described}; "
        f"timed photos {', '.join(names)} at {SIZE}x{SIZE}"
    )
    builders = torch_variants(generator, model, args.device)
    if args.device == "cpu":
        chosen = dict(list(INT8_VARIANTS.items())[: None if args.int8_variants == "all" else 1])
        builders |= onnx_variants(generator, model, calibration, chosen)
    variants = [Variant(label, translate) for label, translate in builders.items()]

    busy, own, started = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
    time_rounds(variants, timed, args.rounds, args.device)
    elapsed = time.perf_counter() - started
    if busy is not None:
        others = (busy_cpu_seconds() - busy - (own_cpu_seconds() - own)) / elapsed  # type: ignore[operator]
        print(f"other processes used {others:.1f} cores on average during the {elapsed:.0f}s run")

    base = variants[0]
    base_wall, base_cpu = statistics.median(base.wall), statistics.median(base.cpu)
    print(
        "\n| variant | s/image | x fp32 eager | CPU s/image | x fp32 eager | PSNR vs fp32 eager |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for variant in variants:
        wall, cpu = statistics.median(variant.wall), statistics.median(variant.cpu)
        scores = [psnr(out, ref) for out, ref in zip(variant.outputs, base.outputs)]
        quality = (
            "(reference)"
            if variant is base
            else f"{np.mean(scores):.1f} dB ({min(scores):.1f} worst)"
        )
        print(
            f"| {variant.label} | {wall:.2f} | {base_wall / wall:.2f}x | {cpu:.2f} | "
            f"{base_cpu / cpu:.2f}x | {quality} |"
        )


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    main()
